"""RDKit drawing backend: parse SMILES with readable errors, lay out, draw (SVG rasterised by librsvg).

Everything that reaches the picture is decided by a :class:`DrawStyle`; the engine picks
the style from its seeded rng, this module only executes it. The molecule that is drawn
(with its 2D coordinates, abbreviations and hydrogens) is returned with the PNG so the
caller can check that the drawing reads back as the target (:func:`read_back`).
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import numpy as np
from rdkit import Chem, rdBase
from rdkit.Chem import rdAbbreviations, rdCoordGen, rdDepictor
from rdkit.Chem.Draw import rdMolDraw2D
from rdkit.Geometry import Point2D

from renderers.svg_png import encode_opaque, rasterize

# Fixed choices so coordinates never depend on process state: RDKit's own depictor unless a
# style asks for CoordGen explicitly (never the global SetPreferCoordGen switch).
rdDepictor.SetPreferCoordGen(False)

_SYSTEM_FONTS = Path("/usr/share/fonts/truetype/dejavu")  # fonts-dejavu-core (docker/apt-packages.txt)
_RDKIT_FONTS = Path(rdBase.__file__).resolve().parent / "Data" / "Fonts"
# name -> file ("" = RDKit's built-in FreeType font). Fixed list: a missing file is an install error,
# never a silent fallback, so the same seed draws the same glyphs on every machine.
FONTS: dict[str, str] = {
    "rdkit": "",
    "dejavu-sans": str(_SYSTEM_FONTS / "DejaVuSans.ttf"),
    "dejavu-sans-bold": str(_SYSTEM_FONTS / "DejaVuSans-Bold.ttf"),
    "dejavu-serif": str(_SYSTEM_FONTS / "DejaVuSerif.ttf"),
    "telex": str(_RDKIT_FONTS / "Telex-Regular.ttf"),
}

# RDKit's default abbreviations minus labels a chemist would read as something else:
# its "iBu" and "iPent" patterns are sec-butyl/sec-pentyl, "NC" (isocyanide) reads as a nitrile.
_MISLEADING = {"iBu", "iPent", "NC"}
_TIMESTAMP = re.compile(r"^\[\d\d:\d\d:\d\d\] ?", re.MULTILINE)


class MoleculeError(ValueError):
    """An input that cannot become a drawing; ``reason`` is the errors.jsonl code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DrawStyle:
    size: int = 1024
    font: str = "rdkit"
    font_scale: float = 0.6  # RDKit baseFontSize: label height relative to bond length
    max_font_px: float = 40.0
    bond_px: float = 2.0
    bond_length_px: float = 60.0  # preferred bond length; large molecules shrink below it
    rotate: float = 0.0  # degrees, applied to the coordinates
    hydrogens: str = "implicit"  # implicit | stereo (H on stereocentres) | all
    aromatic: str = "kekule"  # kekule | circles | dashed (RDKit's non-Kekulé style)
    palette: str = "bw"  # bw | default | cdk | avalon
    abbreviations: bool = False
    padding: float = 0.05
    coordgen: bool = False
    explicit_methyl: bool = False
    multiple_bond_offset: float = 0.15
    plain_wedges: bool = False  # wedges in one colour instead of split by atom colour


@dataclass
class Drawing:
    mol: Chem.Mol  # what is drawn: coordinates, wedges, dummy atoms for abbreviations, explicit H
    abbreviations: dict[int, str]  # dummy atom index -> abbreviation label
    aromatic: str  # the aromatic style actually used (circles fall back to kekule)
    rings: list[tuple[int, ...]] = field(default_factory=list)  # rings that get a circle
    png: bytes = b""  # filled by render()


# -- parsing ------------------------------------------------------------------------

def _log_text(messages: str) -> str:
    return " | ".join(line.strip() for line in _TIMESTAMP.sub("", messages).splitlines() if line.strip())


def _without_hs(mol: Chem.Mol) -> Chem.Mol:
    """``RemoveHs`` only when there are hydrogen atoms: on a sanitised molecule without any it is a copy
    plus a second sanitisation (~80 us) that changes nothing."""
    return Chem.RemoveHs(mol) if mol.GetNumAtoms() != mol.GetNumHeavyAtoms() else mol


