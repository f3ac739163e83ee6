"""Benchmark of the pdf engine (run by hand, ~2-3 minutes): pages/s per core, side by side in one run.

    .venv/bin/python bench/bench_pdf.py [--passes 2] [--reps 5] [--no-ray]

The pages are the first 6 of every PDF in shared/data/pdfs (~110, incl. a few the engine rejects),
visited ``--passes`` times. Rows:
- bare loop: PyMuPDF in this process, documents kept open: render at 1024 px + get_text('dict')
  + PNG with the same writer and level as the engine (renderers.image.encode_png_fast, Sub filter, png_level default). Nothing else.
- pipeline workers=0: got-data build pdf (tasks=page) in this process: sandboxed renderer child,
  bboxlog, label-fidelity filters, reading order, verdict, PNG in the child, pipe, tar + manifest.
  Bare and pipeline runs alternate ``--reps`` times; medians. CPU rates count this process plus
  the renderer child (/proc), so they are per core even when the machine is shared.
- engine page op in-process / via the sandbox: the child's per-page job without the driver, to
  show what the isolation costs.
- naive: the same PyMuPDF loop with Pillow's PNG at level 6 (renderers.image.encode_png), what a
  quick script does; pdfminer.six: render + pdfminer lines + PNG, the paper's other parser.
- Ray workers=1 and 2 (ray.init and one warm-up build per cluster not counted).
Peak memory is VmHWM of this process, the renderer children and the Ray workers.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engines.pdf import SANDBOX_PARAMS  # noqa: E402
from got_data.build import BuildRequest, build  # noqa: E402
from renderers.image import encode_png, encode_png_fast  # noqa: E402
from renderers.pdf_raster import InProcess, PdfError, sandbox  # noqa: E402

PDFS = ROOT.parent / "shared" / "data" / "pdfs"
FLAGS = 0  # set in main: the engine's get_text flags
TICK = os.sysconf("SC_CLK_TCK")
LEVEL = next(p.default for p in SANDBOX_PARAMS if p.name == "png_level")  # the engine's PNG level


def pages() -> list[tuple[str, int]]:
    import pymupdf

    out = []
    for p in sorted(PDFS.glob("*.pdf")):
        with pymupdf.open(p) as doc:
            out += [(str(p), i) for i in range(min(doc.page_count, 6))]
    return out


def cpu_of(pid: int) -> float:
    """utime + stime of a live process, seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def timed(fn: Callable[[], int], extra_pid: int | None = None) -> tuple[float, float]:
    """(pages per wall second, pages per CPU second of this process [+ extra_pid])."""
    child0 = cpu_of(extra_pid) if extra_pid else 0.0
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    if extra_pid:
        cpu += cpu_of(extra_pid) - child0
    return n / wall, n / cpu


def pymupdf_loop(units: list[tuple[str, int]], encoder: Callable[..., object]) -> int:
    import pymupdf

    docs: dict[str, pymupdf.Document] = {}
    for src, pno in units:
        doc = docs.get(src) or docs.setdefault(src, pymupdf.open(src))
        page = doc[pno]
        s = 1024 / max(page.rect.width, page.rect.height)
        pix = page.get_pixmap(matrix=pymupdf.Matrix(s, s), alpha=False)
        page.get_text("dict", flags=FLAGS)
        encoder(pix)
    for doc in docs.values():
        doc.close()
    return len(units)


def _array(pix: object) -> object:
    import numpy as np

    return np.frombuffer(pix.samples_mv, np.uint8).reshape(pix.height, pix.stride)[:, :pix.width * 3].reshape(  # type: ignore[attr-defined]
        pix.height, pix.width, 3)  # type: ignore[attr-defined]


def bare(units: list[tuple[str, int]]) -> int:
    return pymupdf_loop(units, lambda pix: encode_png_fast(_array(pix), LEVEL, "sub"))


def naive(units: list[tuple[str, int]]) -> int:
    return pymupdf_loop(units, lambda pix: encode_png(_array(pix)))


def pdfminer_loop(units: list[tuple[str, int]]) -> int:
    import pymupdf

    from renderers import pdf_text

    for src, pno in units:
        with pymupdf.open(src) as doc:
            page = doc[pno]
            s = 1024 / max(page.rect.width, page.rect.height)
            pix = page.get_pixmap(matrix=pymupdf.Matrix(s, s), alpha=False)
            try:
                with open(src, "rb") as f:
                    pdf_text.pdfminer_lines(f, pno, page)
            except ValueError:
                pass  # rotated page: pdfminer boxes are not mapped, the engine rejects it too
            encode_png_fast(_array(pix), LEVEL, "sub")
    return len(units)


def engine_op(box: object, units: list[tuple[str, int]]) -> int:
    for src, pno in units:
        try:
            box.call("page", src, pno, 1024, "pymupdf", 50, 0.1, "png", LEVEL)  # type: ignore[attr-defined]
        except PdfError:
            pass  # rejected pages cost their analysis, like in the pipeline
    return len(units)


