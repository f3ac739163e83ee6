"""Molecules: RDKit drawings of real molecules (ChEMBL by default) with their SMILES as target.

Plan (driver): read SMILES from .smi/.csv/.tsv files (gzip etc. inferred), folders and fsspec
URLs; canonicalise each once so exact duplicates are found in input order (the first wins; the
later ones stay as units that are reported as ``duplicate``). Worker: parse, pick the fragment,
choose a drawing style from ``rng(position)``, lay out, check that the drawing reads back as the
target (stereo from coordinates and wedges, abbreviations expanded), draw: RDKit SVG rasterised
by librsvg, written as a grey PNG when the picture has no colour.
"""

from __future__ import annotations

import csv
import io
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
from rdkit import Chem, rdBase

from engines.base import PROMPT_FORMAT, EncodedImage, Engine, Param, Rejection, Result, Sample, source_name
from renderers.rdkit_draw import (
    FONTS,
    DrawStyle,
    MoleculeError,
    canonical,
    choose_fragment,
    parse_smiles,
    png_size,
    prepare,
    read_back,
    render,
)

DEFAULT_SET = Path(__file__).resolve().parent / "data" / "molecules_default.smi"
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")
_SMILES_EXT = (".smi", ".smiles", ".txt", ".ism", ".can")
_TABLE_EXT = {".csv": ",", ".tsv": "\t"}
_HEADER_WORDS = {"smiles", "canonical_smiles", "smi", "isomeric_smiles"}
_PARSE_CACHE_UNITS = 20_000  # parse cache only for unit sets this small (~5 KB a molecule per worker)
_ALL_H_MAX_ATOMS = 30  # explicit H on every atom only for small molecules: beyond that the picture is a thicket
_FONT_NAMES = sorted(FONTS)


class _Pick:
    """``rng.choice(items, p=weights)`` without numpy's per-call array building and checks (~8 us each).

    Same draw, same result: numpy's ``Generator.choice`` with ``p`` takes one ``rng.random()`` and
    searches the normalised cumulative sum (side="right"); the sum is computed here the same way.
    """

    def __init__(self, items: tuple[str, ...], weights: tuple[float, ...]) -> None:
        cdf = np.asarray(weights, dtype=np.float64).cumsum()
        cdf /= cdf[-1]
        self.items, self.cdf = items, cdf.tolist()

    def __call__(self, rng: np.random.Generator) -> str:
        return self.items[bisect_right(self.cdf, rng.random())]


_AROMATIC = _Pick(("kekule", "circles", "dashed"), (0.6, 0.25, 0.15))
_PALETTE = _Pick(("bw", "default", "cdk", "avalon"), (0.5, 0.3, 0.1, 0.1))


def _kind(path: str) -> str | None:
    name = path.lower()
    for ext in _COMPRESSED:
        if name.endswith(ext):
            name = name[: -len(ext)]
            break
    suffix = Path(name).suffix
    if suffix in _TABLE_EXT:
        return suffix
    if suffix in _SMILES_EXT:
        return ".smi"
    return None


def _files(inp: str) -> list[str]:
    """The SMILES files an input names: itself, or every SMILES/CSV/TSV file under a folder or glob."""
    fs, path = fsspec.core.url_to_fs(inp)
    protocol = inp.split("://", 1)[0] + "://" if "://" in inp else ""
    if any(ch in path for ch in "*?["):
        found = sorted(fs.glob(path))
    elif fs.isdir(path):
        found = sorted(fs.find(path))
    else:
        return [inp]  # a single file is read whatever its name; .csv/.tsv decide the format
    return [protocol + p if protocol and not p.startswith(protocol) else p for p in found if _kind(p)]


