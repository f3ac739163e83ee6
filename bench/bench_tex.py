"""Benchmark of the TeX engines: batched renderer vs one TeX run per snippet, pipeline 1 vs 2 workers.

Run by hand: .venv/bin/python bench/bench_tex.py [--quick]. All figures are measured in this run
(rates are items per second over the items actually rendered; nothing is extrapolated).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.formulas import Formulas  # noqa: E402
from engines.geometry import Geometry  # noqa: E402
from engines.tables import Tables  # noqa: E402
from got_data.build import BuildRequest, build  # noqa: E402
from renderers.tex import TexRenderer  # noqa: E402


def jobs_of(cls, n: int):
    params = cls.resolve_params({})
    units = cls.plan([], params) if cls.inputs != "none" else []
    eng = cls(params, 0, units)
    out = [eng.prepare(i) for i in range(n)]
    return [p[0] for p in out if isinstance(p, tuple)]


def cpu() -> float:
    """CPU seconds of this process and its finished children (TeX runs): load-independent cost."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def naive(jobs) -> tuple[float, float]:
    """One full pdflatex/xelatex run per snippet (whole preamble, no format), then the same rasterising."""
    import pymupdf

    tex = TexRenderer()
    wd = tex.workdir
    t, c = time.perf_counter(), cpu()
    for job in jobs:
        pre = job.preamble
        doc = (pre.head() + pre.tail + "\n\\begin{document}\n\\begin{snip}\n" + job.body + "\n\\end{snip}\n\\end{document}\n")
        Path(wd, "one.tex").write_text(doc, encoding="utf-8")
        subprocess.run(["xelatex" if pre.xetex else "pdflatex", "-no-shell-escape", "-interaction=nonstopmode", "one.tex"],
                       cwd=wd, env=tex._env(), stdin=subprocess.DEVNULL, capture_output=True, check=False)  # fmt: skip
        d = pymupdf.open(os.path.join(wd, "one.pdf"))
        tex._rasterise(d[0], job)
        d.close()
    dt, dc = time.perf_counter() - t, cpu() - c
    tex.close()
    return len(jobs) / dt, len(jobs) / dc


def batched(jobs) -> tuple[float, float]:
    tex = TexRenderer()
    tex.render(jobs[:2])  # formats built once per worker: not part of the steady state
    t, c = time.perf_counter(), cpu()
    tex.render(jobs)
    dt, dc = time.perf_counter() - t, cpu() - c
    tex.close()
    return len(jobs) / dt, len(jobs) / dc


def pipeline(engine: str, n: int, workers: int) -> float:
    """Steady-state samples/s of `got-data build`: Ray start-up and each worker's first TeX format
    are paid in a warm-up build of the same config (the worker caches the engine), not timed."""
    import ray

    if workers:
        ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        shard = max(1, n // (4 * max(1, workers)))
        for timed in (False, True):
            out = tempfile.mkdtemp(prefix="bench-tex-")
            shutil.rmtree(out)
            size = n if timed else shard * 2 * max(1, workers)
            t = time.perf_counter()
            s = build(BuildRequest(engine=engine, n=size, out=out, workers=workers, shard_size=shard, progress=False))
            dt = time.perf_counter() - t
            shutil.rmtree(out, ignore_errors=True)
    finally:
        if workers:
            ray.shutdown()
    return s.samples / dt


def main() -> None:
    quick = "--quick" in sys.argv
    plan = [("formulas", Formulas, 400, 20, 1200), ("tables", Tables, 150, 10, 320), ("geometry", Geometry, 100, 10, 320)]
    import pymupdf  # noqa: F401 - import cost out of the timings

    print("naive = one TeX run per snippet; batched = bare renderer loop; pipe = full build (in-process, Ray 1/2 workers)")
    print("/s = per wall second on this (shared) machine; /cpu-s = per CPU second, i.e. per core, load-independent")
    print(f"{'engine':9} {'naive/s':>8} {'batched/s':>10} {'x naive':>8} {'naive/cpu-s':>11} {'batch/cpu-s':>11} "
          f"{'x (cpu)':>8} {'pipe 0w/s':>10} {'pipe 1w/s':>10} {'pipe 2w/s':>10} {'2w/1w':>6} {'0w/bare':>8}")  # fmt: skip
    for name, cls, n_batch, n_naive, n_pipe in plan:
        if quick:
            n_batch, n_naive, n_pipe = n_batch // 4, max(4, n_naive // 3), n_pipe // 4
        jobs = jobs_of(cls, n_batch)
        r_naive, c_naive = naive(jobs[:n_naive])
        r_batch, c_batch = batched(jobs)
        r0 = pipeline(name, n_pipe, 0)
        r1 = pipeline(name, n_pipe, 1)
        r2 = pipeline(name, n_pipe, 2)
        print(f"{name:9} {r_naive:8.1f} {r_batch:10.1f} {r_batch / r_naive:7.1f}x {c_naive:11.1f} {c_batch:11.1f} "
              f"{c_batch / c_naive:7.1f}x {r0:10.1f} {r1:10.1f} {r2:10.1f} "
              f"{r2 / r1:5.2f}x {r0 / r_batch:7.2f}x", flush=True)  # fmt: skip
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"peak RSS: this process {self_mb:.0f} MB, largest child (TeX/Ray worker) {child_mb:.0f} MB; cores {os.cpu_count()}, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
