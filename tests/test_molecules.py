"""molecules engine: labels read back from the drawing, inputs, rejections, cycling, determinism."""

from __future__ import annotations

import gzip
import io
import re
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from pathlib import Path

import fsspec
import numpy as np
import pytest
from helpers import SHARED_DATA, build_dataset, errors, folder_digest, image, samples
from PIL import Image
from rdkit import Chem, rdBase

from engines.base import PROMPT_FORMAT
from engines.molecules import DEFAULT_SET, Molecules
from renderers.rdkit_draw import (
    FONTS,
    DrawStyle,
    _single_bond_skeleton,
    abbreviation_mols,
    choose_fragment,
    draw,
    parse_smiles,
    png_crc_ok,
    prepare,
    read_back,
    render,
    svg,
)
from renderers.svg_png import encode_opaque, rasterize

SHARED_SMILES = SHARED_DATA / "smiles" / "chembl20_chiral_10k.smi"


def _inchikey(mol: Chem.Mol) -> str:
    with rdBase.BlockLogs():
        return Chem.MolToInchiKey(mol)


def _drawn_inchikey(drawn: Chem.Mol, labels: dict[int, str]) -> str:
    """What a reader of the picture gets: stereo from coordinates + wedges only, labels expanded."""
    with rdBase.BlockLogs():
        mol = Chem.MolFromMolBlock(Chem.MolToMolBlock(drawn), removeHs=False)
    assert mol is not None
    if labels:
        rw = Chem.RWMol(mol)
        for k, (idx, label) in enumerate(sorted(labels.items()), start=1):
            atom = rw.GetAtomWithIdx(idx)
            assert atom.GetAtomicNum() == 0
            atom.SetAtomMapNum(k)
            group = Chem.RWMol(abbreviation_mols()[label])
            dummies = [a for a in group.GetAtoms() if a.GetAtomicNum() == 0]
            assert len(dummies) == 1
            dummies[0].SetAtomMapNum(k)
            rw.InsertMol(group)
        mol = Chem.molzip(rw.GetMol())
        Chem.SanitizeMol(mol)
    # Through SMILES: the mol block marks undrawn centres "unknown", InChI's "t7?" vs none, same picture.
    return _inchikey(Chem.MolFromSmiles(Chem.MolToSmiles(Chem.RemoveHs(mol))))


def test_targets_read_back_as_drawn_on_hundreds_of_real_molecules() -> None:
    lines = [line.split()[0] for line in SHARED_SMILES.read_text().splitlines() if line.strip()]
    chosen = lines[::33]  # ~300 molecules spread over the 10k set
    # Small images keep this fast; layout, wedges and labels do not depend on the pixel size.
    engine = Molecules(Molecules.resolve_params({"size": 256, "abbreviations": 0.5, "explicit_h": 0.5}), 7,
                       [[s, f"x:{i}"] for i, s in enumerate(chosen)])
    seen: Counter[str] = Counter()
    checked = 0
    for i, smiles in enumerate(chosen):
        mol, _ = choose_fragment(parse_smiles(smiles), "largest")
        if mol.GetNumHeavyAtoms() > engine.p["max_heavy_atoms"]:
            continue
        target = Chem.MolToSmiles(mol)
        style = engine.style(engine.rng(i), mol)
        drawing = draw(mol, style)
        assert png_crc_ok(drawing.png)
        assert _inchikey(Chem.MolFromSmiles(target)) == _inchikey(mol)
        if _drawn_inchikey(drawing.mol, drawing.abbreviations) != _inchikey(mol):
            # The engine's read-back check must catch this and redraw plainly (or reject).
            assert read_back(drawing.mol, drawing.abbreviations) != target
            seen["fallback"] += 1
            style = replace(style, abbreviations=False, coordgen=not style.coordgen)
            drawing = prepare(mol, style)
            if read_back(drawing.mol, drawing.abbreviations) != target:
                seen["rejected"] += 1
                continue
            assert _drawn_inchikey(drawing.mol, drawing.abbreviations) == _inchikey(mol)
        checked += 1
        seen["abbreviated"] += bool(drawing.abbreviations)
        seen[f"h_{style.hydrogens}"] += 1
        seen[f"aromatic_{drawing.aromatic}"] += 1
        seen["stereo"] += "@" in target or "/" in target or "\\" in target
    assert checked >= 270, seen
    assert seen["fallback"] <= 0.02 * len(chosen) and seen["rejected"] <= 2, seen
    for key in ("abbreviated", "h_all", "h_stereo", "aromatic_circles", "aromatic_kekule", "aromatic_dashed"):
        assert seen[key] >= 10, (key, seen)
    assert seen["stereo"] >= 200, seen