def parse_smiles(smiles: str) -> Chem.Mol:
    """Parse and sanitise like ``MolFromSmiles`` but keep RDKit's message (timestamps removed)."""
    with rdBase.CaptureErrorLog() as capture:
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
    if mol is None:
        raise MoleculeError("invalid_smiles", _log_text(capture.messages) or f"RDKit cannot parse {smiles!r}")
    if mol.GetNumAtoms() == 0:
        raise MoleculeError("invalid_smiles", "empty molecule")
    with rdBase.CaptureErrorLog() as capture:
        try:
            Chem.SanitizeMol(mol)
            mol = _without_hs(mol)
        except Exception as exc:  # noqa: BLE001 - RDKit raises several exception types
            logged = _log_text(capture.messages)
            raise MoleculeError("sanitization_failed", f"{exc}" + (f" ({logged})" if logged and str(exc) not in logged else "")) from None
    Chem.AssignStereochemistry(mol, cleanIt=True, force=True)
    return mol


def choose_fragment(mol: Chem.Mol, mode: str) -> tuple[Chem.Mol, int]:
    """The molecule to draw and how many fragments the input had ("largest" keeps the biggest)."""
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False)
    if len(frags) == 1:
        return mol, 1
    if mode == "reject":
        raise MoleculeError("mixture", f"{len(frags)} disconnected fragments: {Chem.MolToSmiles(mol)}")
    # Ties broken by canonical SMILES so the choice never depends on input order.
    best = max(frags, key=lambda f: (f.GetNumHeavyAtoms(), f.GetNumAtoms(), Chem.MolToSmiles(f)))
    return best, len(frags)


def canonical(mol: Chem.Mol) -> str:
    return Chem.MolToSmiles(mol, isomericSmiles=True, canonical=True)


# -- abbreviations ------------------------------------------------------------------

_ABBREVIATIONS: dict[str, Chem.Mol] | None = None


@cache
def _abbreviation_defs() -> tuple:
    """Built once per process (RDKit parses the default patterns on every call; nothing mutates them)."""
    return tuple(a for a in rdAbbreviations.GetDefaultAbbreviations() if a.label not in _MISLEADING)


@cache
def _display_labels() -> dict[str, tuple[str, str]]:
    """label -> how RDKit writes it pointing right and pointing left."""
    return {a.label: (a.displayLabel, a.displayLabelW) for a in _abbreviation_defs()}


def abbreviation_mols() -> dict[str, Chem.Mol]:
    """label -> the group's molecule with one dummy atom at the attachment point."""
    global _ABBREVIATIONS
    if _ABBREVIATIONS is None:
        # Re-parsed from SMILES: the definitions carry query features and frozen H counts ([OH]).
        _ABBREVIATIONS = {a.label: Chem.MolFromSmiles(Chem.MolToSmiles(a.mol)) for a in _abbreviation_defs()}
    return _ABBREVIATIONS


def _stereo_atoms(mol: Chem.Mol) -> set[int]:
    atoms = {a.GetIdx() for a in mol.GetAtoms() if a.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED}
    for b in mol.GetBonds():
        if b.GetStereo() != Chem.BondStereo.STEREONONE:
            atoms.update((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))
    return atoms


def condense(mol: Chem.Mol, max_coverage: float = 0.4) -> tuple[Chem.Mol, dict[int, str]]:
    """Replace common groups by labels, never a group that holds a stereo atom (its label would hide it)."""
    labelled = rdAbbreviations.LabelMolAbbreviations(mol, _abbreviation_defs(), max_coverage)
    stereo = _stereo_atoms(mol)
    keep = [sg for sg in Chem.GetMolSubstanceGroups(labelled) if not stereo.intersection(sg.GetAtoms())]
    if not keep:
        return mol, {}
    Chem.ClearMolSubstanceGroups(labelled)
    for sg in keep:
        Chem.AddMolSubstanceGroup(labelled, sg)
    condensed = rdAbbreviations.CondenseAbbreviationSubstanceGroups(labelled)
    labels = {a.GetIdx(): a.GetProp("atomLabel") for a in condensed.GetAtoms()
              if a.GetAtomicNum() == 0 and a.HasProp("atomLabel")}
    shown = _display_labels()
    for idx, label in labels.items():
        atom = condensed.GetAtomWithIdx(idx)
        atom.SetNoImplicit(True)  # the label stands for whole atoms: AddHs must not hang hydrogens on it
        atom.SetNumExplicitHs(0)
        # How RDKit writes it: CO2Et pointing right, EtO2C pointing left (bond at the attaching atom).
        atom.SetProp("_displayLabel", shown[label][0])
        atom.SetProp("_displayLabelW", shown[label][1])
    condensed.UpdatePropertyCache(strict=False)
    return condensed, labels


# -- layout -------------------------------------------------------------------------

