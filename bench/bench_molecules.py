"""Benchmark of the molecules engine, side by side in one run (run by hand, ~2-3 minutes).

    .venv/bin/python bench/bench_molecules.py [--n 60] [--reps 5] [--size 1024] [--no-ray]

Rows (all on the same real ChEMBL molecules, 1024 px by default):
- pipeline, 1 core: got-data build in-process (workers=0): parse, fragment, style, layout,
  read-back check, RDKit SVG, librsvg raster, PNG (grey when colourless), tar + manifest.
- bare loop, the same renderer path: parse + MolDraw2DSVG with the engine's drawing options for
  that molecule (font, palette, widths...: the same grey/colour mix) + rasterize + encode_opaque,
  nothing else (RDKit lays the molecule out itself). Pipeline and bare runs alternate --reps times
  (medians); a second figure times engine.sample() and the bare loop molecule by molecule,
  interleaved, which is the steadiest ratio on a shared machine.
- previous path: the same bare loop with MolDraw2DCairo and its PNG (what the engine did before).
- naive: Draw.MolToImage (PIL image) + encode_png, what a quick script does.
- stages of the bare path (CPU ms per image): SVG, raster, encode (grey and colour apart).
- Ray with 1 and 2 workers (wall time; ray.init reported separately).
Rates are given per wall second and per CPU second of this process (libvips threads included):
the machine is shared, so CPU-second rates are the load-independent per-core figure. The load
average is printed at the start and the end. Peak memory is max RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from helpers import SHARED_DATA, build_dataset, samples  # noqa: E402
from rdkit import Chem, rdBase  # noqa: E402
from rdkit.Chem import Draw  # noqa: E402
from rdkit.Chem.Draw import rdMolDraw2D  # noqa: E402

from engines.molecules import Molecules  # noqa: E402
from renderers.image import encode_png  # noqa: E402
from renderers.rdkit_draw import DrawStyle, _options, choose_fragment, parse_smiles  # noqa: E402
from renderers.svg_png import encode_opaque, is_grey, rasterize  # noqa: E402


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, items)."""
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return time.perf_counter() - w0, time.process_time() - c0, n


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _svg(smiles: str, style: DrawStyle) -> str:
    drawer = rdMolDraw2D.MolDraw2DSVG(style.size, style.size)
    _options(drawer, style)
    drawer.DrawMolecule(Chem.MolFromSmiles(smiles))
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def bare_png(smiles: str, style: DrawStyle) -> bytes:
    """The engine's renderer path with nothing around it."""
    return encode_opaque(rasterize(_svg(smiles, style)))


