"""Small helpers shared by the tests: build in-process, read samples back, compare folders."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from PIL import Image

from got_data.build import BuildRequest, BuildSummary, build
from manifests.index import DatasetIndex
from manifests.shard import read_errors, read_image, read_manifest
from manifests.storage import Storage
from renderers.image import decode

SHARED = Path(__file__).resolve().parents[2] / "shared"
SHARED_DATA = SHARED / "data"


def build_dataset(engine: str, out: Path | str, n: int = 8, **kwargs: Any) -> BuildSummary:
    """Build in this process (no Ray) with progress off; kwargs go to BuildRequest."""
    kwargs.setdefault("workers", 0)
    kwargs.setdefault("progress", False)
    kwargs.setdefault("shard_size", max(1, n))
    return build(BuildRequest(engine=engine, n=n, out=str(out), **kwargs))


def samples(out: Path | str) -> list[dict[str, Any]]:
    storage = Storage(str(out))
    index = DatasetIndex.load(storage)
    assert index is not None, f"no index.json in {out}"
    return [record for shard in sorted(index.shards) for record in read_manifest(storage, shard)]


def errors(out: Path | str) -> list[dict[str, Any]]:
    storage = Storage(str(out))
    index = DatasetIndex.load(storage)
    assert index is not None
    return [record for shard in sorted(index.shards) for record in read_errors(storage, shard)]


def image(out: Path | str, record: dict[str, Any], i: int = 0) -> Image.Image:
    return decode(read_image(Storage(str(out)), record, i))


def folder_digest(out: Path | str) -> dict[str, str]:
    """sha256 of every file in a dataset folder, by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(out).iterdir()) if p.is_file()}
