"""`got-data validate`: re-check every shard against index.json, the manifests and the schema."""

from __future__ import annotations

import hashlib
import json
import tarfile
from dataclasses import dataclass, field

from manifests.index import INDEX_NAME, DatasetIndex, planned_shards
from manifests.schema import ERROR_SCHEMA_ID, INDEX_SCHEMA_ID, SAMPLE_SCHEMA_ID, schema_errors
from manifests.shard import shard_names
from manifests.storage import Storage


@dataclass
class ValidationReport:
    shards: int = 0
    samples: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_dataset(url: str) -> ValidationReport:
    report = ValidationReport()
    storage = Storage(url)
    if not storage.exists(INDEX_NAME):
        report.problems.append(f"{url}: no {INDEX_NAME}; not a got-data dataset")
        return report
    try:
        raw = json.loads(storage.read_text(INDEX_NAME))
    except ValueError as exc:
        report.problems.append(f"{INDEX_NAME}: not JSON ({exc})")
        return report
    report.problems += [f"{INDEX_NAME}: {e}" for e in schema_errors(raw, INDEX_SCHEMA_ID)]
    if report.problems:
        return report
    index = DatasetIndex.from_json(raw)
    planned = planned_shards(index.n, index.config.shard_size)
    if len(index.shards) < planned:
        report.notes.append(f"incomplete build: {len(index.shards)} of {planned} shards done; re-run the build to finish")
    for shard in sorted(index.shards):
        _check_shard(storage, index.shards[shard], report)
        report.shards += 1
    return report


def _check_shard(storage: Storage, record: dict, report: ValidationReport) -> None:
    shard = record["index"]
    names = shard_names(shard)
    for kind, expected in record["files"].items():
        name = expected["name"]
        if name != names[kind]:
            report.problems.append(f"shard {shard}: index names {name!r} for its {kind}, expected {names[kind]!r}")
            return
        if not storage.exists(name):
            report.problems.append(f"{name}: missing")
            return
        if storage.size(name) != expected["bytes"] or storage.sha256(name) != expected["sha256"]:
            report.problems.append(f"{name}: size or sha256 differs from {INDEX_NAME}")
            return
    tar_bytes = storage.read_bytes(names["tar"])
    members = _tar_members(tar_bytes, names["tar"], report)
    if members is None:
        return
    samples = [json.loads(line) for line in storage.read_text(names["manifest"]).splitlines() if line.strip()]
    rejected = [json.loads(line) for line in storage.read_text(names["errors"]).splitlines() if line.strip()]
    if len(samples) != record["samples"] or len(rejected) != record["errors"]:
        report.problems.append(f"shard {shard}: {len(samples)} samples / {len(rejected)} errors, index says "
                               f"{record['samples']} / {record['errors']}")
    positions = []
    for sample in samples:
        where = f"{names['manifest']} key {sample.get('key')}"
        problems = schema_errors(sample, SAMPLE_SCHEMA_ID)
        if problems:
            report.problems += [f"{where}: {p}" for p in problems]
            continue
        positions.append(sample["position"])
        if sample["shard"] != shard:
            report.problems.append(f"{where}: shard {sample['shard']} in shard {shard}")
        expected_json = f"{sample['key']}.json"
        if expected_json not in members:
            report.problems.append(f"{where}: no {expected_json} in the tar")
        for image in sample["images"]:
            data = tar_bytes[image["offset"] : image["offset"] + image["size"]]
            if members.get(image["name"]) != (image["offset"], image["size"]):
                report.problems.append(f"{where}: image {image['name']} is not at offset {image['offset']} in the tar")
            elif hashlib.sha256(data).hexdigest() != image["sha256"]:
                report.problems.append(f"{where}: image {image['name']} sha256 mismatch")
    for error in rejected:
        report.problems += [f"{names['errors']}: {p}" for p in schema_errors(error, ERROR_SCHEMA_ID)]
        positions.append(error.get("position"))
    expected_positions = list(range(record["start"], record["stop"]))
    if sorted(p for p in positions if isinstance(p, int)) != expected_positions:
        report.problems.append(f"shard {shard}: samples and errors do not cover positions "
                               f"{record['start']}..{record['stop'] - 1} exactly once")
    report.samples += len(samples)
    report.errors += len(rejected)


def _tar_members(data: bytes, name: str, report: ValidationReport) -> dict[str, tuple[int, int]] | None:
    import io

    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            return {m.name: (m.offset_data, m.size) for m in tar.getmembers()}
    except tarfile.TarError as exc:
        report.problems.append(f"{name}: unreadable tar ({exc})")
        return None
