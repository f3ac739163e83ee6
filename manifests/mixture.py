"""Training mixtures: which datasets, with what weight, and how many samples of each.

A mixture file names its datasets by path relative to itself and fixes, for each,
how many samples it contributes (``take``) and the seed that picks them. Samples
are picked by a seeded permutation of the dataset's keys; a component asked for
more samples than it has repeats them (upsampling), whole passes first.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from got_data.errors import UserError
from manifests.index import DatasetIndex
from manifests.shard import read_manifest
from manifests.storage import Storage

MIXTURE_SCHEMA_ID = "got-data/mixture/1"


def _allocate(weights: dict[str, float], size: int) -> dict[str, int]:
    """Largest-remainder split of ``size`` by weight: the takes add up to ``size`` exactly."""
    total = sum(weights.values())
    exact = {name: size * w / total for name, w in weights.items()}
    take = {name: int(v) for name, v in exact.items()}
    rest = size - sum(take.values())
    for name in sorted(exact, key=lambda n: (take[n] - exact[n], n))[:rest]:
        take[name] += 1
    return take


def write_mixture(path: str, name: str, components: dict[str, str], weights: dict[str, float],
                  size: int | None, seed: int) -> dict[str, Any]:
    available = {}
    for node, url in components.items():
        index = DatasetIndex.load(Storage(url))
        if index is None:
            raise UserError(f"mixture {name}: {url} is not built")
        available[node] = sum(s["samples"] for s in index.shards.values())
    size = size or sum(available.values())
    take = _allocate(weights, size)
    folder = os.path.dirname(os.path.abspath(path))
    mixture = {
        "schema": MIXTURE_SCHEMA_ID,
        "name": name,
        "seed": seed,
        "size": size,
        "components": [
            {
                "node": node,
                "path": os.path.relpath(os.path.abspath(components[node]), folder) if "://" not in components[node]
                else components[node],
                "weight": weights[node],
                "available": available[node],
                "take": take[node],
            }
            for node in sorted(components)
        ],
    }
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(mixture, handle, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return mixture


def iter_mixture_records(path: str, exclude_flagged: bool = False) -> Iterator[tuple[Storage, dict[str, Any]]]:
    with open(path, encoding="utf-8") as handle:
        mixture = json.load(handle)
    if mixture.get("schema") != MIXTURE_SCHEMA_ID:
        raise UserError(f"{path} is not a got-data mixture file")
    folder = os.path.dirname(os.path.abspath(path))
    for i, component in enumerate(mixture["components"]):
        url = component["path"] if "://" in component["path"] else os.path.join(folder, component["path"])
        storage = Storage(url)
        index = DatasetIndex.load(storage)
        if index is None:
            raise UserError(f"mixture {mixture['name']}: dataset {url} is missing")
        records = [r for shard in sorted(index.shards) for r in read_manifest(storage, shard)]
        if exclude_flagged:
            from manifests.flags import load_flags

            flagged = load_flags(url)
            records = [r for r in records if r["key"] not in flagged]
        if not records:
            continue
        rng = np.random.default_rng([mixture["seed"], i])
        taken = 0
        while taken < component["take"]:
            for j in rng.permutation(len(records))[: component["take"] - taken]:
                yield storage, records[int(j)]
                taken += 1
