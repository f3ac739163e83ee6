"""`got-data export`: a dataset (or a training mixture) in the form a trainer reads.

- ``got``: GOT-OCR2.0's conversation JSON (one JSON array) plus an image folder; the
  annotation's ``image`` is relative to DEST/images/. Multi-image samples get a folder
  ``<key>/`` holding ``0.png, 1.png, ...`` (GOT globs ``<prefix>*.png`` and natsorts).
- ``swift``: ms-swift JSONL (query/response/images) with absolute image paths.
- ``parquet``: one Parquet file per shard with Hugging Face feature metadata, so
  ``datasets.load_dataset("parquet", ...)`` yields the image as an Image feature.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from got_data.errors import UserError
from manifests.index import INDEX_NAME, DatasetIndex
from manifests.shard import read_image, read_manifest
from manifests.storage import Storage

FORMATS = ("got", "swift", "parquet")


class ExportError(UserError):
    pass


def _open_dataset(url: str) -> tuple[Storage, DatasetIndex]:
    storage = Storage(url)
    index = DatasetIndex.load(storage) if storage.exists(INDEX_NAME) else None
    if index is None:
        raise ExportError(f"{url} is not a got-data dataset (no {INDEX_NAME})")
    return storage, index


def iter_records(src: str, exclude_flagged: bool = False) -> Iterator[tuple[Storage, dict[str, Any]]]:
    """Every sample record of a dataset folder, or of each dataset in a mixture file, in order."""
    if src.endswith(".json") and os.path.isfile(src):
        from manifests.mixture import iter_mixture_records

        yield from iter_mixture_records(src, exclude_flagged=exclude_flagged)
        return
    storage, index = _open_dataset(src)
    flagged: set[str] = set()
    if exclude_flagged:
        from manifests.flags import load_flags

        flagged = load_flags(src)
    for shard in sorted(index.shards):
        for record in read_manifest(storage, shard):
            if record["key"] not in flagged:
                yield storage, record


def _prepare_dest(dest: str) -> Path:
    path = Path(dest)
    if path.exists() and any(path.iterdir()):
        raise ExportError(f"export destination {dest} is not empty; choose a new folder")
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write_images(storage: Storage, record: dict[str, Any], images_dir: Path) -> tuple[str, list[Path]]:
    """Write a record's images; return GOT's ``image`` field and the file paths."""
    key = record["key"]
    if len(record["images"]) == 1:
        ext = record["images"][0]["name"].rsplit(".", 1)[-1]
        path = images_dir / f"{key}.{ext}"
        path.write_bytes(read_image(storage, record, 0))
        return path.name, [path]
    folder = images_dir / key
    folder.mkdir(exist_ok=True)
    paths = []
    for i, image in enumerate(record["images"]):
        ext = image["name"].rsplit(".", 1)[-1]
        paths.append(folder / f"{i}.{ext}")
        paths[-1].write_bytes(read_image(storage, record, i))
    return f"{key}/", paths


def export_got(src: str, dest: str, exclude_flagged: bool = False) -> int:
    out = _prepare_dest(dest)
    images = out / "images"
    images.mkdir()
    entries = []
    for storage, record in iter_records(src, exclude_flagged):
        image_field, _ = _write_images(storage, record, images)
        entries.append(
            {
                "image": image_field,
                "conversations": [
                    {"from": "human", "value": "<image>\n" + record["prompt"]},
                    {"from": "gpt", "value": record["target"]},
                ],
            }
        )
    (out / "annotations.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1), encoding="utf-8")
    return len(entries)


def export_swift(src: str, dest: str, exclude_flagged: bool = False) -> int:
    out = _prepare_dest(dest)
    images = out / "images"
    images.mkdir()
    count = 0
    with open(out / "train.jsonl", "w", encoding="utf-8") as handle:
        for storage, record in iter_records(src, exclude_flagged):
            _, paths = _write_images(storage, record, images)
            line = {
                "query": "<image>" * len(paths) + record["prompt"],
                "response": record["target"],
                "images": [str(p.resolve()) for p in paths],
            }
            handle.write(json.dumps(line, ensure_ascii=False) + "\n")
            count += 1
    return count


_HF_FEATURES = {
    "key": {"dtype": "string", "_type": "Value"},
    "dataset": {"dtype": "string", "_type": "Value"},
    "task": {"dtype": "string", "_type": "Value"},
    "prompt": {"dtype": "string", "_type": "Value"},
    "target": {"dtype": "string", "_type": "Value"},
    "image": {"_type": "Image"},
    "images": {"feature": {"_type": "Image"}, "_type": "List"},
}


def export_parquet(src: str, dest: str, exclude_flagged: bool = False, rows_per_file: int = 10_000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    out = _prepare_dest(dest)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [
            ("key", pa.string()),
            ("dataset", pa.string()),
            ("task", pa.string()),
            ("prompt", pa.string()),
            ("target", pa.string()),
            ("image", image_type),
            ("images", pa.list_(image_type)),
        ],
        metadata={"huggingface": json.dumps({"info": {"features": _HF_FEATURES}})},
    )
    count, part, rows = 0, 0, []

    def flush() -> None:
        nonlocal part, rows
        if rows:
            table = pa.Table.from_pylist(rows, schema=schema)
            pq.write_table(table, out / f"part-{part:05d}.parquet")
            part, rows = part + 1, []

    for storage, record in iter_records(src, exclude_flagged):
        images = [
            {"bytes": read_image(storage, record, i), "path": image["name"]} for i, image in enumerate(record["images"])
        ]
        rows.append(
            {
                "key": record["key"],
                "dataset": record["engine"],
                "task": record["task"],
                "prompt": record["prompt"],
                "target": record["target"],
                "image": images[0],
                "images": images,
            }
        )
        count += 1
        if len(rows) >= rows_per_file:
            flush()
    flush()
    return count


def export(src: str, to: str, dest: str, exclude_flagged: bool = False) -> int:
    writers = {"got": export_got, "swift": export_swift, "parquet": export_parquet}
    if to not in writers:
        raise ExportError(f"unknown export format {to!r} (known: {', '.join(FORMATS)})")
    if not (src.endswith(".json") and os.path.isfile(src)):
        _open_dataset(src)  # a bad source is reported before anything is written
    return writers[to](src, dest, exclude_flagged)
