"""Where shards run: in this process (``--workers 0``) or as Ray tasks, local or on a cluster."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from typing import Any

from got_data.errors import UserError
from got_data.worker import ShardJob, build_shard


class BuildError(UserError):
    """A build that cannot start or go on; nothing already built is touched."""


class InlineExecutor:
    """Runs shards one after another in this process: for debugging and fast tests."""

    def __init__(self) -> None:
        self.workers = 1

    def run(self, jobs: Sequence[ShardJob], units: Sequence[Any]) -> Iterator[dict[str, Any]]:
        for job in jobs:
            yield build_shard(job, lambda: units)

    def close(self) -> None:
        pass


def check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast with one line when a cluster address does not answer (ray.init would wait long)."""
    if address in ("auto", "local"):
        return
    target = address.removeprefix("ray://")
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise BuildError(f"Ray address {address!r} is not host:port")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise BuildError(f"Ray cluster at {address} does not answer ({exc.strerror or exc})") from None


def _remote_build(job: ShardJob, units_box: list[Any]) -> dict[str, Any]:
    import ray

    # units_box wraps the ObjectRef so Ray does not fetch the units unless the worker needs them.
    return build_shard(job, lambda: ray.get(units_box[0]))


class RayExecutor:
    """One Ray task per shard, with retries; ``workers`` bounds how many run at once."""

    def __init__(self, workers: int | None, address: str | None) -> None:
        import ray

        self._ray = ray
        address = address or os.environ.get("RAY_ADDRESS") or None
        if address:
            check_reachable(address)
        self.owns_cluster = not ray.is_initialized()
        if self.owns_cluster:
            kwargs: dict[str, Any] = {
                "include_dashboard": False,
                "logging_level": "ERROR",
                "log_to_driver": True,
                "configure_logging": True,
            }
            if address:
                kwargs["address"] = address
            else:
                kwargs["num_cpus"] = workers or os.cpu_count() or 1
            try:
                ray.init(**kwargs)
            except (ConnectionError, TimeoutError, RuntimeError) as exc:
                raise BuildError(f"cannot start or join Ray ({address or 'local'}): {exc}") from None
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = min(workers, cpus) if workers else cpus
        self._task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=True)(_remote_build)

    def run(self, jobs: Sequence[ShardJob], units: Sequence[Any]) -> Iterator[dict[str, Any]]:
        ray = self._ray
        units_ref = ray.put(list(units))
        pending = list(reversed(jobs))
        running: dict[Any, ShardJob] = {}
        # A Ray we started has exactly `workers` CPUs, so a queue of as many again keeps them busy;
        # on a cluster we joined, `--workers` caps how many shards run at once.
        limit = 2 * self.workers if self.owns_cluster else self.workers
        while pending or running:
            while pending and len(running) < limit:
                job = pending.pop()
                running[self._task.remote(job, [units_ref])] = job
            done, _ = ray.wait(list(running), num_returns=1)
            for ref in done:
                job = running.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise BuildError(f"shard {job.shard} failed after retries: {_first_line(exc)}") from None

    def close(self) -> None:
        if self.owns_cluster:
            self._ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return next((line for line in reversed(text) if line.strip()), type(exc).__name__)


def make_executor(workers: int | None, address: str | None) -> InlineExecutor | RayExecutor:
    if workers == 0:
        if address:
            raise BuildError("--workers 0 runs in this process and cannot be combined with --address")
        return InlineExecutor()
    return RayExecutor(workers, address)

