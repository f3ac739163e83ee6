"""Writing and reading one shard: a WebDataset tar, its JSONL manifest and its error list.

Tar members carry fixed metadata (mtime 0, uid/gid 0, mode 0644, USTAR: ``manifests/tar.py``),
so equal samples give equal bytes. The manifest records each image's offset and size in
the tar, so readers never need to scan or extract it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engines.base import Rejection, Result, Sample
from manifests.schema import ERROR_SCHEMA_ID, SAMPLE_SCHEMA_ID
from manifests.storage import Storage, discard_local, sha256_file
from manifests.tar import TarWriter


def shard_names(shard: int) -> dict[str, str]:
    stem = f"shard-{shard:06d}"
    return {"tar": f"{stem}.tar", "manifest": f"{stem}.jsonl", "errors": f"{stem}.errors.jsonl"}


def sample_key(engine: str, position: int) -> str:
    return f"{engine.replace('.', '_').replace(':', '_')}_{position:010d}"


def dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@dataclass
class ShardReceipt:
    """What a finished shard holds; the driver records it in index.json."""

    index: int
    start: int
    stop: int
    samples: int
    errors: int
    files: dict[str, dict[str, Any]]
    reasons: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "start": self.start,
            "stop": self.stop,
            "samples": self.samples,
            "errors": self.errors,
            "files": self.files,
            "reasons": dict(sorted(self.reasons.items())),
        }


class ShardWriter:
    """Builds a shard's three files in a staging folder; ``commit`` publishes them."""

    def __init__(self, storage: Storage, shard: int, engine: str, engine_version: str) -> None:
        self.storage = storage
        self.shard = shard
        self.engine = engine
        self.engine_version = engine_version
        self.names = shard_names(shard)
        self.staging = storage.staging_dir()
        self.paths = {kind: os.path.join(self.staging, name) for kind, name in self.names.items()}
        self._tar_file = open(self.paths["tar"], "wb")
        self._tar = TarWriter(self._tar_file)
        self._manifest = open(self.paths["manifest"], "w", encoding="utf-8")
        self._errors = open(self.paths["errors"], "w", encoding="utf-8")
        self.samples = 0
        self.rejections = 0
        self.reasons: dict[str, int] = {}

    def add(self, position: int, result: Result) -> None:
        if isinstance(result, Sample):
            self._add_sample(position, result)
        elif isinstance(result, Rejection):
            self._add_rejection(position, result)
        else:
            raise TypeError(f"engine returned {type(result).__name__}, not Sample or Rejection")

    def _add_sample(self, position: int, sample: Sample) -> None:
        key = sample_key(self.engine, position)
        record: dict[str, Any] = {
            "schema": SAMPLE_SCHEMA_ID,
            "key": key,
            "engine": self.engine,
            "engine_version": self.engine_version,
            "shard": self.shard,
            "position": position,
            "task": sample.task,
            "prompt": sample.prompt,
            "target": sample.target,
            "boxes": sample.boxes,
            "colors": sample.colors,
            "source": sample.source,
            "meta": sample.meta,
        }
        images = []
        several = len(sample.images) > 1
        for i, image in enumerate(sample.images):
            name = f"{key}.{i}.{image.ext}" if several else f"{key}.{image.ext}"
            offset = self._tar.add(name, image.data)
            images.append(
                {
                    "name": name,
                    "offset": offset,
                    "size": len(image.data),
                    "width": image.width,
                    "height": image.height,
                    "sha256": hashlib.sha256(image.data).hexdigest(),
                }
            )
        # The tar's own JSON is the record without tar offsets, so WebDataset readers get it whole.
        self._tar.add(f"{key}.json", dumps({**record, "images": [{k: v for k, v in im.items() if k != "offset"} for im in images]}).encode())
        record["images"] = images
        self._manifest.write(dumps(record) + "\n")
        self.samples += 1

    def _add_rejection(self, position: int, rejection: Rejection) -> None:
        record = {
            "schema": ERROR_SCHEMA_ID,
            "engine": self.engine,
            "shard": self.shard,
            "position": position,
            "reason": rejection.reason,
            "detail": rejection.detail[:4000],
            "source": rejection.source,
        }
        self._errors.write(dumps(record) + "\n")
        self.rejections += 1
        self.reasons[rejection.reason] = self.reasons.get(rejection.reason, 0) + 1

    def commit(self, start: int, stop: int) -> ShardReceipt:
        """Close the files and publish them; the manifest goes last."""
        self._tar.close()
        self._tar_file.close()
        self._manifest.close()
        self._errors.close()
        files = {}
        for kind in ("tar", "errors", "manifest"):
            path = self.paths[kind]
            files[kind] = {"name": self.names[kind], "bytes": os.path.getsize(path), "sha256": sha256_file(path)}
        for kind in ("tar", "errors", "manifest"):
            self.storage.publish(self.paths[kind], self.names[kind])
        discard_local(self.staging)
        return ShardReceipt(self.shard, start, stop, self.samples, self.rejections, files, self.reasons)

    def abort(self) -> None:
        for handle in (self._tar_file, self._manifest, self._errors):
            try:
                handle.close()
            except Exception:  # noqa: BLE001 - best effort while already failing
                pass
        discard_local(self.staging)


def iter_jsonl(storage: Storage, name: str) -> Iterator[dict[str, Any]]:
    text = storage.read_text(name)
    for line in text.splitlines():
        if line.strip():
            yield json.loads(line)


def read_manifest(storage: Storage, shard: int) -> list[dict[str, Any]]:
    return list(iter_jsonl(storage, shard_names(shard)["manifest"]))


def read_errors(storage: Storage, shard: int) -> list[dict[str, Any]]:
    return list(iter_jsonl(storage, shard_names(shard)["errors"]))


def read_image(storage: Storage, record: dict[str, Any], index: int = 0) -> bytes:
    """One image of a manifest record, read in place from its tar."""
    image = record["images"][index]
    return storage.read_range(shard_names(record["shard"])["tar"], image["offset"], image["size"])
