"""The driver of a build: check the folder, plan shards, skip what is done, run the rest.

Flow: resolve the engine and its params -> list input units -> compare with the
folder's index.json (refuse a different config) -> verify finished shards ->
clean temporaries -> run missing shards on the executor -> record each receipt
in index.json (atomically, throttled) -> final index.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from engines import UnknownEngine, get_engine
from engines.base import Engine, ParamError, stable_hash
from got_data.executor import BuildError, make_executor
from got_data.progress import Progress
from got_data.worker import ShardJob
from manifests.index import INDEX_NAME, DatasetConfig, DatasetIndex, shard_ranges
from manifests.shard import shard_names
from manifests.storage import STAGING, Storage

INDEX_SAVE_INTERVAL = 5.0
# Engines' plan() may use per-process renderer state that is not thread-safe (the PDF sandbox
# child speaks one request at a time); `got-data run` builds nodes in threads, so plans take turns.
_PLAN_LOCK = threading.Lock()


@dataclass
class BuildRequest:
    engine: str
    n: int
    out: str
    seed: int = 0
    shard_size: int = 1000
    workers: int | None = None
    address: str | None = None
    overwrite: bool = False
    inputs: list[str] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    progress: bool = True


@dataclass
class BuildSummary:
    out: str
    shards_built: int
    shards_skipped: int
    samples: int
    errors: int
    seconds: float
    errors_by_reason: dict[str, int]


@dataclass
class Plan:
    """What a build would do, before anything is run."""

    storage: Storage
    engine_cls: type[Engine]
    config: DatasetConfig
    index: DatasetIndex
    units: list[Any]
    todo: list[ShardJob]
    skipped: int


def _is_ours(name: str) -> bool:
    return name == INDEX_NAME or name == STAGING or name.startswith("shard-") or ".tmp-" in name or name.startswith("flags")


def resolve_config(req: BuildRequest) -> tuple[type[Engine], DatasetConfig, list[Any]]:
    if req.n < 1:
        raise BuildError(f"--n must be a positive number of samples, not {req.n}")
    if req.shard_size < 1:
        raise BuildError(f"--shard-size must be positive, not {req.shard_size}")
    if req.workers is not None and req.workers < 0:
        raise BuildError(f"--workers must be 0 (in-process) or more, not {req.workers}")
    try:
        cls = get_engine(req.engine)
        params = cls.resolve_params(req.params)
    except (UnknownEngine, ParamError) as exc:
        raise BuildError(str(exc)) from None
    if req.inputs and cls.inputs == "none":
        raise BuildError(f"engine {cls.name!r} makes its samples from the seed and takes no --input")
    if not req.inputs and cls.inputs == "required":
        raise BuildError(f"engine {cls.name!r} needs at least one --input")
    try:
        with _PLAN_LOCK:
            units = list(cls.plan(list(req.inputs), params))
    except (OSError, ValueError) as exc:
        raise BuildError(f"cannot read inputs: {exc}") from None
    if cls.inputs != "none" and not units:
        raise BuildError(f"engine {cls.name!r} found nothing usable in its inputs: {', '.join(req.inputs) or 'built-in set'}")
    config = DatasetConfig(
        engine=cls.name,
        engine_version=cls.version,
        params=params,
        seed=req.seed,
        shard_size=req.shard_size,
        inputs=list(req.inputs),
        inputs_sha256=stable_hash(units),
    )
    return cls, config, units


def _open_folder(storage: Storage, config: DatasetConfig, n: int, overwrite: bool) -> DatasetIndex:
    try:
        storage.makedirs()
        names = storage.listdir()
    except OSError as exc:
        raise BuildError(f"cannot use output folder {storage.url}: {exc.strerror or exc}") from None
    foreign = [name for name in names if not _is_ours(name)]
    if foreign:
        raise BuildError(
            f"output folder {storage.url} is not empty and not a got-data dataset (it has {foreign[0]!r}); choose another"
        )
    try:
        existing = DatasetIndex.load(storage)
    except (ValueError, KeyError) as exc:
        raise BuildError(f"{storage.path(INDEX_NAME)} is unreadable ({exc}); fix or remove it, or use --overwrite") from None
    if existing is not None and overwrite:
        for name in names:
            storage.remove(name)
        existing = None
    if existing is None:
        return DatasetIndex(config, n)
    diffs = config.differences(existing.config)
    if diffs:
        raise BuildError(
            f"{storage.url} was built with other settings ({'; '.join(diffs[:3])}); use another folder or --overwrite"
        )
    if n < existing.n:
        raise BuildError(f"{storage.url} already holds a build of --n {existing.n}; a smaller --n needs --overwrite")
    existing.n = n
    return existing


def _verify_shard(storage: Storage, record: dict[str, Any]) -> str | None:
    """None when the shard's files match the index; otherwise what is wrong. Missing files mean 'rebuild'."""
    for _kind, expected in record["files"].items():
        name = expected["name"]
        if not storage.exists(name):
            return "missing"
        if storage.size(name) != expected["bytes"] or storage.sha256(name) != expected["sha256"]:
            return f"{name} does not match index.json (size or sha256)"
    return None


