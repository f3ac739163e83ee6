"""Benchmark of the charts engine (Matplotlib half), run by hand: python bench/bench_charts.py

Prints, from one run, side by side and as ratios:
  * the bare render-and-encode loop (renderers.matplotlib_charts.render_chart on the engine's specs),
  * the naive way (same charts, one process, savefig to PNG files + a JSON file per chart),
  * the full pipeline (got_data.build on Ray, --param echarts_share=0) with 1 and 2 workers,
  * peak memory (driver + Ray workers, and all of the build's Ray processes) at a small and a 10x larger n.

Ray is started by the bench (not by build) and workers are warmed up by a small build first, so the
timed builds measure steady throughput; Ray's start-up (~4 s) is printed separately.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLCONFIGDIR", str(ROOT / ".cache" / "matplotlib"))

import psutil  # noqa: E402

from engines.charts import MAX_ATTEMPTS, Charts  # noqa: E402
from got_data.build import BuildRequest, build  # noqa: E402
from renderers import matplotlib_charts as mc  # noqa: E402
from renderers.charts import onechart_target  # noqa: E402

PARAMS = {"echarts_share": 0}


def bare_loop(n: int) -> float:
    """Charts/s of render_chart alone on the engine's specs (retries included, as the engine does)."""
    engine = Charts(Charts.resolve_params(PARAMS), 0)
    started = time.perf_counter()
    for position in range(n):
        for attempt in range(MAX_ATTEMPTS):
            _, spec, rng = engine.choose(position, attempt)
            try:
                mc.render_chart(spec, rng)
                break
            except mc.LayoutError:
                continue
    return n / (time.perf_counter() - started)


def naive_loop(n: int, out: Path) -> float:
    """Charts/s of the obvious script: draw, savefig PNG to a file, dump the target beside it."""
    engine = Charts(Charts.resolve_params(PARAMS), 0)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    for position in range(n):
        for attempt in range(MAX_ATTEMPTS):
            _, spec, rng = engine.choose(position, attempt)
            try:
                fig, _ = mc.draw_chart(spec, rng)
            except mc.LayoutError:
                continue
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            (out / f"{position}.png").write_bytes(buf.getvalue())
            (out / f"{position}.json").write_text(json.dumps({"target": onechart_target(spec)}))
            break
    return n / (time.perf_counter() - started)


class MemorySampler:
    """Peak RSS of this process plus its descendants (Ray workers, and all Ray daemons), sampled."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_workers = 0  # driver + ray worker processes
        self.peak_all = 0  # driver + every descendant (raylet, gcs, workers...)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            workers = total = me.memory_info().rss
            for child in me.children(recursive=True):
                try:
                    rss = child.memory_info().rss
                    cmd = " ".join(child.cmdline())
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                if "default_worker.py" in cmd or cmd.startswith("ray::"):
                    workers += rss
            self.peak_workers = max(self.peak_workers, workers)
            self.peak_all = max(self.peak_all, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def pipeline(n: int, workers: int, out: Path, shard_size: int) -> tuple[float, MemorySampler]:
    shutil.rmtree(out, ignore_errors=True)
    with MemorySampler() as mem:
        started = time.perf_counter()
        summary = build(BuildRequest("charts", n, str(out), shard_size=shard_size, workers=workers,
                                     params=PARAMS, progress=False))  # fmt: skip
        seconds = time.perf_counter() - started
    assert summary.samples + summary.errors == n, summary
    return n / seconds, mem


def start_ray(cpus: int) -> float:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=60, help="charts per throughput measurement (2 workers get 2x)")
    ap.add_argument("--mem-n", default="100,1000", help="small,large n of the memory comparison (2 workers)")
    args = ap.parse_args()
    small, large = (int(x) for x in args.mem_n.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="bench-charts-"))
    shard = 10
    try:
        bare_loop(3)  # imports, font registration
        bare = bare_loop(args.n)
        naive = naive_loop(args.n, tmp / "naive")

        ray_start = start_ray(1)
        pipeline(2, 1, tmp / "warm1", shard)
        one, _ = pipeline(args.n, 1, tmp / "p1", shard)

        start_ray(2)
        pipeline(4, 2, tmp / "warm2", 2)
        two, _ = pipeline(2 * args.n, 2, tmp / "p2", shard)
        _, mem_small = pipeline(small, 2, tmp / "m1", 20)
        _, mem_large = pipeline(large, 2, tmp / "m2", 20)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    mib = 1024 * 1024
    print(f"charts benchmark (Matplotlib, echarts_share=0), {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"  bare render+encode loop, 1 process : {bare:6.2f} charts/s")
    print(f"  naive (savefig + files), 1 process : {naive:6.2f} charts/s")
    print(f"  pipeline, Ray, 1 worker            : {one:6.2f} charts/s   = {one / bare:.2f} x bare loop"
          f"   = {one / naive:.2f} x naive")  # fmt: skip
    print(f"  pipeline, Ray, 2 workers           : {two:6.2f} charts/s   = {two / one:.2f} x 1 worker"
          f"   = {two / bare:.2f} x bare loop   = {two / naive:.2f} x naive")  # fmt: skip
    print(f"  Ray start-up (not in the above)    : {ray_start:6.1f} s")
    print(f"  peak RSS driver+workers n={small:<6}: {mem_small.peak_workers / mib:7.0f} MiB"
          f"   (all Ray processes {mem_small.peak_all / mib:.0f} MiB)")  # fmt: skip
    print(f"  peak RSS driver+workers n={large:<6}: {mem_large.peak_workers / mib:7.0f} MiB"
          f"   (all Ray processes {mem_large.peak_all / mib:.0f} MiB)")  # fmt: skip
    print(f"  memory ratio large/small           : {mem_large.peak_workers / mem_small.peak_workers:.3f}"
          f"   (all Ray processes {mem_large.peak_all / mem_small.peak_all:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
