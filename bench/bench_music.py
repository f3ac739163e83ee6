"""Benchmark of the music engine, side by side in one run (run by hand, ~2-3 minutes).

    .venv/bin/python bench/bench_music.py [--n 60] [--input ../shared/data/kern]

Rows:
- pipeline, 1 core: got-data build in-process (workers=0): parse, cut, engrave in the
  Verovio child, check one system (re-engrave when it overflows), rasterise, PNG, tar.
- bare loop: the same excerpts and options, in-process Verovio load+render + resvg, nothing else.
- naive: what the dependency notes warn against: load the whole movement in Verovio for
  every sample and render one page.
- Real input uses a few files (--files) so that, as in production (GrandStaff: ~65 systems per
  piece), each file is parsed once per worker and cut many times.
- Ray with 1 and 2 workers (wall time includes ray.init, reported separately).
Systems per second per core is the 1-core pipeline rate. Peak memory is max RSS.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import verovio  # noqa: E402
from helpers import SHARED_DATA, build_dataset, samples  # noqa: E402

from renderers.kern import decode_bytes, from_form  # noqa: E402
from renderers.verovio_render import BASE_OPTIONS, rasterize  # noqa: E402


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _pipeline(out: Path, n: int, inputs: list[str], workers: int | None, seed: int = 0) -> tuple[float, int]:
    start = time.perf_counter()
    summary = build_dataset("music", out, n=n, inputs=inputs, workers=workers, shard_size=max(1, n // 4), seed=seed)
    return time.perf_counter() - start, summary.samples


def _bare(records: list[dict]) -> float:
    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    start = time.perf_counter()
    for record in records:
        tk.resetOptions()
        tk.setOptions({**BASE_OPTIONS, **record["meta"]["verovio"]})
        tk.loadData(from_form(record["target"]))
        rasterize(tk.renderToSVG(1))
    return time.perf_counter() - start


def _naive(records: list[dict]) -> float:
    tk = verovio.toolkit()
    start = time.perf_counter()
    for record in records:
        path = record["source"].split("#")[0]
        tk.resetOptions()
        tk.setOptions({**BASE_OPTIONS, **record["meta"]["verovio"], "adjustPageWidth": False})
        tk.loadData(decode_bytes(Path(path).read_bytes()))
        rasterize(tk.renderToSVG(1))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    parser.add_argument("--input", default=str(SHARED_DATA / "kern" / "joplin"))
    parser.add_argument("--files", type=int, default=8, help="real files used: each is parsed once, cut many times")
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_music_"))
    rows: list[tuple[str, float, str]] = []
    try:
        real = sorted(str(p) for p in Path(args.input).rglob("*.krn"))[: args.files]
        for label, inputs in (("built-in generator", []), (f"real **kern ({len(real)} files)", real)):
            secs, made = _pipeline(tmp / f"p{len(rows)}", args.n, inputs, workers=0)
            records = samples(tmp / f"p{len(rows)}")
            rate = made / secs
            bare = len(records) / _bare(records)
            rows.append((f"pipeline 1 core, {label}", rate, f"{made}/{args.n} samples"))
            rows.append((f"bare engrave+raster, {label}", bare, f"pipeline/bare = {rate / bare:.2f}"))
            if inputs:
                naive = len(records) / _naive(records)
                rows.append((f"naive whole-movement load, {label}", naive, f"pipeline/naive = {rate / naive:.2f}"))
        if not args.no_ray:
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            init = time.perf_counter() - t0
            one = None
            for workers in (1, 2):
                secs, made = _pipeline(tmp / f"ray{workers}", args.n, [], workers=workers, seed=7)
                rate = made / secs
                one = one or rate
                rows.append((f"Ray {workers} worker(s), built-in", rate, f"x{rate / one:.2f} vs 1 worker; ray.init {init:.1f}s"))
            ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{'':44} {'samples/s':>10}")
    for label, rate, note in rows:
        print(f"{label:44} {rate:10.1f}   {note}")
    print(f"\npeak RSS: this process {_maxrss_mb(resource.RUSAGE_SELF):.0f} MB, "
          f"largest child (Verovio child / Ray worker) {_maxrss_mb(resource.RUSAGE_CHILDREN):.0f} MB")


if __name__ == "__main__":
    main()
