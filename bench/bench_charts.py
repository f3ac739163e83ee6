"""Benchmark of the charts engine (Matplotlib half), run by hand: python bench/bench_charts.py

Prints, from one run, side by side and as ratios (issue #2 item 9):
  * the full pipeline (got_data.build on Ray, --param echarts_share=0) with 1 and with 2 workers,
  * the bare render-and-encode loop of exactly the charts the 1-worker pipeline shipped: its manifest
    gives each position and the attempt that shipped, and the loop draws every attempt up to it
    (failed layouts included, as the engine paid them); the loop's PNGs are checked byte-equal to the
    pipeline's,
  * the naive way (same charts, one process, savefig to PNG files + a JSON file per chart),
  * peak memory (driver + Ray workers, summed RSS sampled with psutil; and all of the build's Ray
    processes) at a small and a 10x larger n with 2 workers.

Steady state: Ray is started by the bench (its start-up is printed apart), and every process that
renders (the Ray workers through a build, this process through the bare loop) first draws a warm-up set
of other charts (seed 1): imports, font registration and matplotlib's font-lookup cache are not charged
to the timed runs. Timed runs then draw a hundred or more charts per worker. Each round runs 1 worker,
bare loop and naive back to back (then 2 workers and a bare loop of the first n of their charts), so a
change of load from other jobs hits both sides of a ratio; ratios are medians over rounds. CPU ms per chart (user+sys of the driver and the
Ray workers, from psutil) is printed beside each rate because wall time on a shared machine is noisy.
"""

from __future__ import annotations

import argparse
import hashlib
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

from engines.charts import Charts  # noqa: E402
from got_data.build import BuildRequest, build  # noqa: E402
from manifests.index import DatasetIndex  # noqa: E402
from manifests.shard import read_image, read_manifest  # noqa: E402
from manifests.storage import Storage  # noqa: E402
from renderers import matplotlib_charts as mc  # noqa: E402
from renderers.charts import onechart_target  # noqa: E402

PARAMS = {"echarts_share": 0}
WARM_SEED = 1  # warm-up charts come from another seed than the timed ones


@dataclass(frozen=True)
class Shipped:
    position: int
    attempt: int  # the attempt that shipped; attempts before it failed their layout check
    sha256: str  # of the pipeline's PNG


def shipped(out: Path) -> list[Shipped]:
    """What a build shipped, from its manifests: position, attempt and image hash of each sample."""
    storage = Storage(str(out))
    index = DatasetIndex.load(storage)
    assert index is not None
    records = [r for shard in sorted(index.shards) for r in read_manifest(storage, shard)]
    return [Shipped(r["position"], r["meta"]["attempt"], hashlib.sha256(read_image(storage, r)).hexdigest())
            for r in records]  # fmt: skip


def _engine(seed: int = 0) -> Charts:
    return Charts(Charts.resolve_params(PARAMS), seed)


@dataclass
class Run:
    rate: float  # charts per wall second
    cpu_ms: float  # CPU ms per chart (driver + Ray workers for the pipeline; this process otherwise)
    cpu_all_ms: float = 0.0  # CPU ms per chart of the driver and every Ray process (daemons included)
    same_bytes: int = 0  # bare loop: charts whose PNG equals the pipeline's


def bare_loop(charts: list[Shipped], seed: int = 0) -> Run:
    """render_chart (draw + PNG) on every attempt the pipeline made for ``charts``, in this process."""
    engine = _engine(seed)
    shipped_png: list[bytes | None] = []
    cpu, started = time.process_time(), time.perf_counter()
    for c in charts:
        png = None
        for attempt in range(c.attempt + 1):  # the failed attempts cost the pipeline too
            _, spec, rng = engine.choose(c.position, attempt)
            try:
                png = mc.render_chart(spec, rng)[0].data
            except mc.LayoutError:
                png = None
        shipped_png.append(png)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    same = sum(png is not None and hashlib.sha256(png).hexdigest() == c.sha256
               for c, png in zip(charts, shipped_png, strict=True))  # fmt: skip
    return Run(len(charts) / seconds, cpu / len(charts) * 1000, same_bytes=same)