def test_engine_samples_are_true_through_the_build(tmp_path) -> None:
    src = tmp_path / "in.smi"
    lines = [line.split()[0] for line in SHARED_SMILES.read_text().splitlines()[1000:1040]]
    src.write_text("\n".join(lines) + "\n")
    build_dataset("molecules", tmp_path / "out", n=40, inputs=[str(src)],
                  params={"size": 384, "abbreviations": 0.6, "explicit_h": 0.5})
    recs = samples(tmp_path / "out")
    errs = errors(tmp_path / "out")
    assert len(recs) + len(errs) == 40
    assert all(e["reason"] in {"too_large", "stereo_not_drawable"} for e in errs), errs
    assert len(recs) >= 36
    by_source = {f"{src}:{i + 1}": s for i, s in enumerate(lines)}
    for rec in recs:
        assert rec["task"] == "molecule" and rec["prompt"] == PROMPT_FORMAT
        drawn, _ = choose_fragment(parse_smiles(by_source[rec["source"]]), "largest")  # salts: the largest part
        assert _inchikey(Chem.MolFromSmiles(rec["target"])) == _inchikey(drawn)
        assert rec["target"] == Chem.MolToSmiles(Chem.MolFromSmiles(rec["target"]))  # canonical by default
        img = image(tmp_path / "out", rec)
        assert img.size == (384, 384)


def test_default_set_builds_deterministically(tmp_path) -> None:
    a = build_dataset("molecules", tmp_path / "a", n=12)
    b = build_dataset("molecules", tmp_path / "b", n=12)
    assert (b.samples, b.errors) == (a.samples, a.errors)
    assert a.samples + a.errors == 12 and a.samples >= 10
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
    rec = samples(tmp_path / "a")[0]
    assert rec["images"][0]["width"] == 1024 and rec["source"].startswith("builtin:molecules_default.smi:")
    assert image(tmp_path / "a", rec).size == (1024, 1024)
    header = DEFAULT_SET.read_text().splitlines()[:8]
    assert any("CC BY-SA 3.0" in line for line in header) and any("ChEMBL" in line for line in header)


def _write_inputs(folder) -> dict[str, str]:
    folder.mkdir()
    (folder / "a.smi").write_text(
        "SMILES Name\n"
        "# a comment line\n"
        "CCO ethanol\n"               # line 3
        "C1CC( broken\n"              # line 4: parse error
        "CN(C)(C)(C)C pentavalent\n"  # line 5: sanitisation
        "OCC ethanol-again\n"         # line 6: duplicate of line 3 after canonicalisation
        "C[C@H](N)C(=O)O.Cl alanine-hcl\n"  # line 7: salt, largest fragment kept
    )
    with open(folder / "b.csv", "w") as fh:
        fh.write("id,Structure,mw\n1,c1ccccc1O,94\n2,\"CC(=O)Oc1ccccc1C(=O)O\",180\n")
    with gzip.open(folder / "c.tsv.gz", "wt") as fh:
        fh.write("structure\tname\nCCCCCCCCCCCCCCCCCCCC\ticosane\nCC(C)Cc1ccc(C(C)C(=O)O)cc1\tibuprofen\n")
    (folder / "notes.md").write_text("not a SMILES file\n")
    return {"ethanol": f"{folder}/a.smi:3"}