def add_hydrogens(mol: Chem.Mol, mode: str) -> Chem.Mol:
    """A copy with the hydrogens a style draws: ``all``, on stereocentres (``stereo``) or none."""
    if mode == "all":
        return Chem.AddHs(mol)
    if mode == "stereo":
        chiral = [a.GetIdx() for a in mol.GetAtoms()
                  if a.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED and a.GetTotalNumHs() > 0]
        if chiral:
            return Chem.AddHs(mol, onlyOnAtoms=chiral)
    return Chem.Mol(mol)


def layout(mol: Chem.Mol, style: DrawStyle) -> tuple[Chem.Mol, dict[int, str]]:
    """The molecule as it will be drawn: abbreviations, hydrogens, 2D coordinates, rotation."""
    labels: dict[int, str] = {}
    if style.abbreviations:
        mol, labels = condense(mol)
    mol = add_hydrogens(mol, style.hydrogens)
    if style.coordgen:
        rdCoordGen.AddCoords(mol)
    else:
        rdDepictor.Compute2DCoords(mol, clearConfs=True)
    if style.rotate:
        # All atoms at once (the same products and differences as a per-atom loop, so the same doubles).
        conf = mol.GetConformer()
        c, s = math.cos(math.radians(style.rotate)), math.sin(math.radians(style.rotate))
        xyz = conf.GetPositions()
        x, y = xyz[:, 0], xyz[:, 1]
        conf.SetPositions(np.stack([c * x - s * y, s * x + c * y, np.zeros_like(x)], axis=1))
    return mol, labels


def read_back(mol: Chem.Mol, labels: dict[int, str]) -> str:
    """Canonical SMILES of what a reader of the drawing sees.

    Stereo is perceived again from the 2D coordinates and wedges alone (a mol block round
    trip), and every abbreviation label is expanded back into its atoms with molzip.
    """
    with rdBase.BlockLogs():  # "ambiguous stereochemistry" warnings: the comparison below reports them
        drawn = Chem.MolFromMolBlock(Chem.MolToMolBlock(mol), removeHs=False)
    if drawn is None:
        raise MoleculeError("engine_error", "drawn molecule does not survive a mol block round trip")
    if labels:
        groups = abbreviation_mols()
        parts = Chem.RWMol(drawn)
        for k, (idx, label) in enumerate(sorted(labels.items()), start=1):
            parts.GetAtomWithIdx(idx).SetAtomMapNum(k)
            group = Chem.RWMol(groups[label])
            for atom in group.GetAtoms():
                if atom.GetAtomicNum() == 0:
                    atom.SetAtomMapNum(k)
            parts.InsertMol(group)
        drawn = Chem.molzip(parts.GetMol())
        Chem.SanitizeMol(drawn)
    return canonical(_without_hs(drawn))


# -- drawing ------------------------------------------------------------------------

def _aromatic_rings(mol: Chem.Mol) -> list[tuple[int, ...]] | None:
    """Rings to mark with a circle, or None when some aromatic bond lies in no fully aromatic ring."""
    rings, covered = [], set()
    for ring in Chem.GetSymmSSSR(mol):
        atoms = tuple(ring)
        bonds = [mol.GetBondBetweenAtoms(a, atoms[(i + 1) % len(atoms)]) for i, a in enumerate(atoms)]
        if all(b is not None and b.GetIsAromatic() for b in bonds):
            rings.append(atoms)
            covered.update(b.GetIdx() for b in bonds)
    if any(b.GetIsAromatic() and b.GetIdx() not in covered for b in mol.GetBonds()):
        return None
    return rings


def _single_bond_skeleton(mol: Chem.Mol) -> Chem.Mol:
    """Aromatic bonds drawn as single lines (the circles carry the aromaticity); H counts frozen."""
    rw = Chem.RWMol(mol)
    for atom in rw.GetAtoms():
        hs = atom.GetTotalNumHs()
        atom.SetNoImplicit(True)
        atom.SetNumExplicitHs(hs)
        atom.SetIsAromatic(False)
    for bond in rw.GetBonds():
        if bond.GetIsAromatic():
            bond.SetBondType(Chem.BondType.SINGLE)
            bond.SetIsAromatic(False)
    out = rw.GetMol()
    out.UpdatePropertyCache(strict=False)
    return out


