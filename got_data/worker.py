"""The worker side of a build: one shard in, one published shard out."""

from __future__ import annotations

import atexit
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from engines import get_engine
from engines.base import Engine, iter_results
from manifests.shard import ShardWriter
from manifests.storage import Storage


@dataclass(frozen=True)
class ShardJob:
    engine: str
    params: dict[str, Any]
    seed: int
    config_sha256: str
    shard: int
    start: int
    stop: int
    out: str


# Per-worker cache of engine instances (and through them their renderers: browsers,
# TeX formats, OCR models), reused across the shards this worker builds.
_ENGINES: OrderedDict[str, Engine] = OrderedDict()
_MAX_ENGINES = 4


def _close_all() -> None:
    while _ENGINES:
        _, engine = _ENGINES.popitem()
        engine.close()


atexit.register(_close_all)


def engine_for(job: ShardJob, load_units: Any) -> Engine:
    """The cached engine for this job's config; ``load_units()`` is called only on a miss."""
    engine = _ENGINES.get(job.config_sha256)
    if engine is None:
        cls = get_engine(job.engine)
        engine = cls(job.params, job.seed, load_units())
        _ENGINES[job.config_sha256] = engine
        while len(_ENGINES) > _MAX_ENGINES:
            _ENGINES.popitem(last=False)[1].close()
    _ENGINES.move_to_end(job.config_sha256)
    return engine


def build_shard(job: ShardJob, load_units: Any) -> dict[str, Any]:
    """Generate, write and publish one shard; return its receipt for the index."""
    engine = engine_for(job, load_units)
    writer = ShardWriter(Storage(job.out), job.shard, engine.name, engine.version)
    try:
        for position, result in iter_results(engine, range(job.start, job.stop)):
            writer.add(position, result)
        return writer.commit(job.start, job.stop).to_json()
    except BaseException:
        writer.abort()
        raise