def pipeline(n: int, workers: int, tmp: str, tag: str) -> int:
    # max_pages=6: the pipeline's units are exactly pages() (n a multiple of it: each visited equally).
    # In one process the build uses got-data's default shard size, as production does (one shard
    # here: per-shard fsyncs and hashing are not multiplied by tiny shards); Ray builds are cut in
    # 8 shards per worker so that the workers have shards to share.
    shard_size = 1000 if workers == 0 else max(1, n // (8 * workers))
    summary = build(BuildRequest(engine="pdf", n=n, out=f"{tmp}/{tag}", inputs=[str(PDFS)],
                                 params={"tasks": "page", "max_pages": 6}, workers=workers, progress=False,
                                 shard_size=shard_size))
    assert summary.samples + summary.errors == n
    return n


def descendants_hwm() -> dict[str, float]:
    """Peak RSS (MB) of this process's descendants, grouped: renderer children and Ray workers."""
    import psutil

    out: dict[str, float] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            cmd = " ".join(proc.cmdline())
            # Ray renames its workers' titles ("ray::IDLE", "ray::_remote_build"); daemons are "ray::<Name>Agent"
            ray_worker = "default_worker" in cmd or cmd.startswith(("ray::IDLE", "ray::_remote_build"))
            kind = "renderer child" if "pdf_raster import _serve" in cmd else ("ray worker" if ray_worker else None)
            if kind:
                out[kind] = max(out.get(kind, 0.0), hwm_mb(proc.pid))
        except (psutil.Error, OSError):
            continue
    return out


def main() -> None:
    global FLAGS
    import pymupdf

    ap = argparse.ArgumentParser()
    ap.add_argument("--passes", type=int, default=1, help="visits of the ~110 pages per timed run")
    ap.add_argument("--reps", type=int, default=7, help="alternating bare / pipeline runs (medians; 7: the "
                    "shared machine moves single pairs by +-10%%)")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    FLAGS = pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP
    units = pages()
    work = units * args.passes
    n = len(work)
    print(f"{len(units)} pages x {args.passes} passes = {n} per run; load average {os.getloadavg()}", flush=True)
    rows: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        bare(units[:10])
        box = sandbox()
        pipeline(len(units), 0, tmp, "warm")  # starts the renderer child, imports, font caches
        child = box.proc.pid  # type: ignore[union-attr]
        b_runs, p_runs = [], []
        for rep in range(args.reps):
            # A B / B A: a burst of load from other processes hits both alike.
            if rep % 2:
                p_runs.append(timed(lambda r=rep: pipeline(n, 0, tmp, f"w0-{r}"), child))
                b_runs.append(timed(lambda: bare(work)))
            else:
                b_runs.append(timed(lambda: bare(work)))
                p_runs.append(timed(lambda r=rep: pipeline(n, 0, tmp, f"w0-{r}"), child))
            print(f"  rep {rep}: bare {b_runs[-1][0]:.1f}/s, pipeline {p_runs[-1][0]:.1f}/s (wall); per CPU-s "
                  f"{b_runs[-1][1]:.1f} / {p_runs[-1][1]:.1f} = {p_runs[-1][1] / b_runs[-1][1]:.2f}", flush=True)
        med = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
        rows["bare PyMuPDF loop (render+dict+PNG)"] = (med(b_runs, 0), med(b_runs, 1))
        rows["pipeline workers=0 (sandbox, tar)"] = (med(p_runs, 0), med(p_runs, 1))
        pair_ratio = statistics.median(p[1] / b[1] for p, b in zip(p_runs, b_runs, strict=True))
        rows["engine page op in-process"] = timed(lambda: engine_op(InProcess(), work))
        rows["engine page op via sandbox"] = timed(lambda: engine_op(box, work), child)
        rows["naive: same loop, Pillow PNG level 6"] = timed(lambda: naive(work))
        rows["pdfminer.six loop (render+lines+PNG)"] = timed(lambda: pdfminer_loop(units[::4]))
        mem = {"driver": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **descendants_hwm()}
        ray_note = ""
        if not args.no_ray:
            import ray

            for workers in (1, 2):
                t0 = time.perf_counter()
                ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
                init = time.perf_counter() - t0
                pipeline(len(units), workers, tmp, f"ray{workers}-warm")  # worker processes + renderer children
                rows[f"pipeline Ray workers={workers}"] = timed(
                    lambda w=workers: pipeline(n * w, w, tmp, f"ray{w}"))
                for kind, mb in descendants_hwm().items():
                    mem[kind] = max(mem.get(kind, 0.0), mb)
                ray.shutdown()
                ray_note += f" ray.init({workers}) {init:.1f}s;"
    base_wall, base_cpu = rows["bare PyMuPDF loop (render+dict+PNG)"]
    print(f"\n{'':40s} {'pages/s':>8s} {'x bare':>7s} {'pages/CPU-s':>12s} {'x bare':>7s}")
    for name, (wall, cpu) in rows.items():
        cpu_cols = f"{cpu:12.1f} {cpu / base_cpu:7.2f}" if "Ray" not in name else f"{'':12s} {'':7s}"
        print(f"{name:40s} {wall:8.1f} {wall / base_wall:7.2f} {cpu_cols}")
    pipe = rows["pipeline workers=0 (sandbox, tar)"]
    print(f"\npipeline/bare per CPU-second (median of paired reps) = {pair_ratio:.2f}; wall = "
          f"{pipe[0] / base_wall:.2f}")
    print(f"PyMuPDF/pdfminer (CPU) = {base_cpu / rows['pdfminer.six loop (render+lines+PNG)'][1]:.1f}x; "
          f"Pillow PNG 6 naive/bare (CPU) = {rows['naive: same loop, Pillow PNG level 6'][1] / base_cpu:.2f}")
    if not args.no_ray:
        r1, r2 = rows["pipeline Ray workers=1"][0], rows["pipeline Ray workers=2"][0]
        print(f"Ray 2 workers / 1 worker = {r2 / r1:.2f};{ray_note} (not counted)")
    print("peak RSS (MB): " + ", ".join(f"{k} {v:.0f}" for k, v in mem.items()))
    print(f"load average at the end {os.getloadavg()}")


if __name__ == "__main__":
    main()
