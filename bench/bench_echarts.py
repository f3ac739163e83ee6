"""Benchmark of the ECharts half of the charts engine, side by side in one run.

    .venv/bin/python bench/bench_echarts.py [--n 60] [--naive 5] [--ray-n 80] [--no-ray]

Prints: the bare renderer loop on a persistent page, the naive way (a new Chromium per chart),
the full pipeline in-process (workers=0) and on Ray with 1 and 2 workers, their ratios, peak
memory (this process and the Chromium tree), and issue #3's two goals side by side: charts per
CPU-second per core (CPU time of Python + Playwright driver + every Chromium process, which does
not depend on how loaded the machine is) and persistent page vs new browser per chart.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from renderers import echarts_charts as ec  # noqa: E402
from renderers.browser import Browser, tagged_processes  # noqa: E402


def specs(n: int, seed: int = 0) -> list:
    """Specs as the charts engine draws them (its own generator when present)."""
    try:
        from engines.charts import ALL_KINDS, random_spec

        return [random_spec(np.random.default_rng([seed, i]), ALL_KINDS, 0.3) for i in range(n)]
    except ImportError:
        from test_echarts_charts import KINDS, make_spec

        return [make_spec(KINDS[i % len(KINDS)], np.random.default_rng([seed, i]), "en") for i in range(n)]


def tree_rss_mb(tag: str) -> float:
    total = 0
    for pid in tagged_processes(tag):
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds() -> float:
    """CPU time of this process and all its live descendants (Playwright driver, Chromium tree)."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def render_all(items: list, on: Browser | None = None) -> tuple[float, int]:
    layout = 0
    t0 = time.perf_counter()
    for i, spec in enumerate(items):
        try:
            ec.render_chart(spec, np.random.default_rng(i), on=on)
        except ec.LayoutError:
            layout += 1
    return time.perf_counter() - t0, layout


def bare(n: int) -> dict:
    items = specs(n)
    browser = ec.browser()
    t0 = time.perf_counter()
    ec.render_chart(items[0], np.random.default_rng(0))  # browser start + page setup
    startup = time.perf_counter() - t0
    # Three passes; the median is reported (the machine is shared and noisy).
    cpu0 = cpu_seconds()
    runs = [render_all(items) for _ in range(3)]
    cpu = (cpu_seconds() - cpu0) / 3
    seconds = statistics.median(r[0] for r in runs)
    peak_tree = tree_rss_mb(browser.tag)
    ec.close()
    return {"n": n, "startup_s": startup, "seconds": seconds, "per_s": n / seconds,
            "layout_errors": runs[0][1], "browser_rss_mb": peak_tree,
            "cpu_s": cpu}  # fmt: skip


def naive(n: int) -> dict:
    items = specs(n, seed=1)
    t0 = time.perf_counter()
    for i, spec in enumerate(items):
        own = Browser(ec.browser_options())
        try:
            ec.render_chart(spec, np.random.default_rng(i), on=own)
        except ec.LayoutError:
            pass
        finally:
            own.close()
    seconds = time.perf_counter() - t0
    return {"n": n, "seconds": seconds, "per_s": n / seconds}


def pipeline(n: int, workers: int, shard_size: int) -> dict:
    from got_data.build import BuildRequest, build

    with tempfile.TemporaryDirectory(prefix="bench-echarts-") as out:
        t0 = time.perf_counter()
        summary = build(BuildRequest(engine="charts", n=n, out=out, workers=workers, shard_size=shard_size,
                                     params={"echarts_share": 1}, progress=False))  # fmt: skip
        seconds = time.perf_counter() - t0
    ec.close()
    return {"n": n, "workers": workers, "seconds": seconds, "per_s": n / seconds, "errors": summary.errors}


def ray_pipeline(n: int, workers: int) -> dict:
    """Steady state on Ray: the cluster is started and each worker's Chromium is up (a warm-up build
    of the same config: got-data keeps a worker's engine, and its browser, across shards) before the
    timed build; ray.init and the warm-up are not counted. 8 shards per worker."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        shard_size = max(1, n // (8 * workers))
        pipeline(2 * workers * shard_size, workers, shard_size)
        return pipeline(n * workers, workers, shard_size)
    finally:
        ray.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=60, help="charts for the bare loop and the in-process build")
    ap.add_argument("--naive", type=int, default=5, help="charts for the new-browser-per-chart baseline")
    ap.add_argument("--ray-n", type=int, default=80, help="charts per worker for each timed Ray build")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()

    b = bare(args.n)
    nv = naive(args.naive)
    inline = pipeline(args.n, 0, shard_size=max(1, args.n // 2))
    rays = [] if args.no_ray else [ray_pipeline(args.ray_n, w) for w in (1, 2)]

    print(f"{'':34} {'charts':>7} {'seconds':>8} {'charts/s':>9} {'vs naive':>9}")
    rows = [("naive: new Chromium per chart", nv), ("bare renderer loop (warm page)", b),
            ("pipeline in-process (workers=0)", inline)]  # fmt: skip
    rows += [(f"pipeline on Ray, {r['workers']} worker(s)", r) for r in rays]
    for name, r in rows:
        print(f"{name:34} {r['n']:>7} {r['seconds']:>8.2f} {r['per_s']:>9.1f} {r['per_s'] / nv['per_s']:>8.1f}x")
    print()
    print(f"browser start + page setup: {b['startup_s']:.2f} s; layout retries in the bare loop: {b['layout_errors']}/{b['n']}")
    print(f"bare loop CPU: {1000 * b['cpu_s'] / b['n']:.0f} ms per chart over Python + driver + Chromium "
          f"= {b['n'] / b['cpu_s']:.1f} charts per CPU-second (per core, independent of the machine's load)")
    print(f"pipeline in-process vs bare loop: {inline['per_s'] / b['per_s']:.2f}x")
    if rays:
        print(f"Ray 2 workers vs 1 worker: {rays[1]['per_s'] / rays[0]['per_s']:.2f}x")
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory: this process {self_mb:.0f} MB; one Chromium tree (browser+renderer+helpers) {b['browser_rss_mb']:.0f} MB")
    print("(timings on a shared 2-core machine; the bare loop is the median of 3 passes)")
    per_cpu_s = b["n"] / b["cpu_s"]
    print()
    print(f"{'issue #3 goal':44} {'measured':>10} {'goal':>8}")
    print(f"{'charts per CPU-second, one core (bare loop)':44} {per_cpu_s:>10.1f} {'>= 20':>8}")
    print(f"{'persistent page vs new browser per chart':44} {b['per_s'] / nv['per_s']:>9.1f}x {'>= 20x':>8}")
    print(f"{'  same, full in-process pipeline':44} {inline['per_s'] / nv['per_s']:>9.1f}x")
    load = os.getloadavg()
    print(f"load average during the run: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