def _rows(url: str, column: str) -> Iterator[tuple[str, int]]:
    """(smiles, line number) of one file; line numbers are 1-based physical lines."""
    with fsspec.open(url, "rb", compression="infer") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")
        delimiter = _TABLE_EXT.get(_kind(url) or "")
        if delimiter:
            reader = csv.reader(text, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                return
            names = [h.strip().lower() for h in header]
            if column.lower() not in names:
                raise ValueError(f"{url} has no column {column!r} (columns: {', '.join(header)})")
            col = names.index(column.lower())
            for row in reader:
                if len(row) > col and row[col].strip():
                    yield row[col].strip(), reader.line_num
            return
        for number, line in enumerate(text, start=1):
            token = line.split(None, 1)[0] if line.strip() else ""
            if not token or token.startswith("#") or (number == 1 and token.lower() in _HEADER_WORDS):
                continue
            yield token, number


def _dedup_key(smiles: str, fragments: str) -> str | None:
    """Canonical SMILES of what would be drawn, or None when the worker will reject it anyway."""
    try:
        mol, _ = choose_fragment(parse_smiles(smiles), fragments)
    except MoleculeError:
        return None
    return canonical(mol)


class Molecules(Engine):
    name = "molecules"
    version = "2"  # 2: SVG + librsvg + own PNG writer instead of Cairo (other bytes, grey PNGs)
    description = "RDKit drawings of real molecules in varied paper/patent styles; SMILES targets"
    inputs = "optional"
    params = (
        Param("size", 1024, "image width and height in pixels", int, minimum=128, maximum=4096),
        Param("target_form", "canonical", "target SMILES: RDKit canonical isomeric, or the input's own text",
              choices=("canonical", "input")),
        Param("fragments", "largest", "disconnected inputs (salts, mixtures): draw the largest fragment or reject",
              choices=("largest", "reject")),
        Param("max_heavy_atoms", 60, "reject larger molecules: beyond this they are not legible at the size",
              int, minimum=1),
        Param("column", "smiles", "column holding the SMILES in CSV/TSV inputs (case-insensitive)"),
        Param("abbreviations", 0.3, "share of drawings that abbreviate common groups (CF3, OMe, CO2Et...)",
              float, minimum=0.0, maximum=1.0),
        Param("explicit_h", 0.2, "share of drawings with explicit hydrogens (all, or on stereocentres)",
              float, minimum=0.0, maximum=1.0),
    )

    # -- driver side -------------------------------------------------------------------
    @classmethod
    def plan(cls, inputs: list[str], params: dict[str, Any]) -> list[Any]:
        """Units [smiles, "path:line"] or, for a repeat, [smiles, "path:line", "path:line of the first"]."""
        sources = inputs or [str(DEFAULT_SET)]
        units: list[Any] = []
        first: dict[str, str] = {}
        with rdBase.BlockLogs():  # the worker reports parse errors; the driver stays quiet
            for inp in sources:
                files = _files(inp)
                if not files:
                    raise ValueError(f"no SMILES, CSV or TSV files in {inp}")
                for url in files:
                    name = source_name(url)  # resolves the path: once per file, not per line
                    for smiles, line in _rows(url, params.get("column", "smiles")):
                        source = f"{name}:{line}"
                        key = _dedup_key(smiles, params.get("fragments", "largest"))
                        if key is not None and key in first:
                            units.append([smiles, source, first[key]])
                            continue
                        if key is not None:
                            first[key] = source
                        units.append([smiles, source])
        return units

    # -- worker side -------------------------------------------------------------------
    def sample(self, position: int) -> Result:
        unit, epoch = self.unit(position)
        smiles, source = unit[0], unit[1]
        if len(unit) > 2:
            return Rejection("duplicate", f"same molecule as {unit[2]}: {smiles}", source)
        rng = self.rng(position)
        try:
            return self._draw(smiles, source, rng, epoch)
        except MoleculeError as exc:
            return Rejection(exc.reason, exc.detail, source)

    def _draw(self, smiles: str, source: str, rng: np.random.Generator, epoch: int) -> Result:
        with rdBase.CaptureErrorLog():  # keep RDKit's warnings off the worker's stderr
            mol, n_frags, target = self._parsed(smiles)
            heavy = mol.GetNumHeavyAtoms()
            if heavy > self.p["max_heavy_atoms"]:
                raise MoleculeError("too_large", f"{heavy} heavy atoms > max_heavy_atoms={self.p['max_heavy_atoms']}")
            style = self.style(rng, mol)
            drawing = prepare(mol, style)
            if read_back(drawing.mol, drawing.abbreviations) != target:
                # A label can hide a stereocentre (two groups abbreviated alike) and RDKit's depictor can
                # break a drawn stereo element (a macrocycle's E/Z): a plainer layout usually keeps it.
                style = replace(style, abbreviations=False, coordgen=not style.coordgen)
                drawing = prepare(mol, style)
                if read_back(drawing.mol, drawing.abbreviations) != target:
                    raise MoleculeError("stereo_not_drawable", f"the 2D drawing does not show the stereo of {target}")
            drawing = render(drawing, style)
        if self.p["target_form"] == "input":
            target = self._input_form(smiles, mol, n_frags, target)
        width, height = png_size(drawing.png)
        meta = {
            "smiles_input": smiles,
            "heavy_atoms": heavy,
            "fragments": n_frags,
            "pass": epoch,
            "style": {**vars(style), "aromatic": drawing.aromatic,
                      "abbreviations": sorted(set(drawing.abbreviations.values()))},
        }
        return Sample(task="molecule", prompt=PROMPT_FORMAT, target=target,
                      images=[EncodedImage(drawing.png, width, height)], source=source, meta=meta)

    def _parsed(self, smiles: str) -> tuple[Chem.Mol, int, str]:
        """(fragment to draw, fragments in the input, canonical target), kept per worker for small unit sets.

        Later passes over the same units (n > units) then skip parsing, sanitising, stereo perception and
        canonicalisation (~0.35 ms a molecule). Nothing downstream changes the cached molecule in place
        (layout works on copies), so a hit draws the same bytes as a fresh parse.
        """
        cache: dict[str, tuple[Chem.Mol, int, str] | tuple[str, str]] = self.__dict__.setdefault("_parse_cache", {})
        hit = cache.get(smiles)
        if hit is None:
            try:
                mol, n_frags = choose_fragment(parse_smiles(smiles), self.p["fragments"])
                hit = (mol, n_frags, canonical(mol))
            except MoleculeError as exc:
                hit = (exc.reason, exc.detail)
            if len(self.units) <= _PARSE_CACHE_UNITS:
                cache[smiles] = hit
        if len(hit) == 2:
            raise MoleculeError(*hit)  # a fresh error each time: a cached one would keep its old traceback
        return hit

    @staticmethod
    def _input_form(smiles: str, mol: Chem.Mol, n_frags: int, target: str) -> str:
        """The input's own text, or the drawn fragment's piece of it when a fragment was chosen."""
        if n_frags == 1:
            return smiles
        for piece in smiles.split("."):
            with rdBase.BlockLogs():
                m = Chem.MolFromSmiles(piece)
            if m is not None and canonical(m) == target:
                return piece
        return Chem.MolToSmiles(mol, canonical=False)  # ring bonds across '.': no textual piece exists

    def style(self, rng: np.random.Generator, mol: Chem.Mol) -> DrawStyle:
        """Every visual choice, from the position's rng only (a new pass is a new position: a new style)."""
        size = self.p["size"]
        px = size / 1024
        heavy = mol.GetNumHeavyAtoms()
        hydrogens = "implicit"
        if rng.random() < self.p["explicit_h"]:
            hydrogens = "all" if heavy <= _ALL_H_MAX_ATOMS and rng.random() < 0.5 else "stereo"
        rot = rng.random()
        rotate = 0.0 if rot < 0.5 else float(rng.uniform(-30, 30)) if rot < 0.8 else float(rng.uniform(0, 360))
        return DrawStyle(
            size=size,
            font=_FONT_NAMES[int(rng.integers(len(_FONT_NAMES)))],
            font_scale=float(rng.uniform(0.45, 0.8)),
            max_font_px=float(rng.uniform(28, 56)) * px,
            bond_px=float(rng.uniform(1.2, 4.0)) * px,
            bond_length_px=float(rng.uniform(45, 110)) * px,
            rotate=round(rotate, 2),
            hydrogens=hydrogens,
            aromatic=_AROMATIC(rng),
            palette=_PALETTE(rng),
            abbreviations=bool(rng.random() < self.p["abbreviations"]),
            padding=float(rng.uniform(0.03, 0.2)),
            coordgen=bool(rng.random() < 0.3),
            explicit_methyl=bool(rng.random() < 0.1),
            multiple_bond_offset=float(rng.uniform(0.12, 0.2)),
            plain_wedges=bool(rng.random() < 0.5),
        )