def test_inputs_filters_and_reasons(tmp_path) -> None:
    _write_inputs(tmp_path / "in")
    params = {"column": "structure", "size": 256, "max_heavy_atoms": 15}
    units = Molecules.plan([str(tmp_path / "in")], Molecules.resolve_params(params))
    assert [u[1].rsplit("/", 1)[1] for u in units] == [
        "a.smi:3", "a.smi:4", "a.smi:5", "a.smi:6", "a.smi:7", "b.csv:2", "b.csv:3", "c.tsv.gz:2", "c.tsv.gz:3"]
    assert units[3][2].endswith("a.smi:3")  # the duplicate names the first occurrence
    build_dataset("molecules", tmp_path / "out", n=len(units), inputs=[str(tmp_path / "in")], params=params)
    reasons = {e["source"].rsplit("/", 1)[1]: e for e in errors(tmp_path / "out")}
    assert {k: e["reason"] for k, e in reasons.items()} == {
        "a.smi:4": "invalid_smiles", "a.smi:5": "sanitization_failed", "a.smi:6": "duplicate",
        "c.tsv.gz:2": "too_large"}
    assert "syntax error" in reasons["a.smi:4"]["detail"] and "[" not in reasons["a.smi:4"]["detail"][:1]
    assert "valence" in reasons["a.smi:5"]["detail"].lower()
    assert "a.smi:3" in reasons["a.smi:6"]["detail"]
    assert "20 heavy atoms" in reasons["c.tsv.gz:2"]["detail"]
    targets = {r["source"].rsplit("/", 1)[1]: r["target"] for r in samples(tmp_path / "out")}
    assert targets == {"a.smi:3": "CCO", "a.smi:7": "C[C@H](N)C(=O)O", "b.csv:2": "Oc1ccccc1",
                       "b.csv:3": "CC(=O)Oc1ccccc1C(=O)O", "c.tsv.gz:3": "CC(C)Cc1ccc(C(C)C(=O)O)cc1"}


def test_mixtures_can_be_rejected_and_input_form_kept(tmp_path) -> None:
    src = tmp_path / "m.smi"
    src.write_text("OC(=O)[C@@H](N)C.Cl\nC(C)O\n")
    build_dataset("molecules", tmp_path / "rej", n=2, inputs=[str(src)], params={"fragments": "reject", "size": 256})
    assert [e["reason"] for e in errors(tmp_path / "rej")] == ["mixture"]
    build_dataset("molecules", tmp_path / "inp", n=2, inputs=[str(src)], params={"target_form": "input", "size": 256})
    assert sorted(r["target"] for r in samples(tmp_path / "inp")) == ["C(C)O", "OC(=O)[C@@H](N)C"]


