"""The datasets a viewer serves, and a compact in-memory listing of each one's samples.

Only files named by a dataset's own index are ever opened, and every path is checked
to resolve inside the dataset's real folder, so symlinks cannot lead the server outside.
Images are read in place from the shard tars through the manifest's offsets.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from manifests.flags import append_flag, flag_state
from manifests.index import INDEX_NAME
from manifests.shard import shard_names

PREVIEW_CHARS = 160
_BOX_PROMPT = re.compile(r"^\[[\d,\s]+\]\s*")
_COLOR_PROMPT = re.compile(r"^\[(red|green|blue|[a-z]+)\]\s*")


class ViewerError(Exception):
    """A request that names something that does not exist or is not allowed (HTTP 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def prompt_group(prompt: str) -> str:
    """Box-guided prompts differ per sample by their coordinates: group them as one prompt."""
    if _BOX_PROMPT.match(prompt):
        return _BOX_PROMPT.sub("[x1, y1, x2, y2] ", prompt, count=1)
    return prompt


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([os.path.realpath(path), root]) == root


@dataclass
class Listing:
    """Column arrays, one entry per sample, in position order. ~100 bytes a sample plus its target."""

    keys: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    shards: list[int] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)  # byte offset of the record's line in its manifest
    lengths: list[int] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)  # images[0] width, height
    n_images: list[int] = field(default_factory=list)
    row_of: dict[str, int] = field(default_factory=dict)