def cairo_png(smiles: str, style: DrawStyle) -> bytes:
    """The previous renderer path: RDKit's Cairo drawer and its own PNG writer."""
    drawer = rdMolDraw2D.MolDraw2DCairo(style.size, style.size)
    _options(drawer, style)
    drawer.DrawMolecule(Chem.MolFromSmiles(smiles))
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    load_start = _load()
    tmp = Path(tempfile.mkdtemp(prefix="bench_molecules_"))
    src = tmp / "in.smi"
    lines = (SHARED_DATA / "smiles" / "chembl20_chiral_10k.smi").read_text().splitlines()
    # As many molecules as samples, as in a real build (planning parses every input once).
    src.write_text("\n".join(lines[:: max(1, len(lines) // args.n)][: args.n]) + "\n")
    params = {"size": args.size}
    rows: list[tuple[str, float, float, str]] = []
    try:
        # Warm-up: the engine registry imports every engine module (PyMuPDF, Verovio...) once.
        build_dataset("molecules", tmp / "warm", n=3, inputs=[str(src)], params=params)
        engine = Molecules(Molecules.resolve_params(params), 0, Molecules.plan([str(src)], Molecules.resolve_params(params)))
        with rdBase.BlockLogs():
            # The engine's style for each molecule, chosen before timing: the bare loops draw the
            # same molecule with the same options (and so the same grey/colour mix) without the
            # engine's own work. Position p draws engine.unit(p) (a seeded order), not units[p].
            jobs = []
            for position in range(len(engine.units)):
                unit, _ = engine.unit(position)
                if len(unit) > 2:
                    continue  # a duplicate: the engine draws nothing
                try:
                    mol, _ = choose_fragment(parse_smiles(unit[0]), "largest")
                except ValueError:
                    continue
                if mol.GetNumHeavyAtoms() > engine.p["max_heavy_atoms"]:
                    continue
                jobs.append((position, Chem.MolToSmiles(mol), engine.style(engine.rng(position), mol)))

        def bare_loop(render: Callable[[str, DrawStyle], bytes]) -> tuple[float, float]:
            with rdBase.BlockLogs():
                w, c, k = _timed(lambda: sum(1 for _, s, st in jobs if render(s, st)))
            return k / w, k / c

        # Pipeline, new bare and Cairo bare alternate, --reps times each; medians, so a burst of load
        # from other processes on the shared machine hits all three alike.
        pipe, bare, cairo = [], [], []
        made = 0
        out = tmp / "p"
        for rep in range(args.reps):
            out = tmp / f"p{rep}"
            wall, cpu, made = _timed(lambda out=out: build_dataset(
                "molecules", out, n=args.n, inputs=[str(src)], params=params, shard_size=max(1, args.n // 3)).samples)
            pipe.append((made / wall, made / cpu))
            bare.append(bare_loop(bare_png))
            cairo.append(bare_loop(cairo_png))
        med = [tuple(statistics.median(x[i] for x in runs) for i in (0, 1)) for runs in (pipe, bare, cairo)]
        (pipe_w, pipe_c), (bare_w, bare_c), (cairo_w, cairo_c) = med
        ratios = sorted(p[1] / b[1] for p, b in zip(pipe, bare, strict=True))
        rows.append((f"pipeline, 1 core (workers=0), median of {args.reps}", pipe_w, pipe_c,
                     f"{made}/{args.n} samples"))
        rows.append(("bare SVG + librsvg + PNG, same styles, median", bare_w, bare_c,
                     f"pipeline/bare = {pipe_w / bare_w:.2f} wall, {pipe_c / bare_c:.2f} CPU "
                     f"(per-rep CPU ratios {', '.join(f'{r:.2f}' for r in ratios)})"))
        rows.append(("previous: bare Cairo draw + PNG, same styles", cairo_w, cairo_c,
                     f"pipeline/Cairo bare = {pipe_c / cairo_c:.2f} CPU, new bare/Cairo bare = {bare_c / cairo_c:.2f}"))
        # Steadiest figure on a shared machine: sample() and the bare loop molecule by molecule,
        # interleaved, so both see the same load (no tar/manifest I/O).
        eng_cpu = bare_cpu = 0.0
        with rdBase.BlockLogs():
            for position, smiles, style in jobs:
                c0 = time.process_time()
                engine.sample(position)
                c1 = time.process_time()
                bare_png(smiles, style)
                eng_cpu, bare_cpu = eng_cpu + c1 - c0, bare_cpu + time.process_time() - c1
        k = len(jobs)
        rows.append(("engine sample() interleaved with bare", float("nan"), k / eng_cpu,
                     f"engine/bare = {bare_cpu / eng_cpu:.2f} CPU; bare {1000 * bare_cpu / k:.1f} ms, "
                     f"engine {1000 * eng_cpu / k:.1f} ms CPU/molecule"))

        def naive() -> int:
            for _, s, _ in jobs:
                encode_png(Draw.MolToImage(Chem.MolFromSmiles(s), size=(args.size, args.size)))
            return len(jobs)
        with rdBase.BlockLogs():
            nw, nc, _ = _timed(naive)
        rows.append(("naive MolToImage + encode_png", len(jobs) / nw, len(jobs) / nc,
                     f"pipeline/naive = {pipe_w * nw / len(jobs):.2f} wall, {pipe_c * nc / len(jobs):.2f} CPU"))
        # Where the bare path's time goes, per image.
        stage: dict[str, list[float]] = {"svg": [], "raster": [], "encode grey": [], "encode colour": []}
        sizes: dict[bool, list[int]] = {True: [], False: []}
        with rdBase.BlockLogs():
            for _, smiles, style in jobs:
                c0 = time.process_time()
                text = _svg(smiles, style)
                c1 = time.process_time()
                rgba = rasterize(text)
                c2 = time.process_time()
                png = encode_opaque(rgba)
                c3 = time.process_time()
                grey = is_grey(rgba)
                stage["svg"].append(c1 - c0)
                stage["raster"].append(c2 - c1)
                stage["encode grey" if grey else "encode colour"].append(c3 - c2)
                sizes[grey].append(len(png))
        breakdown = ", ".join(f"{name} {1000 * statistics.mean(v):.1f}" for name, v in stage.items() if v)
        made_sizes = [r["images"][0]["size"] for r in samples(out)]
        mean_png = sum(made_sizes) / max(1, len(made_sizes))
        if not args.no_ray:
            import ray

            t0 = time.perf_counter()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            init = time.perf_counter() - t0
            one = None
            for workers in (1, 2):
                w, _, k = _timed(lambda workers=workers: build_dataset(
                    "molecules", tmp / f"ray{workers}", n=args.n, inputs=[str(src)], params=params,
                    workers=workers, shard_size=max(1, args.n // 6), seed=7).samples)
                rate = k / w
                one = one or rate
                rows.append((f"Ray {workers} worker(s)", rate, float("nan"),
                             f"x{rate / one:.2f} vs 1 worker; ray.init {init:.1f}s not counted"))
            ray.shutdown()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nmolecules at {args.size} px, n={args.n}; mean PNG of the build {mean_png / 1024:.1f} KiB "
          f"(bare: grey {len(sizes[True])} x {statistics.mean(sizes[True] or [0]) / 1024:.1f} KiB, "
          f"colour {len(sizes[False])} x {statistics.mean(sizes[False] or [0]) / 1024:.1f} KiB)")
    print(f"load average (1/5/15 min): start {load_start}, end {_load()}")
    print(f"{'':48} {'mol/s wall':>11} {'mol/CPU-s':>10}")
    for label, w, c, note in rows:
        print(f"{label:48} {w:11.1f} {c:10.1f}   {note}")
    print(f"\nbare path stages, CPU ms per image: {breakdown}")
    print(f"peak RSS: this process {_maxrss_mb(resource.RUSAGE_SELF):.0f} MB, "
          f"largest child (Ray worker) {_maxrss_mb(resource.RUSAGE_CHILDREN):.0f} MB")


if __name__ == "__main__":
    main()
