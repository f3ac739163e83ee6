"""Benchmark of the music engine, side by side in one run (run by hand, ~2-3 minutes).

    .venv/bin/python bench/bench_music.py [--n 60] [--input ../shared/data/kern]

Rows:
- pipeline, 1 core: got-data build in-process (workers=0): parse, cut, engrave in the
  Verovio child, check one system (re-engrave when it overflows), rasterise, PNG, tar.
- bare loop: the same final excerpts and options, in-process Verovio load+render, rasterise, PNG
  encode (what any renderer loop must do per image), nothing else: no cutting, no overflow retries,
  no child process, no tar.
- naive: what the dependency notes warn against: load the whole movement in Verovio for
  every sample and render one page.
- Real input uses a few files (--files) so that, as in production (GrandStaff: ~65 systems per
  piece), each file is parsed once per worker and cut many times.
- Ray with 1 and 2 workers (wall time includes ray.init, reported separately).
Systems per second per core is the 1-core pipeline rate. Peak memory is max RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import verovio  # noqa: E402
from helpers import SHARED_DATA, build_dataset, samples  # noqa: E402

from engines.music import BUILTIN, Music  # noqa: E402
from renderers.image import encode_png  # noqa: E402
from renderers.kern import decode_bytes, from_form  # noqa: E402
from renderers.kern_gen import generate_score  # noqa: E402
from renderers.verovio_render import BASE_OPTIONS, rasterize  # noqa: E402


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


SMALL = 6  # samples in the build that measures the per-build cost


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
        summary = build_dataset("music", out, n=n, inputs=inputs, workers=workers, shard_size=max(1, n // 4), seed=seed)
    return t, summary.samples


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


def _making_music(n: int) -> Timing:
    """The built-in engine's own work before any engraving: generating each piece (as parsed score)."""
    engine = Music(Music.resolve_params({}), 0, [BUILTIN])
    with Timing() as t:
        for position in range(n):
            generate_score(engine.rng(position, 1), engine.p["gen_measures"])
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
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--input", default=str(SHARED_DATA / "kern" / "joplin"))
    parser.add_argument("--files", type=int, default=8, help="real files used: each is parsed once, cut many times")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_music_"))
    rows: list[tuple[str, float, float, str]] = []
    try:
        # Warm the page cache, imports and fontconfig once so no row pays them alone.
        _pipeline(tmp / "warm", 2, [], workers=0)
        real = sorted(str(p) for p in Path(args.input).rglob("*.krn"))[: args.files]
        for label, inputs in (("built-in generator", []), (f"real **kern ({len(real)} files)", real)):
            out = tmp / f"p{len(rows)}"
            pipe, made = _pipeline(out, args.n, inputs, workers=0)
            records = samples(out)
            bare = _bare(records)
            p_wall, p_cpu, b_wall, b_cpu = made / pipe.wall, made / pipe.cpu, len(records) / bare.wall, len(records) / bare.cpu
            rows.append((f"pipeline 1 core, {label}", p_wall, p_cpu, f"{made}/{args.n} samples"))
            rows.append((f"bare engrave+raster+PNG, {label}", b_wall, b_cpu,
                         f"pipeline/bare = {p_wall / b_wall:.2f} wall, {p_cpu / b_cpu:.2f} CPU"))
            # A build of a few samples separates the per-build cost (Verovio child start, shard and
            # index files) from the per-sample cost that a long production build pays.
            small, few = _pipeline(tmp / f"s{len(rows)}", SMALL, inputs, workers=0)
            per_sample = (pipe.cpu - small.cpu) / (made - few)
            rows.append((f"pipeline per-sample CPU only, {label}", float("nan"), 1 / per_sample,
                         f"pipeline/bare = {1 / per_sample / b_cpu:.2f} CPU; "
                         f"per-build CPU {small.cpu - few * per_sample:.2f} s"))
            if not inputs:
                making = _making_music(args.n)
                rows.append(("making the music alone (generate)", float("nan"), args.n / making.cpu,
                             f"{making.cpu / args.n * 1000:.1f} ms CPU per sample, not part of the bare loop"))
            if inputs:
                naive = _naive(records)
                n_wall, n_cpu = len(records) / naive.wall, len(records) / naive.cpu
                rows.append((f"naive whole-movement load, {label}", n_wall, n_cpu,
                             f"pipeline/naive = {p_wall / n_wall:.1f} wall, {p_cpu / n_cpu:.1f} CPU"))
        if not args.no_ray:
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            init = time.perf_counter() - t0
            one = None
            for workers in (1, 2):
                pipe, made = _pipeline(tmp / f"ray{workers}", args.n, [], workers=workers, seed=7)
                rate = made / pipe.wall
                one = one or rate
                rows.append((f"Ray {workers} worker(s), built-in", rate, float("nan"),
                             f"x{rate / one:.2f} vs 1 worker; ray.init {init:.1f}s"))
            ray.shutdown()
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
