"""Benchmark of the music engine, side by side in one run (run by hand, ~4-5 minutes).

    .venv/bin/python bench/bench_music.py [--n 50] [--reps 16] [--input ../shared/data/kern]

Pipeline and bare loop run interleaved, --reps times each (one seed, so one started worker engine
and Verovio child serve every rep, as in production), and the medians are reported: samples per
CPU second of the process plus its Verovio child is the figure that does not depend on how busy
the shared machine is.

Rows:
- pipeline, 1 core: got-data build in-process (workers=0): parse, cut, engrave in the
  Verovio child, check one system (re-engrave when it overflows), rasterise, PNG, tar; on a
  started worker (engine and Verovio child up, as after a worker's first shard), files parsed
  afresh. The worker start is measured on its own and shown amortised over --n samples.
- bare loop: the same final excerpts and options, in-process Verovio load+render, rasterise, PNG
  encode (what any renderer loop must do per image), nothing else: no cutting, no overflow retries,
  no child process, no tar.
- naive: what the dependency notes warn against: load the whole movement in Verovio for
  every sample and render one page.
- Real input uses a few files (--files) so that, as in production (GrandStaff: ~65 systems per
  piece), each file is parsed once per worker and cut many times.
- pipeline vs bare every --chunk samples (the headline): one shard of --n x --reps samples whose
  pipeline (engine.sample + ShardWriter.add, then the commit) and bare loop alternate every 10
  samples (~0.25 s), CPU read from each process's POSIX CPU clock: per-rep builds drift +-15 %
  in CPU cost per sample on this shared machine, 10-sample halves see the same machine. Real
  input uses one file per ~65 samples (GrandStaff's systems per piece), each parsed once.
- Ray with 1 and 2 workers (steady state: cluster and workers started by a warm-up build).
Systems per second per core is the 1-core pipeline rate. Peak memory is max RSS.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import verovio  # noqa: E402
from helpers import SHARED_DATA, build_dataset, samples  # noqa: E402

from engines.base import Sample  # noqa: E402
from engines.music import BUILTIN, Music  # noqa: E402
from got_data import worker  # noqa: E402
from manifests.shard import ShardWriter  # noqa: E402
from manifests.storage import Storage  # noqa: E402
from renderers.image import encode_png  # noqa: E402
from renderers.kern import decode_bytes, from_form  # noqa: E402
from renderers.verovio_render import BASE_OPTIONS, rasterize  # noqa: E402


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


SMALL = 6  # samples of the builds that measure the worker start
# Samples per shard in every build: got-data's default, so a bench build is one shard as in production
# (per-shard files cost ~2 ms each); also part of the config a worker caches its engine by.
SHARD = 1000
NAIVE = 20  # samples of the naive row (~1 per CPU second)


def _cpu() -> float:
    """CPU seconds of this process, its reaped children and its live children (the Verovio child
    lives on with its engine, so only adding it from /proc counts its work)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    live = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
            live += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime + live


class Timing:
    """Wall and CPU seconds of one row: on a shared machine, samples per CPU second is the per-core rate."""

    def __init__(self) -> None:
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Timing:
        self._w, self._c = time.perf_counter(), _cpu()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self._w, _cpu() - self._c


def _pipeline(out: Path, n: int, inputs: list[str], workers: int | None, seed: int = 0) -> tuple[Timing, int]:
    with Timing() as t:
        summary = build_dataset("music", out, n=n, inputs=inputs, workers=workers, shard_size=SHARD, seed=seed)
    return t, summary.samples


def _warm_worker(out: Path, inputs: list[str], seed: int) -> None:
    """Bring this process's worker to where a long build's worker is after its first shard: the
    engine and its Verovio child started (the worker keeps them across shards of one config). Its
    parsed files are forgotten, so the timed build still parses every file it cuts."""
    _pipeline(out, 1, inputs, workers=0, seed=seed)
    for engine in worker._ENGINES.values():
        if isinstance(engine, Music):
            engine._scores.clear()


