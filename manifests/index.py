"""index.json: what a dataset folder was built with and what each finished shard holds.

The index is deterministic (sorted keys, no timestamps), so two identical builds
write identical indexes. Wall-clock figures go to run reports, never here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from engines.base import stable_hash
from manifests.schema import INDEX_SCHEMA_ID
from manifests.storage import Storage

INDEX_NAME = "index.json"


@dataclass
class DatasetConfig:
    """Everything that decides the bytes of a sample. Two builds with equal configs agree."""

    engine: str
    engine_version: str
    params: dict[str, Any]
    seed: int
    shard_size: int
    inputs: list[str]
    inputs_sha256: str

    def fingerprint(self) -> str:
        return stable_hash(
            [self.engine, self.engine_version, self.params, self.seed, self.shard_size, self.inputs_sha256]
        )

    def differences(self, other: DatasetConfig) -> list[str]:
        out = []
        for name in ("engine", "engine_version", "seed", "shard_size", "inputs_sha256"):
            if getattr(self, name) != getattr(other, name):
                out.append(f"{name} {getattr(other, name)!r} -> {getattr(self, name)!r}")
        for key in sorted(set(self.params) | set(other.params)):
            if self.params.get(key) != other.params.get(key):
                out.append(f"param {key} {other.params.get(key)!r} -> {self.params.get(key)!r}")
        return out


@dataclass
class DatasetIndex:
    config: DatasetConfig
    n: int
    shards: dict[int, dict[str, Any]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        shards = [self.shards[i] for i in sorted(self.shards)]
        reasons: dict[str, int] = {}
        for shard in shards:
            for reason, count in shard.get("reasons", {}).items():
                reasons[reason] = reasons.get(reason, 0) + count
        c = self.config
        return {
            "schema": INDEX_SCHEMA_ID,
            "engine": c.engine,
            "engine_version": c.engine_version,
            "params": c.params,
            "seed": c.seed,
            "shard_size": c.shard_size,
            "n": self.n,
            "inputs": c.inputs,
            "inputs_sha256": c.inputs_sha256,
            "config_sha256": c.fingerprint(),
            "shards": shards,
            "totals": {
                "shards_planned": planned_shards(self.n, c.shard_size),
                "shards_complete": len(shards),
                "samples": sum(s["samples"] for s in shards),
                "errors": sum(s["errors"] for s in shards),
                "errors_by_reason": dict(sorted(reasons.items())),
                "bytes": sum(f["bytes"] for s in shards for f in s["files"].values()),
            },
        }

    @property
    def complete(self) -> bool:
        return len(self.shards) == planned_shards(self.n, self.config.shard_size) and all(
            self.shards.get(i, {}).get("stop") == stop for i, (_, stop) in enumerate(shard_ranges(self.n, self.config.shard_size))
        )

    def save(self, storage: Storage) -> None:
        blob = json.dumps(self.to_json(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        storage.write_atomic(INDEX_NAME, blob.encode("utf-8"))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetIndex:
        config = DatasetConfig(
            engine=data["engine"],
            engine_version=data["engine_version"],
            params=data["params"],
            seed=data["seed"],
            shard_size=data["shard_size"],
            inputs=data["inputs"],
            inputs_sha256=data.get("inputs_sha256", ""),
        )
        return cls(config, data["n"], {s["index"]: s for s in data["shards"]})

    @classmethod
    def load(cls, storage: Storage) -> DatasetIndex | None:
        if not storage.exists(INDEX_NAME):
            return None
        return cls.from_json(json.loads(storage.read_text(INDEX_NAME)))


def planned_shards(n: int, shard_size: int) -> int:
    return -(-n // shard_size)


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    return [(start, min(start + shard_size, n)) for start in range(0, n, shard_size)]