def test_fsspec_urls_and_missing_column(tmp_path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/mol-test/set/x.smi", b"CCN\nCCCl\n")
    fs.pipe("/mol-test/set/y.smi.gz", gzip.compress(b"c1ccncc1\n"))
    units = Molecules.plan(["memory://mol-test/set"], Molecules.resolve_params({}))
    assert [u[0] for u in units] == ["CCN", "CCCl", "c1ccncc1"]
    assert units[2][1] == "memory:///mol-test/set/y.smi.gz:1" or units[2][1].endswith("y.smi.gz:1")
    bad = tmp_path / "t.csv"
    bad.write_text("a,b\nCC,1\n")
    with pytest.raises(ValueError, match="no column 'smiles'"):
        Molecules.plan([str(bad)], Molecules.resolve_params({}))


def test_positions_beyond_the_units_cycle_with_new_styles(tmp_path) -> None:
    src = tmp_path / "two.smi"
    src.write_text("CC(=O)Nc1ccc(O)cc1\nCN1C=NC2=C1C(=O)N(C)C(=O)N2C\n")
    build_dataset("molecules", tmp_path / "out", n=6, inputs=[str(src)], params={"size": 256})
    recs = samples(tmp_path / "out")
    assert len(recs) == 6
    assert sorted(r["meta"]["pass"] for r in recs) == [0, 0, 1, 1, 2, 2]
    for source in {r["source"] for r in recs}:
        same = [r for r in recs if r["source"] == source]
        assert len({r["target"] for r in same}) == 1
        assert len({r["images"][0]["sha256"] for r in same}) == 3  # every pass is drawn differently


def test_later_passes_from_the_parse_cache_draw_the_same_bytes() -> None:
    # A worker that drew pass 0 serves pass 1 from its parse cache; a fresh worker parses again: same results.
    lines = [ln.split()[0] for ln in SHARED_SMILES.read_text().splitlines() if ln.strip()][7::500][:16]
    units = [[smi, f"s:{k}"] for k, smi in enumerate(lines + ["C1CC", "[Na+].[Cl-]"])]
    params = Molecules.resolve_params({"size": 128, "explicit_h": 0.5, "abbreviations": 0.5, "max_heavy_atoms": 30})
    warm, cold = Molecules(params, 5, units), Molecules(params, 5, units)
    with rdBase.BlockLogs():
        for position in range(len(units)):
            warm.sample(position)
        later = range(len(units), 2 * len(units))
        pairs = [(warm.sample(position), cold.sample(position)) for position in later]
    assert len(warm.__dict__["_parse_cache"]) == len(units)
    assert all(repr(a) == repr(b) for a, b in pairs)
    assert {type(a).__name__ for a, _ in pairs} == {"Sample", "Rejection"}


def _chunks(png: bytes) -> list[bytes]:
    chunks, pos = [], 8
    while pos < len(png):
        length = int.from_bytes(png[pos:pos + 4], "big")
        chunks.append(png[pos + 4:pos + 8])
        pos += 12 + length
    return chunks


def test_png_carries_no_metadata_and_is_grey_only_without_colour() -> None:
    mol = parse_smiles("CC(=O)Oc1ccccc1C(=O)O")
    engine = Molecules(Molecules.resolve_params({"size": 256}), 0, [["x", "y"]])
    style = engine.style(np.random.default_rng(0), mol)
    for palette, mode in (("bw", "L"), ("default", "RGB"), ("cdk", "RGB")):
        drawing = prepare(mol, replace(style, palette=palette))
        png = render(drawing, replace(style, palette=palette)).png
        assert png_crc_ok(png) and set(_chunks(png)) <= {b"IHDR", b"IDAT", b"IEND"}
        decoded = Image.open(io.BytesIO(png))
        assert decoded.mode == mode, palette
        # The PNG holds exactly librsvg's pixels (alpha is opaque everywhere and dropped).
        rgba = rasterize(svg(drawing, replace(style, palette=palette)))
        assert np.array_equal(np.asarray(decoded.convert("RGB")), rgba[:, :, :3])
    # An all-carbon molecule has no colour in any palette: grey too.
    hexane = parse_smiles("CCCCCC")
    png = draw(hexane, replace(style, palette="default")).png
    assert Image.open(io.BytesIO(png)).mode == "L"


def test_encoder_round_trips_and_refuses_transparency() -> None:
    rng = np.random.default_rng(3)
    rgba = rng.integers(0, 256, (37, 53, 4), dtype=np.uint8)
    rgba[:, :, 3] = 255
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(encode_opaque(rgba)))), rgba[:, :, :3])
    rgba[:, :, 1] = rgba[:, :, 2] = rgba[:, :, 0]
    grey = Image.open(io.BytesIO(encode_opaque(rgba)))
    assert grey.mode == "L" and np.array_equal(np.asarray(grey), rgba[:, :, 0])
    see_through = '<svg xmlns="http://www.w3.org/2000/svg" width="20" height="20"><rect width="10" height="20"/></svg>'
    with pytest.raises(ValueError, match="transparent"):
        rasterize(see_through)


_LABEL_PATH = re.compile(r"<path class='atom-\d+'[^>]*/>")