def _bare(records: list[dict]) -> Timing:
    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    with Timing() as t:
        for record in records:
            tk.resetOptions()
            tk.setOptions({**BASE_OPTIONS, **record["meta"]["verovio"]})
            tk.loadData(from_form(record["target"]))
            encode_png(rasterize(tk.renderToSVG(1)))
    return t


def _process_cpu(pid: int) -> float:
    """CPU seconds of another process, all threads, to the nanosecond (its POSIX CPU clock;
    /proc's figures tick in 10 ms steps, too coarse for 10 samples)."""
    clock = ctypes.c_int()
    if ctypes.CDLL(None).clock_getcpuclockid(pid, ctypes.byref(clock)):
        raise OSError(f"no CPU clock for process {pid}")
    return time.clock_gettime(clock.value)


def _interleaved(out: Path, n: int, chunk: int, inputs: list[str], seed: int) -> tuple[float, float, list[float]]:
    """Pipeline and bare loop alternating every ``chunk`` samples: CPU ms per sample of each, and
    the per-chunk ratios.

    The pipeline half is the worker's per-sample path (``engine.sample`` and ``ShardWriter.add``: the
    Verovio child, the tar, the manifest) plus the shard's commit; only the once-per-build planning
    and index writes are left out. Alternating every ~0.25 s, both halves see the same machine: with
    per-rep builds, the CPU cost of the same work drifted +-15 % between reps.
    """
    params = Music.resolve_params({})
    engine = Music(params, seed, Music.plan(inputs, params))
    engine.sample(10**6)  # start the Verovio child (a worker start, measured apart)
    child = engine.engraver()._proc.pid
    writer = ShardWriter(Storage(str(out)), 0, engine.name, engine.version)
    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
    pipe = bare = 0.0
    made, ratios = 0, []
    for first in range(0, n, chunk):
        t = time.process_time() + _process_cpu(child)
        results = [engine.sample(p) for p in range(first, min(n, first + chunk))]
        for position, result in enumerate(results, first):
            writer.add(position, result)
        spent = time.process_time() + _process_cpu(child) - t
        done = [r for r in results if isinstance(r, Sample)]
        t = time.process_time()
        for sample in done:
            tk.resetOptions()
            tk.setOptions({**BASE_OPTIONS, **sample.meta["verovio"]})
            tk.loadData(from_form(sample.target))
            encode_png(rasterize(tk.renderToSVG(1)))
        spent_bare = time.process_time() - t
        pipe, bare, made = pipe + spent, bare + spent_bare, made + len(done)
        if done:
            ratios.append(spent_bare / spent)
    t = time.process_time()
    writer.commit(0, n)
    pipe += time.process_time() - t
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    if kids.ru_utime + kids.ru_stime > reaped.ru_utime + reaped.ru_stime + 1e-3:
        raise RuntimeError("the Verovio child restarted: its CPU time is lost, rerun")
    engine.close()
    # Per image made, both (a rejected position's cost counts against the pipeline).
    return pipe / made * 1000, bare / made * 1000, ratios


def _making_music(n: int) -> Timing:
    """The built-in engine's own work before any engraving: drawing the cut and generating the
    excerpt's measures (as a parsed score), as ``Music.sample`` does."""
    engine = Music(Music.resolve_params({}), 0, [BUILTIN])
    measures = engine.p["gen_measures"]
    with Timing() as t:
        for position in range(n):
            _, start, count = engine._draw_cut(engine.rng(position), range(measures))
            engine.generated(position, start, count)
    return t