def _options(drawer: rdMolDraw2D.MolDraw2D, style: DrawStyle) -> None:
    o = drawer.drawOptions()
    o.includeMetadata = False  # no molecule description in the SVG: only what is drawn
    o.clearBackground = True  # an opaque white page: the PNG drops alpha (rasterize checks it)
    o.setBackgroundColour((1.0, 1.0, 1.0, 1.0))
    o.addAtomIndices = False
    o.prepareMolsBeforeDrawing = False  # done by us, so read_back sees the same wedges
    font = FONTS[style.font]
    if font and not Path(font).is_file():  # never let FreeType fall back silently: other glyphs, other bytes
        raise FileNotFoundError(f"font {font} is missing (fonts-dejavu-core in docker/apt-packages.txt)")
    o.fontFile = font
    o.baseFontSize = style.font_scale
    o.maxFontSize = max(6, int(style.max_font_px))
    o.minFontSize = max(6, int(style.size / 96))
    o.bondLineWidth = style.bond_px
    o.scaleBondWidth = False
    o.fixedBondLength = style.bond_length_px
    o.padding = style.padding
    o.multipleBondOffset = style.multiple_bond_offset
    o.explicitMethyl = style.explicit_methyl
    o.addStereoAnnotation = False  # CIP labels of a condensed/re-bonded drawing molecule could be wrong
    o.dummiesAreAttachments = False
    o.singleColourWedgeBonds = style.plain_wedges
    {"bw": o.useBWAtomPalette, "default": o.useDefaultAtomPalette,
     "cdk": o.useCDKAtomPalette, "avalon": o.useAvalonAtomPalette}[style.palette]()


def prepare(mol: Chem.Mol, style: DrawStyle) -> Drawing:
    """Everything but the pixels: cheap, so the caller can check it (read_back) before paying for them."""
    laid, labels = layout(mol, style)
    aromatic = style.aromatic
    rings = _aromatic_rings(laid) if aromatic == "circles" else None
    if aromatic == "circles" and not rings:
        aromatic = "kekule"  # no aromatic ring, or one a circle cannot show faithfully
    prepared = rdMolDraw2D.PrepareMolForDrawing(laid, kekulize=aromatic == "kekule", addChiralHs=False,
                                                 wedgeBonds=True)
    return Drawing(prepared, labels, aromatic, rings or [])


def svg(drawing: Drawing, style: DrawStyle) -> str:
    """RDKit's SVG of a prepared molecule (~1.5 ms at 1024²; labels are FreeType glyph outlines)."""
    circles = drawing.aromatic == "circles"
    shown = _single_bond_skeleton(drawing.mol) if circles else drawing.mol
    drawer = rdMolDraw2D.MolDraw2DSVG(style.size, style.size)
    _options(drawer, style)
    drawer.DrawMolecule(shown)
    if circles:
        _draw_circles(drawer, drawing.mol, drawing.rings, style)
    drawer.FinishDrawing()
    return drawer.GetDrawingText()


def render(drawing: Drawing, style: DrawStyle) -> Drawing:
    """Draw a prepared molecule: RDKit SVG, librsvg raster, our PNG writer (grey when the picture is).

    Replaces MolDraw2DCairo, whose PNG writer alone took ~25 of ~29 ms per 1024² image and cannot
    be tuned from Python; this path takes ~12-20 ms for the same drawing and writes smaller files.
    """
    return replace(drawing, png=encode_opaque(rasterize(svg(drawing, style))))


def draw(mol: Chem.Mol, style: DrawStyle) -> Drawing:
    return render(prepare(mol, style), style)


def _draw_circles(drawer: rdMolDraw2D.MolDraw2D, mol: Chem.Mol, rings: list[tuple[int, ...]],
                  style: DrawStyle) -> None:
    conf = mol.GetConformer()
    drawer.SetColour((0.0, 0.0, 0.0))
    drawer.SetLineWidth(max(1, int(round(style.bond_px))))
    drawer.SetFillPolys(False)
    for ring in rings:
        pts = [conf.GetAtomPosition(i) for i in ring]
        cx, cy = sum(p.x for p in pts) / len(pts), sum(p.y for p in pts) / len(pts)
        inner = min(math.hypot(p.x - cx, p.y - cy) for p in pts) * math.cos(math.pi / len(ring))
        drawer.DrawArc(Point2D(cx, cy), 0.6 * inner, 0.0, 360.0)


def png_size(data: bytes) -> tuple[int, int]:
    return struct.unpack(">II", data[16:24])


def png_crc_ok(data: bytes) -> bool:
    """Every chunk's CRC is right (a cheap integrity check for tests)."""
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        body = data[pos + 4:pos + 8 + length]
        if struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])[0] != zlib.crc32(body):
            return False
        pos += 12 + length
    return True