@pytest.mark.parametrize("font", sorted(FONTS))
def test_labels_are_outlines_with_ink_in_every_font(font: str) -> None:
    """RDKit writes labels as glyph outlines, never <text> (librsvg would need fontconfig for that)."""
    mol = parse_smiles("OC(=O)c1ccc(N)cc1C(F)(F)F")
    style = DrawStyle(size=512, font=font, abbreviations=True, palette="bw")
    drawing = prepare(mol, style)
    assert sorted(drawing.abbreviations.values()) == ["CF3", "CO2H"]
    text = svg(drawing, style)
    assert "<text" not in text
    labels = _LABEL_PATH.findall(text)
    assert len(labels) >= 3  # CF3, CO2H, NH2 (each label may be several glyph paths)

    def ink(svg_text: str) -> int:
        return int((255 - rasterize(svg_text)[:, :, 0].astype(np.int64)).sum() // 255)

    # Without the label paths the picture loses the glyphs' ink: labels really reach the pixels.
    assert ink(text) - ink(_LABEL_PATH.sub("", text)) > 300 * len(set(drawing.abbreviations.values()))


def test_separate_processes_give_identical_bytes(tmp_path) -> None:
    """Ray workers are fresh interpreters: RDKit state (CoordGen, fonts) must not depend on history."""
    src = tmp_path / "in.smi"
    lines = SHARED_SMILES.read_text().splitlines()[::700]
    src.write_text("\n".join(lines) + "\n")
    script = (
        "import sys; sys.path.insert(0, 'tests'); from helpers import build_dataset; "
        f"build_dataset('molecules', sys.argv[1], n={len(lines)}, inputs=[{str(src)!r}], seed=5, "
        "params={'size': 256, 'abbreviations': 0.5, 'explicit_h': 0.5})"
    )
    root = Path(__file__).resolve().parents[1]
    for name in ("p1", "p2"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], cwd=root, check=True, timeout=300)
    build_dataset("molecules", tmp_path / "p3", n=len(lines), inputs=[str(src)], seed=5,
                  params={"size": 256, "abbreviations": 0.5, "explicit_h": 0.5})
    digest = folder_digest(tmp_path / "p1")
    assert digest == folder_digest(tmp_path / "p2") == folder_digest(tmp_path / "p3")
    assert len(samples(tmp_path / "p1")) >= len(lines) - 1


def test_drawing_variants_keep_the_molecule() -> None:
    """Explicit H, circles and labels change the picture, never the atoms or their H counts."""
    mol = parse_smiles("C[C@H](N)c1ccc(-c2cc[nH]c2)nc1C(F)(F)F")
    total_h = sum(a.GetTotalNumHs() for a in mol.GetAtoms())
    everything = prepare(mol, DrawStyle(hydrogens="all"))
    assert sum(a.GetAtomicNum() == 1 for a in everything.mol.GetAtoms()) == total_h
    on_stereo = prepare(mol, DrawStyle(hydrogens="stereo"))
    hs = [a for a in on_stereo.mol.GetAtoms() if a.GetAtomicNum() == 1]
    assert len(hs) == 1 and hs[0].GetNeighbors()[0].GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED
    circles = prepare(mol, DrawStyle(aromatic="circles"))
    assert circles.aromatic == "circles" and len(circles.rings) == 2
    skeleton = _single_bond_skeleton(circles.mol)
    for before, after in zip(circles.mol.GetAtoms(), skeleton.GetAtoms(), strict=True):
        assert after.GetTotalNumHs() == before.GetTotalNumHs()  # pyridine N stays bare, pyrrole NH keeps its H
    assert not any(b.GetIsAromatic() for b in skeleton.GetBonds())
    labelled = prepare(mol, DrawStyle(abbreviations=True))
    assert sorted(labelled.abbreviations.values()) == ["CF3"]
    assert read_back(labelled.mol, labelled.abbreviations) == Chem.MolToSmiles(mol)
    # Large molecules never get every H drawn, whatever the rng says.
    big = parse_smiles("C" * 40)
    engine = Molecules(Molecules.resolve_params({"explicit_h": 1.0}), 0, [["x", "y"]])
    assert {engine.style(engine.rng(i), big).hydrogens for i in range(30)} == {"stereo"}
