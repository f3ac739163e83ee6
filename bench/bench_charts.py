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
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
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


def _worker_cpu() -> dict[int, float]:
    """CPU seconds so far of this process's Ray worker processes, by pid."""
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
            if "default_worker.py" in cmd or cmd.startswith("ray::"):
                t = child.cpu_times()
                out[child.pid] = t.user + t.system
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


@dataclass
class Run:
    rate: float  # charts per wall second
    cpu_ms: float  # CPU ms per chart in the driver and the Ray workers (load-independent)
    mem: MemorySampler


def pipeline(n: int, workers: int, out: Path, shard_size: int) -> Run:
    shutil.rmtree(out, ignore_errors=True)
    before, me = _worker_cpu(), psutil.Process().cpu_times()
    with MemorySampler() as mem:
        started = time.perf_counter()
        summary = build(BuildRequest("charts", n, str(out), shard_size=shard_size, workers=workers,
                                     params=PARAMS, progress=False))  # fmt: skip
        seconds = time.perf_counter() - started
    after, me2 = _worker_cpu(), psutil.Process().cpu_times()
    cpu = sum(t - before.get(pid, 0.0) for pid, t in after.items()) + (me2.user + me2.system - me.user - me.system)
    assert summary.samples + summary.errors == n, summary
    return Run(n / seconds, cpu / n * 1000, mem)


def bare_run(n: int) -> Run:
    t = time.process_time()
    rate = bare_loop(n)
    return Run(rate, (time.process_time() - t) / n * 1000, MemorySampler())


def start_ray(cpus: int) -> float:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="charts per measurement and round (2 workers get 2x)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians are printed")
    ap.add_argument("--mem-n", default="100,1000", help="small,large n of the memory comparison (2 workers)")
    args = ap.parse_args()
    small, large = (int(x) for x in args.mem_n.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="bench-charts-"))
    n, shard = args.n, max(1, args.n // 4)
    # Every pipeline run is interleaved with a bare loop of the same charts, so a change of machine
    # load (other jobs) hits both sides of each ratio; ratios are medians over rounds.
    bare1, one, bare2, two, naive = [], [], [], [], []
    try:
        bare_loop(3)  # imports, font registration
        ray_start = start_ray(1)
        pipeline(2, 1, tmp / "warm1", shard)
        for r in range(args.rounds):
            bare1.append(bare_run(n))
            one.append(pipeline(n, 1, tmp / f"p1-{r}", shard))
            naive.append(naive_loop(n, tmp / f"naive-{r}"))
        start_ray(2)
        pipeline(4, 2, tmp / "warm2", 2)
        for r in range(args.rounds):
            bare2.append(bare_run(n))
            two.append(pipeline(2 * n, 2, tmp / f"p2-{r}", shard))
        mem_small = pipeline(small, 2, tmp / "m1", 20).mem
        mem_large = pipeline(large, 2, tmp / "m2", 20).mem
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    one_vs_bare = med(o.rate / b.rate for o, b in zip(one, bare1, strict=True))
    two_vs_bare = med(t.rate / b.rate for t, b in zip(two, bare2, strict=True))
    one_vs_naive = med(o.rate / v for o, v in zip(one, naive, strict=True))
    mib = 1024 * 1024
    print(f"charts benchmark (Matplotlib, echarts_share=0), {os.cpu_count()} cores, "
          f"load avg {os.getloadavg()[0]:.1f}, {args.rounds} rounds of n={n}, medians")  # fmt: skip
    print(f"  bare render+encode loop, 1 process : {med(b.rate for b in bare1 + bare2):6.2f} charts/s"
          f"   {med(b.cpu_ms for b in bare1 + bare2):5.0f} CPU ms/chart")  # fmt: skip
    print(f"  naive (savefig + files), 1 process : {med(naive):6.2f} charts/s")
    print(f"  pipeline, Ray, 1 worker            : {med(o.rate for o in one):6.2f} charts/s"
          f"   {med(o.cpu_ms for o in one):5.0f} CPU ms/chart")  # fmt: skip
    print(f"  pipeline, Ray, 2 workers           : {med(t.rate for t in two):6.2f} charts/s"
          f"   {med(t.cpu_ms for t in two):5.0f} CPU ms/chart")  # fmt: skip
    print(f"  pipeline 1 worker / bare loop      : {one_vs_bare:.2f}   (CPU per chart bare/pipeline "
          f"{med(b.cpu_ms for b in bare1) / med(o.cpu_ms for o in one):.2f})")  # fmt: skip
    print(f"  pipeline 1 worker / naive          : {one_vs_naive:.2f}")
    print(f"  2 workers / 1 worker               : {two_vs_bare / one_vs_bare:.2f}   (2 workers / bare loop "
          f"{two_vs_bare:.2f})")  # fmt: skip
    print(f"  Ray start-up (not in the above)    : {ray_start:6.1f} s")
    print(f"  peak RSS driver+workers n={small:<6}: {mem_small.peak_workers / mib:7.0f} MiB"
          f"   (all Ray processes {mem_small.peak_all / mib:.0f} MiB)")  # fmt: skip
    print(f"  peak RSS driver+workers n={large:<6}: {mem_large.peak_workers / mib:7.0f} MiB"
          f"   (all Ray processes {mem_large.peak_all / mib:.0f} MiB)")  # fmt: skip
    print(f"  memory ratio large/small           : {mem_large.peak_workers / mem_small.peak_workers:.3f}"
          f"   (all Ray processes {mem_large.peak_all / mem_small.peak_all:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