def plan_build(req: BuildRequest) -> Plan:
    cls, config, units = resolve_config(req)
    storage = Storage(req.out)
    index = _open_folder(storage, config, req.n, req.overwrite)
    storage.clean_temporaries()
    todo, skipped = [], 0
    for shard, (start, stop) in enumerate(shard_ranges(req.n, req.shard_size)):
        record = index.shards.get(shard)
        if record is not None and (record["start"], record["stop"]) == (start, stop):
            problem = _verify_shard(storage, record)
            if problem is None:
                skipped += 1
                continue
            if problem != "missing":
                raise BuildError(
                    f"shard {shard} is corrupted: {problem}; check with 'got-data validate {req.out}', "
                    "delete that shard's files to rebuild it, or use --overwrite"
                )
        if record is not None:
            del index.shards[shard]  # grown last shard or deleted files: rebuilt below
        for name in shard_names(shard).values():
            storage.remove(name)  # files left by a run killed before it updated the index
        todo.append(ShardJob(cls.name if ":" not in req.engine else req.engine, config.params, config.seed,
                             config.fingerprint(), shard, start, stop, req.out))
    return Plan(storage, cls, config, index, units, todo, skipped)


def build(req: BuildRequest) -> BuildSummary:
    started = time.monotonic()
    plan = plan_build(req)
    index, storage = plan.index, plan.storage
    index.save(storage)
    samples = errors = 0
    reasons: dict[str, int] = {}
    if plan.todo:
        executor = make_executor(req.workers, req.address)
        progress = Progress(sum(j.stop - j.start for j in plan.todo), plan.config.engine) if req.progress else None
        last_save = time.monotonic()
        try:
            for receipt in executor.run(plan.todo, plan.units):
                index.shards[receipt["index"]] = receipt
                samples += receipt["samples"]
                errors += receipt["errors"]
                for reason, count in receipt["reasons"].items():
                    reasons[reason] = reasons.get(reason, 0) + count
                if progress:
                    progress.advance(receipt)
                if time.monotonic() - last_save >= INDEX_SAVE_INTERVAL:
                    index.save(storage)
                    last_save = time.monotonic()
        finally:
            index.save(storage)
            if storage.is_local:
                storage.remove(STAGING)
            if progress:
                progress.close()
            executor.close()
    return BuildSummary(req.out, len(plan.todo), plan.skipped, samples, errors, time.monotonic() - started, reasons)


@dataclass
class DatasetStatus:
    """What a build of ``req`` would find, without touching the folder."""

    state: str  # "complete" | "partial" | "empty" | "changed" | "foreign"
    shards_done: int
    shards_planned: int
    samples: int
    detail: str = ""


def dataset_status(req: BuildRequest) -> DatasetStatus:
    _, config, _ = resolve_config(req)
    storage = Storage(req.out)
    ranges = shard_ranges(req.n, req.shard_size)
    names = storage.listdir()
    if any(not _is_ours(name) for name in names):
        return DatasetStatus("foreign", 0, len(ranges), 0, "folder holds files that are not a got-data dataset")
    index = DatasetIndex.load(storage)
    if index is None:
        return DatasetStatus("empty", 0, len(ranges), 0)
    diffs = config.differences(index.config)
    if diffs:
        return DatasetStatus("changed", 0, len(ranges), 0, "; ".join(diffs[:3]))
    done = [
        i for i, (start, stop) in enumerate(ranges)
        if (record := index.shards.get(i)) is not None and (record["start"], record["stop"]) == (start, stop)
        and all(storage.exists(f["name"]) and storage.size(f["name"]) == f["bytes"] for f in record["files"].values())
    ]
    samples = sum(index.shards[i]["samples"] for i in done)
    state = "complete" if len(done) == len(ranges) else "partial"
    return DatasetStatus(state, len(done), len(ranges), samples)