def _naive(records: list[dict]) -> Timing:
    tk = verovio.toolkit()
    with Timing() as t:
        for record in records:
            path = record["source"].split("#")[0]
            tk.resetOptions()
            tk.setOptions({**BASE_OPTIONS, **record["meta"]["verovio"], "adjustPageWidth": False})
            tk.loadData(decode_bytes(Path(path).read_bytes()))
            encode_png(rasterize(tk.renderToSVG(1)))
    return t


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--input", default=str(SHARED_DATA / "kern" / "joplin"))
    parser.add_argument("--files", type=int, default=8, help="real files used: each is parsed once, cut many times")
    parser.add_argument("--reps", type=int, default=16, help="interleaved pipeline/bare repetitions (medians)")
    parser.add_argument("--chunk", type=int, default=10, help="samples per half of the interleaved row")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_music_"))
    rows: list[tuple[str, float, float, str]] = []
    try:
        # Warm the page cache, imports and fontconfig once so no row pays them alone.
        _pipeline(tmp / "warm", 2, [], workers=0)
        real = sorted(str(p) for p in Path(args.input).rglob("*.krn"))[: args.files]
        for label, inputs in (("built-in generator", []), (f"real **kern ({len(real)} files)", real)):
            # Interleaved reps (pipeline, bare / bare, pipeline / ...), medians: the machine is shared, so
            # CPU seconds per unit of work drift by +-20 % between minutes. All reps build the same config
            # (one seed), so one worker engine and one Verovio child serve them all, as a production worker
            # serves its shards: with a seed per rep, each rep had a new child whose first samples cost
            # more. The worker start is measured below.
            reps = []
            for r in range(args.reps):
                out = tmp / f"p{len(rows)}_{r}"
                _warm_worker(tmp / f"w{len(rows)}_{r}", inputs, seed=100)
                if r % 2:  # B A: the bare loop first, on the samples of a build made beforehand
                    _pipeline(tmp / f"pre{len(rows)}_{r}", args.n, inputs, workers=0, seed=100)
                    records = samples(tmp / f"pre{len(rows)}_{r}")
                    bare = _bare(records)
                    _warm_worker(tmp / f"w{len(rows)}_{r}b", inputs, seed=100)
                    pipe, made = _pipeline(out, args.n, inputs, workers=0, seed=100)
                else:  # A B
                    pipe, made = _pipeline(out, args.n, inputs, workers=0, seed=100)
                    records = samples(out)
                    bare = _bare(records)
                reps.append((pipe, made, bare, len(records), records))
            p_wall = median(made / pipe.wall for pipe, made, *_ in reps)
            p_cpu = median(made / pipe.cpu for pipe, made, *_ in reps)
            b_wall = median(k / bare.wall for _, _, bare, k, _ in reps)
            b_cpu = median(k / bare.cpu for _, _, bare, k, _ in reps)
            r_wall = median((made / pipe.wall) / (k / bare.wall) for pipe, made, bare, k, _ in reps)
            r_cpu = median((made / pipe.cpu) / (k / bare.cpu) for pipe, made, bare, k, _ in reps)
            # Pooled: all reps' samples over all their CPU seconds, pipeline vs bare loop.
            pooled = (sum(m for _, m, *_ in reps) / sum(p.cpu for p, *_ in reps)) / (
                sum(k for _, _, _, k, _ in reps) / sum(b.cpu for _, _, b, *_ in reps))
            made = reps[0][1]
            rows.append((f"pipeline 1 core, {label}", p_wall, p_cpu, f"{made}/{args.n} samples, median of {args.reps}"))
            rows.append((f"bare engrave+raster+PNG, {label}", b_wall, b_cpu,
                         f"pipeline/bare = {r_wall:.2f} wall, {r_cpu:.2f} CPU, pooled {pooled:.2f} CPU "
                         f"(reps {' '.join(f'{(m / p.cpu) / (k / b.cpu):.2f}' for p, m, b, k, _ in reps)})"))
            # The worker start (Verovio child start and first engravings), paid once per worker: the same
            # few samples built by a new worker and again by the started one (parsed files forgotten).
            cold, few = _pipeline(tmp / f"c{len(rows)}", SMALL, inputs, workers=0, seed=200)
            _warm_worker(tmp / f"cw{len(rows)}", inputs, seed=200)
            warm, _ = _pipeline(tmp / f"cs{len(rows)}", SMALL, inputs, workers=0, seed=200)
            start = cold.cpu - warm.cpu
            per_sample = median(pipe.cpu for pipe, *_ in reps) / made
            rows.append((f"pipeline incl. a worker start per {args.n}, {label}", float("nan"),
                         made / (made * per_sample + start),
                         f"pipeline/bare = {made / (made * per_sample + start) / b_cpu:.2f} CPU; "
                         f"worker start {start:.3f} s CPU"))
            # The headline: alternating every --chunk samples within one shard (see _interleaved).
            total = args.n * args.reps
            # Real input: as many files as give GrandStaff's ~65 systems per piece (each parsed once).
            many = sorted(str(p) for p in Path(args.input).rglob("*.krn"))[: max(1, total // 65)] if inputs else []
            pipe_ms, bare_ms, ratios = _interleaved(tmp / f"i{len(rows)}", total, args.chunk, many, seed=300)
            what = f"{len(many)} files" if inputs else "built-in"
            rows.append((f"pipeline vs bare every {args.chunk} samples, {what}", float("nan"), 1000 / pipe_ms,
                         f"pipeline/bare = {bare_ms / pipe_ms:.2f} CPU pooled ({pipe_ms:.1f} vs {bare_ms:.1f} ms per "
                         f"sample; per-chunk median {median(ratios):.2f}, {len(ratios)} chunks)"))
            if not inputs:
                making = _making_music(args.n)
                rows.append(("making the music alone (generate)", float("nan"), args.n / making.cpu,
                             f"{making.cpu / args.n * 1000:.1f} ms CPU per sample, not part of the bare loop"))
            if inputs:
                few_records = reps[0][4][:NAIVE]
                naive = _naive(few_records)
                n_wall, n_cpu = len(few_records) / naive.wall, len(few_records) / naive.cpu
                rows.append((f"naive whole-movement load, {label}", n_wall, n_cpu,
                             f"pipeline/naive = {p_wall / n_wall:.1f} wall, {p_cpu / n_cpu:.1f} CPU"))
        if not args.no_ray:
            import ray

            one = None
            for workers in (1, 2):
                # Steady state: the cluster is up and each worker's engine and Verovio child are started by
                # a warm-up build of the same config (a worker keeps them across shards); 8 shards a worker.
                t0 = time.perf_counter()
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
                init = time.perf_counter() - t0
                per_shard = max(1, args.n // 8)
                build_dataset("music", tmp / f"ray_warm{workers}", n=2 * workers * per_shard, workers=workers,
                              shard_size=per_shard, seed=7)
                with Timing() as t:
                    summary = build_dataset("music", tmp / f"ray{workers}", n=args.n * workers, workers=workers,
                                            shard_size=per_shard, seed=7)
                ray.shutdown()
                rate = summary.samples / t.wall
                one = one or rate
                rows.append((f"Ray {workers} worker(s), built-in, steady", rate, float("nan"),
                             f"x{rate / one:.2f} vs 1 worker; ray.init {init:.1f}s not counted"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nload average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")
    print(f"{'':46} {'samples/s':>10} {'per CPU-s':>10}")
    for label, wall, cpu, note in rows:
        print(f"{label:46} {wall:10.1f} {cpu:10.1f}   {note}")
    print("(per CPU-s = samples per CPU second of the process and its Verovio child: systems/s per core)")
    print(f"\npeak RSS: this process {_maxrss_mb(resource.RUSAGE_SELF):.0f} MB, "
          f"largest child (Verovio child / Ray worker) {_maxrss_mb(resource.RUSAGE_CHILDREN):.0f} MB")


if __name__ == "__main__":
    main()
