"""Benchmark of the molecules engine, side by side in one run (run by hand, ~2-3 minutes).

    .venv/bin/python bench/bench_molecules.py [--n 60] [--reps 6] [--passes 3] [--size 1024] [--no-ray]

Rows (all on the same real ChEMBL molecules, 1024 px by default):
- pipeline, 1 core: got-data build in-process (workers=0): plan (parse + dedup), parse, fragment,
  style, layout, read-back check, RDKit SVG, librsvg raster, PNG (grey when colourless), tar + manifest.
  n = units (one pass), as a build over a large input runs.
- bare loop (headline), the same renderer path drawing the same picture with RDKit alone: for the
  molecule and style the engine draws at each position, parse, RDKit's own abbreviations, explicit
  H, the layout engine the style names, RDKit's standard PrepareMolForDrawing (wedges, Kekule or
  dashed aromatic bonds), MolDraw2DSVG with the engine's options and the rotation, rasterize +
  encode_opaque. Nothing of the engine's own work (label rules, frozen H counts, circles, read-back,
  target, dedup). Pipeline and bare runs alternate --reps times (A B, B A, ...); the headline is the
  median of the per-rep CPU ratios. A second figure times engine.sample() and this loop molecule by
  molecule, interleaved. The mean SVG size of each loop is printed next to the engine's.
- bare loop, RDKit's default picture: the same options on the parsed molecule as it comes (the
  drawer lays it out; no H, no labels, no wedges, no CoordGen): what the ratio was measured
  against before; it draws less than the engine (a smaller SVG), so it is shown, not the headline.
- pipeline over --passes passes (n = passes x units, as builds of the built-in set run): the plan
  is amortised and later passes come from the worker's parse cache; alternated with its bare loop.
- previous path: the same bare loop with MolDraw2DCairo and its PNG (what the engine did before).
- naive: Draw.MolToImage (PIL image) + encode_png, what a quick script does.
- stages of the bare path (CPU ms per image): SVG, raster, encode (grey and colour apart); and the
  engine's own stages run alone (parse, target, style, layout, read-back).
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
from rdkit.Chem import Draw, rdAbbreviations, rdCoordGen, rdDepictor  # noqa: E402
from rdkit.Chem.Draw import rdMolDraw2D  # noqa: E402

from engines.molecules import Molecules  # noqa: E402
from renderers.image import encode_png  # noqa: E402
from renderers.rdkit_draw import (  # noqa: E402
    DrawStyle,
    _options,
    add_hydrogens,
    canonical,
    choose_fragment,
    parse_smiles,
    prepare,
    read_back,
)
from renderers.rdkit_draw import svg as engine_svg  # noqa: E402
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


def _default_picture(drawer_class: type, smiles: str, style: DrawStyle) -> str | bytes:
    """RDKit's default picture of the parsed molecule with the engine's options (SVG text or Cairo PNG)."""
    drawer = drawer_class(style.size, style.size)
    _options(drawer, style)
    drawer.DrawMolecule(Chem.MolFromSmiles(smiles))
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def _svg(smiles: str, style: DrawStyle) -> str:
    return _default_picture(rdMolDraw2D.MolDraw2DSVG, smiles, style)


def bare_png(smiles: str, style: DrawStyle) -> bytes:
    """The engine's renderer path on RDKit's default picture of the molecule (see picture_png)."""
    return encode_opaque(rasterize(_svg(smiles, style)))


def _picture_svg(smiles: str, style: DrawStyle) -> str:
    """RDKit alone drawing the picture the style describes, the way a user of RDKit would ask for it.

    The same content as the engine's drawing: RDKit's own abbreviations, explicit hydrogens, the
    layout engine the style names, kekulised (or dashed) aromatic bonds, stereo wedges (RDKit's
    standard PrepareMolForDrawing) and the rotation (RDKit's drawing option). None of the engine's
    own work: no label display rules, no frozen H counts, no aromatic circles (drawn Kekule), no
    read-back, no target, no fallback redraw.
    """
    mol = Chem.MolFromSmiles(smiles)
    if style.abbreviations:
        mol = rdAbbreviations.CondenseMolAbbreviations(mol, rdAbbreviations.GetDefaultAbbreviations())
    mol = add_hydrogens(mol, style.hydrogens)
    if style.coordgen:
        rdCoordGen.AddCoords(mol)
    else:
        rdDepictor.Compute2DCoords(mol)
    mol = rdMolDraw2D.PrepareMolForDrawing(mol, kekulize=style.aromatic != "dashed", addChiralHs=False)
    drawer = rdMolDraw2D.MolDraw2DSVG(style.size, style.size)
    _options(drawer, style)
    drawer.drawOptions().rotate = style.rotate
    drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def picture_png(smiles: str, style: DrawStyle) -> bytes:
    """The bare loop of the headline ratio: RDKit draws the engine's picture, librsvg, the same PNG writer."""
    return encode_opaque(rasterize(_picture_svg(smiles, style)))


def cairo_png(smiles: str, style: DrawStyle) -> bytes:
    """The previous renderer path: RDKit's Cairo drawer and its own PNG writer."""
    return _default_picture(rdMolDraw2D.MolDraw2DCairo, smiles, style)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--reps", type=int, default=6)
    parser.add_argument("--passes", type=int, default=3, help="second pipeline row: n = passes x units")
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
        def bare_jobs(count: int) -> list[tuple[int, str, DrawStyle]]:
            """What the engine draws at positions 0..count-1, as (position, SMILES, style).

            The engine's style for each molecule, chosen before timing: the bare loops draw the same
            molecule with the same options (and so the same grey/colour mix) without the engine's own
            work. Position p draws engine.unit(p) (a seeded order per pass), not units[p].
            """
            jobs = []
            with rdBase.BlockLogs():
                for position in range(count):
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
            return jobs

        def bare_loop(render: Callable[[str, DrawStyle], bytes], jobs: list) -> tuple[float, float]:
            with rdBase.BlockLogs():
                w, c, k = _timed(lambda: sum(1 for _, s, st in jobs if render(s, st)))
            return k / w, k / c

        def pipeline(count: int, out: Path) -> tuple[float, float]:
            w, c, k = _timed(lambda: build_dataset("molecules", out, n=count, inputs=[str(src)], params=params,
                                                   shard_size=max(1, args.n // 3)).samples)
            return k / w, k / c

        def alternate(passes: int, reps: int, extra: dict[str, list] | None = None) -> tuple[list, list]:
            """Pipeline builds and bare loops over the same positions, alternating A B / B A per rep, so
            a burst of load from other processes on the shared machine hits both alike."""
            jobs = bare_jobs(args.n * passes)
            pipe, bare = [], []
            for rep in range(reps):
                out = tmp / f"p{passes}_{rep}"
                if rep % 2:
                    bare.append(bare_loop(picture_png, jobs))
                    pipe.append(pipeline(args.n * passes, out))
                else:
                    pipe.append(pipeline(args.n * passes, out))
                    bare.append(bare_loop(picture_png, jobs))
                for render, runs in (extra or {}).items():
                    runs.append(bare_loop(render, jobs))
            return pipe, bare

        def med(runs: list, i: int) -> float:
            return statistics.median(x[i] for x in runs)

        cairo: list[tuple[float, float]] = []
        plain: list[tuple[float, float]] = []
        pipe, bare = alternate(1, args.reps, {cairo_png: cairo, bare_png: plain})
        jobs = bare_jobs(args.n)
        # How much each bare loop draws, against the engine's drawing of the same molecule and style.
        svg_chars: dict[str, float] = {"engine": 0.0, "picture": 0.0, "plain": 0.0}
        with rdBase.BlockLogs():
            for position, smiles, style in jobs:
                mol, _ = choose_fragment(parse_smiles(engine.unit(position)[0][0]), "largest")
                svg_chars["engine"] += len(engine_svg(prepare(mol, style), style)) / len(jobs)
                svg_chars["picture"] += len(_picture_svg(smiles, style)) / len(jobs)
                svg_chars["plain"] += len(_svg(smiles, style)) / len(jobs)
        out = tmp / f"p1_{args.reps - 1}"
        made = len(samples(out))
        ratios = sorted(p[1] / b[1] for p, b in zip(pipe, bare, strict=True))
        pipe_w, pipe_c, bare_w, bare_c = med(pipe, 0), med(pipe, 1), med(bare, 0), med(bare, 1)
        cairo_c = med(cairo, 1)
        rows.append((f"pipeline, 1 core (workers=0), median of {args.reps}", pipe_w, pipe_c,
                     f"{made}/{args.n} samples, one pass: plan parses every input, no parse-cache hits"))
        rows.append(("bare: RDKit draws the same picture, median", bare_w, bare_c,
                     f"pipeline/bare = {statistics.median(ratios):.2f} CPU (median of per-rep ratios "
                     f"{', '.join(f'{r:.2f}' for r in ratios)}; ratio of medians {pipe_c / bare_c:.2f} CPU, "
                     f"{pipe_w / bare_w:.2f} wall; SVG {svg_chars['picture']:.0f} vs the engine's "
                     f"{svg_chars['engine']:.0f} chars)"))
        plain_c = med(plain, 1)
        rows.append(("bare: RDKit's default picture, same options", med(plain, 0), plain_c,
                     f"pipeline/this = {pipe_c / plain_c:.2f} CPU: no H, labels, wedges or CoordGen drawn "
                     f"(SVG {svg_chars['plain']:.0f} vs the engine's {svg_chars['engine']:.0f} chars)"))
        rows.append(("previous: bare Cairo draw + PNG, same styles", med(cairo, 0), cairo_c,
                     f"pipeline/Cairo bare = {pipe_c / cairo_c:.2f} CPU, new bare/Cairo bare = {bare_c / cairo_c:.2f}"))
        if args.passes > 1:
            # n = passes x units, as a build of the built-in set (2k units, n = 100k) runs: the plan is
            # amortised and later passes come from the worker's parse cache.
            many_pipe, many_bare = alternate(args.passes, max(2, args.reps // 2))
            many = sorted(p[1] / b[1] for p, b in zip(many_pipe, many_bare, strict=True))
            rows.append((f"pipeline, {args.passes} passes over the units", med(many_pipe, 0), med(many_pipe, 1),
                         f"n={args.passes * args.n}: pipeline/bare = {statistics.median(many):.2f} CPU "
                         f"(per-rep {', '.join(f'{r:.2f}' for r in many)}; bare {med(many_bare, 1):.1f} mol/CPU-s)"))
        # Steadiest figure on a shared machine: sample() and the bare loop molecule by molecule,
        # interleaved, so both see the same load (no tar/manifest I/O).
        eng_cpu = bare_cpu = 0.0
        with rdBase.BlockLogs():
            for position, smiles, style in jobs:
                c0 = time.process_time()
                engine.sample(position)
                c1 = time.process_time()
                picture_png(smiles, style)
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
                text = _picture_svg(smiles, style)
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
        # The engine's own work on top of that path, stage by stage (its drawing, raster and PNG are
        # the bare path's calls on a richer picture: wedges, explicit H, labels, circles).
        own: dict[str, float] = {"parse+fragment": 0.0, "target": 0.0, "style": 0.0, "layout+prepare": 0.0,
                                 "read-back": 0.0}
        with rdBase.BlockLogs():
            for position, _, _ in jobs:
                c0 = time.process_time()
                mol, _ = choose_fragment(parse_smiles(engine.unit(position)[0][0]), "largest")
                c1 = time.process_time()
                canonical(mol)
                c2 = time.process_time()
                style = engine.style(engine.rng(position), mol)
                c3 = time.process_time()
                drawing = prepare(mol, style)
                c4 = time.process_time()
                read_back(drawing.mol, drawing.abbreviations)
                c5 = time.process_time()
                for name, dt in zip(own, (c1 - c0, c2 - c1, c3 - c2, c4 - c3, c5 - c4), strict=True):
                    own[name] += dt
        own_text = ", ".join(f"{name} {1000 * v / len(jobs):.2f}" for name, v in own.items())
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
    print(f"engine's own stages (run alone), CPU ms per molecule: {own_text}")
    print(f"peak RSS: this process {_maxrss_mb(resource.RUSAGE_SELF):.0f} MB, "
          f"largest child (Ray worker) {_maxrss_mb(resource.RUSAGE_CHILDREN):.0f} MB")


if __name__ == "__main__":
    main()