def naive_loop(charts: list[Shipped], out: Path) -> Run:
    """The obvious script on the same charts: draw, savefig a PNG file, dump the target beside it."""
    engine = _engine()
    out.mkdir(parents=True, exist_ok=True)
    cpu, started = time.process_time(), time.perf_counter()
    for c in charts:
        for attempt in range(c.attempt + 1):
            _, spec, rng = engine.choose(c.position, attempt)
            try:
                fig, _ = mc.draw_chart(spec, rng)
            except mc.LayoutError:
                continue
            buf = io.BytesIO()
            fig.savefig(buf, format="png")
            (out / f"{c.position}.png").write_bytes(buf.getvalue())
            (out / f"{c.position}.json").write_text(json.dumps({"target": onechart_target(spec)}))
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Run(len(charts) / seconds, cpu / len(charts) * 1000)


def _ray_processes() -> list[tuple[psutil.Process, bool]]:
    """This process's descendants, each with whether it is a Ray worker (vs a daemon)."""
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(child.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        out.append((child, "default_worker.py" in cmd or cmd.startswith("ray::")))
    return out


class MemorySampler:
    """Peak summed RSS of this process plus Ray workers, and plus every descendant, sampled."""

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
            for child, is_worker in _ray_processes():
                try:
                    rss = child.memory_info().rss
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                total += rss
                workers += rss if is_worker else 0
            self.peak_workers = max(self.peak_workers, workers)
            self.peak_all = max(self.peak_all, total)
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _cpu() -> tuple[dict[int, float], dict[int, float]]:
    """CPU seconds so far of this process and its Ray workers, and of every descendant, by pid."""
    workers, every = {}, {}
    me = psutil.Process().cpu_times()
    workers[0] = every[0] = me.user + me.system
    for child, is_worker in _ray_processes():
        try:
            t = child.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        every[child.pid] = t.user + t.system
        if is_worker:
            workers[child.pid] = every[child.pid]
    return workers, every


def _spent(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def pipeline(n: int, workers: int, out: Path, shard_size: int, seed: int = 0,
             memory: bool = False) -> tuple[Run, MemorySampler]:  # fmt: skip
    """One build on the running Ray; ``memory`` samples RSS (off for timed runs: the sampler costs CPU)."""
    shutil.rmtree(out, ignore_errors=True)
    w0, a0 = _cpu()
    mem = MemorySampler()
    if memory:
        mem.__enter__()
    started = time.perf_counter()
    summary = build(BuildRequest("charts", n, str(out), seed=seed, shard_size=shard_size, workers=workers,
                                 params=PARAMS, progress=False))  # fmt: skip
    seconds = time.perf_counter() - started
    if memory:
        mem.__exit__()
    w1, a1 = _cpu()
    assert summary.samples + summary.errors == n, summary
    return Run(n / seconds, _spent(w0, w1) / n * 1000, _spent(a0, a1) / n * 1000), mem


def start_ray(cpus: int) -> float:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    started = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, logging_level="ERROR")
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=80, help="timed charts per worker and round")
    ap.add_argument("--warm", type=int, default=40, help="warm-up charts per rendering process")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; medians are printed")
    ap.add_argument("--mem-n", default="60,600", help="small,large n of the memory comparison (2 workers)")
    ap.add_argument("--mem-shard", type=int, default=100, help="shard size of the memory builds")
    args = ap.parse_args()
    small, large = (int(x) for x in args.mem_n.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="bench-charts-"))
    n, shard = args.n, max(1, args.n // 4)
    load_before = os.getloadavg()
    bare1, one, naive, bare2, two = [], [], [], [], []
    try:
        bare_loop([Shipped(p, 0, "") for p in range(args.warm)], seed=WARM_SEED)  # warm this process
        ray_start = start_ray(1)
        pipeline(args.warm, 1, tmp / "warm1", args.warm, seed=WARM_SEED)
        for r in range(args.rounds):
            run, _ = pipeline(n, 1, tmp / f"p1-{r}", shard)
            charts = shipped(tmp / f"p1-{r}")
            one.append(run)
            bare1.append(bare_loop(charts))
            naive.append(naive_loop(charts, tmp / f"naive-{r}"))
        start_ray(2)
        pipeline(2 * args.warm, 2, tmp / "warm2", args.warm, seed=WARM_SEED)  # one warm shard per worker
        for r in range(args.rounds):
            run, _ = pipeline(2 * n, 2, tmp / f"p2-{r}", shard)
            two.append(run)
            # The first n of its charts: a load probe for this phase, on charts the pipeline shipped.
            bare2.append(bare_loop(shipped(tmp / f"p2-{r}")[:n]))
        mem_started = time.perf_counter()
        _, mem_small = pipeline(small, 2, tmp / "m1", args.mem_shard, memory=True)
        shutil.rmtree(tmp / "m1", ignore_errors=True)
        _, mem_large = pipeline(large, 2, tmp / "m2", args.mem_shard, memory=True)
        mem_seconds = time.perf_counter() - mem_started
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)

    med = statistics.median
    one_vs_bare = med(o.rate / b.rate for o, b in zip(one, bare1, strict=True))
    two_vs_bare = med(t.rate / b.rate for t, b in zip(two, bare2, strict=True))
    two_vs_one = med(t.rate / o.rate for t, o in zip(two, one, strict=True))
    one_vs_naive = med(o.rate / v.rate for o, v in zip(one, naive, strict=True))
    same = sum(b.same_bytes for b in bare1 + bare2)
    total = args.rounds * 2 * n
    mib = 1024 * 1024
    print(f"charts benchmark (Matplotlib, echarts_share=0), {os.cpu_count()} cores, load avg (1/5/15 min) "
          f"before {'/'.join(f'{x:.1f}' for x in load_before)}, after "
          f"{'/'.join(f'{x:.1f}' for x in os.getloadavg())}")  # fmt: skip
    print(f"  {args.rounds} rounds of n={n} per worker after {args.warm} warm-up charts per process, medians")
    print(f"  bare render+encode loop, 1 process : {med(b.rate for b in bare1 + bare2):6.2f} charts/s"
          f"   {med(b.cpu_ms for b in bare1 + bare2):5.0f} CPU ms/chart   (PNG bytes equal to the "
          f"pipeline's: {same}/{total})")  # fmt: skip
    print(f"  naive (savefig + files), 1 process : {med(v.rate for v in naive):6.2f} charts/s"
          f"   {med(v.cpu_ms for v in naive):5.0f} CPU ms/chart")  # fmt: skip
    for label, runs in (("1 worker ", one), ("2 workers", two)):
        print(f"  pipeline, Ray, {label}           : {med(r.rate for r in runs):6.2f} charts/s"
              f"   {med(r.cpu_ms for r in runs):5.0f} CPU ms/chart   (with Ray daemons "
              f"{med(r.cpu_all_ms for r in runs):.0f})")  # fmt: skip
    print(f"  pipeline 1 worker / bare loop      : {one_vs_bare:.2f}   (CPU per chart bare/pipeline "
          f"{med(b.cpu_ms for b in bare1) / med(o.cpu_ms for o in one):.2f})")  # fmt: skip
    print(f"  pipeline 2 workers / bare loop     : {two_vs_bare:.2f}")
    print(f"  pipeline 1 worker / naive          : {one_vs_naive:.2f}")
    print(f"  2 workers / 1 worker               : {two_vs_one:.2f}   (each normalised by its round's bare loop: "
          f"{two_vs_bare / one_vs_bare:.2f})")  # fmt: skip
    print(f"  Ray start-up (not in the above)    : {ray_start:6.1f} s")
    print(f"  peak RSS driver+workers n={small:<6}: {mem_small.peak_workers / mib:7.0f} MiB"
          f"   (all Ray processes {mem_small.peak_all / mib:.0f} MiB)")  # fmt: skip
    print(f"  peak RSS driver+workers n={large:<6}: {mem_large.peak_workers / mib:7.0f} MiB"
          f"   (all Ray processes {mem_large.peak_all / mib:.0f} MiB)")  # fmt: skip
    print(f"  memory ratio large/small           : {mem_large.peak_workers / mem_small.peak_workers:.3f}"
          f"   (all Ray processes {mem_large.peak_all / mem_small.peak_all:.3f}); memory builds took "
          f"{mem_seconds:.0f} s")  # fmt: skip


if __name__ == "__main__":
    main()