class Dataset:
    """One dataset folder: its index, its listing (loaded on first use) and its flags."""

    def __init__(self, ident: str, path: str) -> None:
        self.id = ident
        self.root = os.path.realpath(path)
        self.index: dict[str, Any] = json.loads(self._read(INDEX_NAME).decode("utf-8"))
        self.shards = sorted(self.index.get("shards", []), key=lambda s: s["start"])
        self._listing: Listing | None = None
        self._lock = threading.Lock()
        self._flags: dict[str, bool] = flag_state(self.root)

    # -- files -----------------------------------------------------------------
    def _path(self, name: str) -> str:
        if "/" in name or "\\" in name or name.startswith("."):
            raise ViewerError(404, "not found")
        path = os.path.join(self.root, name)
        if not _inside(path, self.root):
            raise ViewerError(403, "outside the dataset folder")
        return path

    def _read(self, name: str, offset: int = 0, size: int = -1) -> bytes:
        with open(self._path(name), "rb") as handle:
            handle.seek(offset)
            return handle.read(size)

    # -- summary ---------------------------------------------------------------
    @property
    def engine(self) -> str:
        return str(self.index.get("engine", "?"))

    def summary(self) -> dict[str, Any]:
        totals = self.index.get("totals", {})
        return {
            "id": self.id,
            "engine": self.engine,
            "engine_version": self.index.get("engine_version"),
            "params": self.index.get("params", {}),
            "seed": self.index.get("seed"),
            "n": self.index.get("n"),
            "shard_size": self.index.get("shard_size"),
            "inputs": self.index.get("inputs", []),
            "shards": len(self.shards),
            "samples": totals.get("samples", sum(s.get("samples", 0) for s in self.shards)),
            "errors": totals.get("errors", sum(s.get("errors", 0) for s in self.shards)),
            "errors_by_reason": totals.get("errors_by_reason", {}),
            "bytes": totals.get("bytes"),
            "flagged": len(self.flagged()),
            "loaded": self._listing is not None,
        }

    # -- listing ---------------------------------------------------------------
    def listing(self) -> Listing:
        with self._lock:
            if self._listing is None:
                self._listing = self._load_listing()
            return self._listing

    def _load_listing(self) -> Listing:
        out = Listing()
        for shard in self.shards:
            name = shard_names(shard["index"])["manifest"]
            blob = self._read(name)
            offset = 0
            for line in blob.splitlines(keepends=True):
                start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                record = json.loads(line)
                image = record["images"][0]
                out.row_of[record["key"]] = len(out.keys)
                out.keys.append(record["key"])
                out.tasks.append(record["task"])
                out.prompts.append(record["prompt"])
                out.groups.append(prompt_group(record["prompt"]))
                out.targets.append(record["target"])
                out.shards.append(shard["index"])
                out.offsets.append(start)
                out.lengths.append(len(line))
                out.sizes.append((image["width"], image["height"]))
                out.n_images.append(len(record["images"]))
        # Interning keeps one copy of each repeated task and prompt string.
        out.tasks = [sys.intern(t) for t in out.tasks]
        out.groups = [sys.intern(g) for g in out.groups]
        return out

    def errors(self, limit: int = 200) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for shard in self.shards:
            if not shard.get("errors"):
                continue
            for line in self._read(shard_names(shard["index"])["errors"]).splitlines():
                if line.strip() and len(found) < limit:
                    found.append(json.loads(line))
        return found

    # -- one sample --------------------------------------------------------------
    def _shard_of(self, key: str) -> int:
        match = re.search(r"_(\d{10})$", key)
        if not match:
            raise ViewerError(404, f"no sample {key!r}")
        position = int(match.group(1))
        for shard in self.shards:
            if shard["start"] <= position < shard["stop"]:
                return int(shard["index"])
        raise ViewerError(404, f"no sample {key!r}")

    def record(self, key: str) -> dict[str, Any]:
        """The manifest record of ``key``, without loading the whole listing."""
        listing = self._listing
        if listing is not None:
            row = listing.row_of.get(key)
            if row is None:
                raise ViewerError(404, f"no sample {key!r}")
            name = shard_names(listing.shards[row])["manifest"]
            return json.loads(self._read(name, listing.offsets[row], listing.lengths[row]))
        # Cold path: find the line in the one shard manifest that can hold the key.
        blob = self._read(shard_names(self._shard_of(key))["manifest"])
        at = blob.find(b'"key":' + json.dumps(key).encode() + b",")
        if at < 0:
            raise ViewerError(404, f"no sample {key!r}")
        start = blob.rfind(b"\n", 0, at) + 1
        stop = blob.find(b"\n", at)
        record = json.loads(blob[start : stop if stop >= 0 else len(blob)])
        if record.get("key") != key:
            raise ViewerError(404, f"no sample {key!r}")
        return record

    def image(self, record: dict[str, Any], index: int = 0) -> tuple[bytes, str]:
        images = record["images"]
        if not 0 <= index < len(images):
            raise ViewerError(404, "no such image")
        image = images[index]
        data = self._read(shard_names(record["shard"])["tar"], int(image["offset"]), int(image["size"]))
        ext = image["name"].rsplit(".", 1)[-1].lower()
        return data, ext

    # -- flags -------------------------------------------------------------------
    def flagged(self) -> set[str]:
        return {k for k, v in self._flags.items() if v}

    def is_flagged(self, key: str) -> bool:
        return self._flags.get(key, False)

    def set_flag(self, key: str, flagged: bool) -> None:
        self.record(key)  # only real samples can be flagged
        append_flag(self.root, key, flagged)
        self._flags[key] = flagged


def discover(path: str) -> list[Dataset]:
    """A dataset folder, or the dataset folders directly inside ``path`` (symlinks out of it are skipped)."""
    root = os.path.realpath(path)
    if not os.path.isdir(root):
        raise ViewerError(404, f"{path}: not a folder")
    if os.path.isfile(os.path.join(root, INDEX_NAME)):
        return [Dataset(os.path.basename(root) or "dataset", root)]
    found = []
    for name in sorted(os.listdir(root)):
        sub = os.path.join(root, name)
        if name.startswith(".") or not os.path.isdir(sub) or not _inside(sub, root):
            continue
        if os.path.isfile(os.path.join(sub, INDEX_NAME)):
            found.append(Dataset(name, sub))
    return found
