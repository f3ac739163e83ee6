"""Benchmark of the molecules engine, side by side in one run (run by hand, ~2-3 minutes).

    .venv/bin/python bench/bench_molecules.py [--n 150] [--size 1024] [--no-ray]

Rows (all on the same real ChEMBL molecules, 1024 px by default):
- pipeline, 1 core: got-data build in-process (workers=0): parse, fragment, style, layout,
  read-back check, Cairo PNG, chunk strip, tar + manifest.
- bare loop: parse + MolDraw2DCairo with default options + PNG bytes, nothing else. Pipeline and
  bare runs alternate --reps times (medians); a second figure times engine.sample() and the bare
  loop molecule by molecule, interleaved, which is the steadiest ratio on a shared machine.
- bare + re-encode: the bare loop plus decoding Cairo's PNG and re-encoding it with
  renderers.image.encode_png (level 6 and 1), the alternative to stripping chunks.
- naive: Draw.MolToImage (PIL image) + encode_png, what a quick script does.
- Ray with 1 and 2 workers (wall time; ray.init reported separately).
Rates are given per wall second and per CPU second of this process: the machine is shared,
so CPU-second rates are the steadier per-core figure. Peak memory is max RSS.
"""

from __future__ import annotations

import argparse
import io
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
from PIL import Image  # noqa: E402
from rdkit import Chem, rdBase  # noqa: E402
from rdkit.Chem import Draw  # noqa: E402
from rdkit.Chem.Draw import rdMolDraw2D  # noqa: E402

from engines.molecules import Molecules  # noqa: E402
from renderers.image import encode_png  # noqa: E402


def _maxrss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def _timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of this process, items)."""
    w0, c0 = time.perf_counter(), time.process_time()
    n = fn()
    return time.perf_counter() - w0, time.process_time() - c0, n


def _cairo_png(smiles: str, size: int) -> bytes:
    mol = Chem.MolFromSmiles(smiles)
    drawer = rdMolDraw2D.MolDraw2DCairo(size, size)
    drawer.DrawMolecule(mol)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--no-ray", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_molecules_"))
    src = tmp / "in.smi"
    lines = (SHARED_DATA / "smiles" / "chembl20_chiral_10k.smi").read_text().splitlines()
    # As many molecules as samples, as in a real build (planning parses every input once).
    src.write_text("\n".join(lines[:: max(1, len(lines) // args.n)][: args.n]) + "\n")
    params = {"size": args.size}
    rows: list[tuple[str, float, float, str]] = []
    try:
        # Pipeline and bare loop alternate, --reps times each; medians, so a burst of load from
        # other processes on the shared machine hits both sides alike.
        # Warm-up: the engine registry imports every engine module (PyMuPDF, Verovio...) once.
        build_dataset("molecules", tmp / "warm", n=3, inputs=[str(src)], params=params)
        pipe, bare = [], []
        smiles: list[str] = []
        for rep in range(args.reps):
            out = tmp / f"p{rep}"
            wall, cpu, made = _timed(lambda out=out: build_dataset(
                "molecules", out, n=args.n, inputs=[str(src)], params=params, shard_size=max(1, args.n // 3)).samples)
            pipe.append((made / wall, made / cpu))
            smiles = [r["meta"]["smiles_input"] for r in samples(out)]
            with rdBase.BlockLogs():
                bw, bc, _ = _timed(lambda smiles=smiles: sum(1 for s in smiles if _cairo_png(s, args.size)))
            bare.append((len(smiles) / bw, len(smiles) / bc))
        pipe_w, pipe_c = (statistics.median(x[i] for x in pipe) for i in (0, 1))
        bare_w, bare_c = (statistics.median(x[i] for x in bare) for i in (0, 1))
        ratios = sorted(p[1] / b[1] for p, b in zip(pipe, bare, strict=True))
        rows.append((f"pipeline, 1 core (workers=0), median of {args.reps}", pipe_w, pipe_c, f"{made}/{args.n} samples"))
        rows.append(("bare RDKit Cairo draw + PNG, median", bare_w, bare_c,
                     f"pipeline/bare = {pipe_w / bare_w:.2f} wall, {pipe_c / bare_c:.2f} CPU "
                     f"(per-rep CPU ratios {', '.join(f'{r:.2f}' for r in ratios)})"))
        # Steadiest figure on a shared machine: the engine's sample() and the bare loop timed
        # molecule by molecule, interleaved, so both see the same load (no tar/manifest I/O).
        engine = Molecules(Molecules.resolve_params(params), 0, Molecules.plan([str(src)], Molecules.resolve_params(params)))
        eng_cpu = bare_cpu = 0.0
        with rdBase.BlockLogs():
            for position in range(len(engine.units)):
                c0 = time.process_time()
                engine.sample(position)
                c1 = time.process_time()
                _cairo_png(engine.unit(position)[0][0], args.size)
                eng_cpu, bare_cpu = eng_cpu + c1 - c0, bare_cpu + time.process_time() - c1
            pngs = [_cairo_png(s, args.size) for s in smiles[:40]]
        k = len(engine.units)
        rows.append(("engine sample() interleaved with bare", float("nan"), k / eng_cpu,
                     f"engine/bare = {bare_cpu / eng_cpu:.2f} CPU; bare {1000 * bare_cpu / k:.1f} ms, "
                     f"engine {1000 * eng_cpu / k:.1f} ms CPU/molecule"))
        for level in (6, 1):
            def reencode(level: int = level) -> int:
                for png in pngs:
                    encode_png(Image.open(io.BytesIO(png)), level)
                return len(pngs)
            rw, rc, k = _timed(reencode)
            extra = rc / k
            rows.append((f"bare + decode/encode_png level {level}", 1 / (1 / bare_w + rw / k), 1 / (1 / bare_c + extra),
                         f"re-encode alone {1000 * extra:.1f} ms CPU/image"))

        def naive() -> int:
            for s in smiles:
                encode_png(Draw.MolToImage(Chem.MolFromSmiles(s), size=(args.size, args.size)))
            return len(smiles)
        with rdBase.BlockLogs():
            nw, nc, _ = _timed(naive)
        rows.append(("naive MolToImage + encode_png", len(smiles) / nw, len(smiles) / nc,
                     f"pipeline/naive = {pipe_w * nw / len(smiles):.2f} wall, {pipe_c * nc / len(smiles):.2f} CPU"))
        mean_png = sum(r["images"][0]["size"] for r in samples(out)) / max(1, made)
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
    print(f"\nmolecules at {args.size} px, n={args.n}; mean PNG {mean_png / 1024:.1f} KiB")
    print(f"{'':48} {'mol/s wall':>11} {'mol/CPU-s':>10}")
    for label, w, c, note in rows:
        print(f"{label:48} {w:11.1f} {c:10.1f}   {note}")
    print(f"\npeak RSS: this process {_maxrss_mb(resource.RUSAGE_SELF):.0f} MB, "
          f"largest child (Ray worker) {_maxrss_mb(resource.RUSAGE_CHILDREN):.0f} MB")


if __name__ == "__main__":
    main()
