"""Sheet music: single-system two-staff piano excerpts from **kern, engraved with Verovio.

Each sample cuts a run of whole measures out of a piece, writes it as a stand-alone
**kern file (clef, key and meter at the cut carried in), engraves that exact file
with Verovio and checks the engraving is one system on one page, shrinking the run
until it is. The target is the engraved file itself (GrandStaff style), so the label
is what the image shows.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import fsspec

from engines.base import PROMPT_FORMAT, Engine, Param, Rejection, Result, Sample
from renderers.kern import FORMS, KernError, KernScore, decode_bytes, excerpt, parse_kern, to_form
from renderers.kern_gen import generate_score
from renderers.verovio_render import MUSIC_FONTS, EngraveError, Engraver, estimate_fit

KERN_SUFFIXES = (".krn", ".kern")
BUILTIN = "builtin"
_CACHE_SIZE = 256  # parsed pieces kept per worker (~0.7 MB each for a full movement)


def _list_inputs(inputs: list[str]) -> list[str]:
    """Every **kern file under the given folders/files/fsspec URLs, in a stable order."""
    found: list[str] = []
    for item in inputs:
        if "://" in item:
            fs, root = fsspec.core.url_to_fs(item)
            protocol = item.split("://", 1)[0]
            if fs.isdir(root):
                names = sorted(p for p in fs.find(root) if p.lower().endswith(KERN_SUFFIXES))
                found += [f"{protocol}://{p}" if not p.startswith(f"{protocol}://") else p for p in names]
            elif fs.exists(root):
                found.append(item)
            else:
                raise OSError(f"no such input: {item}")
            continue
        path = Path(item)
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in KERN_SUFFIXES and p.is_file())
        elif path.is_file():
            found.append(str(path))
        else:
            raise OSError(f"no such input: {item}")
    return found


class Music(Engine):
    name = "music"
    # 2: librsvg raster, width-estimated first try; 3: the generator draws its uniforms in batches
    # (same music style, other pieces per seed); 4: only the excerpt's measures are generated
    version = "4"
    description = "Single-system two-staff piano scores engraved with Verovio from **kern, **kern targets"
    inputs = "optional"
    params = (
        Param("target_form", "kern", "target encoding: kern, or GrandStaff's ekern/bekern", str, choices=FORMS),
        Param("min_measures", 1, "fewest measures tried first", int, minimum=1),
        Param("max_measures", 6, "most measures tried first (shrunk until one system)", int, minimum=1),
        Param("min_page_width", 1500, "narrowest Verovio page width (layout units)", int, minimum=500),
        Param("max_page_width", 3000, "widest Verovio page width (layout units)", int, minimum=500),
        Param("gen_measures", 12, "measures in each generated piece (built-in input)", int, minimum=1),
        Param("timeout", 30.0, "seconds before a Verovio load counts as hung", float, minimum=1),
    )

    @classmethod
    def plan(cls, inputs: list[str], params: dict[str, Any]) -> list[Any]:
        if params["min_measures"] > params["max_measures"]:
            raise ValueError("min_measures must not exceed max_measures")
        if params["min_page_width"] > params["max_page_width"]:
            raise ValueError("min_page_width must not exceed max_page_width")
        if not inputs:
            return [BUILTIN]
        # Files are only listed here: parsing (and rejecting non-two-staff files) happens on workers.
        return _list_inputs(inputs)

    def __init__(self, params: dict[str, Any], seed: int, units: Any = ()) -> None:
        super().__init__(params, seed, units)
        self._engraver: Engraver | None = None
        # Parsed files with their legal starts (cut once per file: a movement has ~100 measures to check).
        self._scores: OrderedDict[str, tuple[KernScore, list[int]] | KernError] = OrderedDict()

    # -- inputs ------------------------------------------------------------------
    def _score(self, path: str) -> tuple[KernScore, list[int]]:
        """Parse a file once per worker, with its legal starts; a bad file is remembered as its error."""
        cached = self._scores.get(path)
        if cached is None:
            try:
                with fsspec.open(path, "rb") as fh:
                    score = parse_kern(decode_bytes(fh.read()))
                longest = self.p["max_measures"]
                cached = score, [c for c in score.cut_points() if self._legal_count(score, c, longest) >= 1]
            except KernError as exc:
                cached = exc
            except OSError as exc:
                cached = KernError("unreadable", str(exc))
            self._scores[path] = cached
            while len(self._scores) > _CACHE_SIZE:
                self._scores.popitem(last=False)
        else:
            self._scores.move_to_end(path)
        if isinstance(cached, KernError):
            raise cached
        return cached

    def engraver(self) -> Engraver:
        if self._engraver is None:
            self._engraver = Engraver(timeout=self.p["timeout"])
        return self._engraver

    def engraving_options(self, rng: Any) -> dict[str, Any]:
        """Verovio options varied per sample; floats rounded so they reach Verovio identically."""
        return {
            "font": str(MUSIC_FONTS[int(rng.integers(len(MUSIC_FONTS)))]),
            "pageWidth": int(rng.integers(self.p["min_page_width"], self.p["max_page_width"] + 1)),
            "scale": int(rng.integers(40, 71)),
            "spacingLinear": round(float(rng.uniform(0.15, 0.35)), 3),
            "spacingNonLinear": round(float(rng.uniform(0.45, 0.7)), 3),
            "spacingStaff": int(rng.integers(6, 17)),
            "staffLineWidth": round(float(rng.uniform(0.1, 0.25)), 3),
            "barLineWidth": round(float(rng.uniform(0.2, 0.5)), 3),
            "pageMarginLeft": int(rng.integers(20, 81)),
            "pageMarginRight": int(rng.integers(20, 81)),
            "pageMarginTop": int(rng.integers(20, 81)),
            "pageMarginBottom": int(rng.integers(20, 81)),
        }

    # -- samples -----------------------------------------------------------------
    def sample(self, position: int) -> Result:
        rng = self.rng(position)
        unit, _epoch = self.unit(position)
        if unit == BUILTIN:
            options, start, count = self._draw_cut(rng, range(self.p["gen_measures"]))
            score = self.generated(position, start, count)
            return self._engrave_cut(score, 0, count, options, f"generated#{position}", numbered_from=start)
        try:
            score, cuts = self._score(unit)
        except KernError as exc:
            return Rejection(exc.reason, exc.detail, source=unit)
        if not cuts:
            return Rejection("no_cut_point", "no run of measures starts and ends outside a spine split", source=unit)
        options, start, count = self._draw_cut(rng, cuts)
        return self._engrave_cut(score, start, count, options, unit)

    def generated(self, position: int, start: int, count: int) -> KernScore:
        """The built-in input of a position: only the excerpt's own measures of a generated piece.

        Every generated measure is a legal cut (tested), so the cut is drawn first and just its
        measures are made, opening with their own clef, key and meter (engine version 4; version 3
        generated the piece from its start and cut it, and ~60 % of what it made was thrown away).
        """
        return generate_score(self.rng(position, 1), self.p["gen_measures"], first=start, stop=start + count)

    def _draw_cut(self, rng: Any, cuts: Sequence[int]) -> tuple[dict[str, Any], int, int]:
        """Engraving options, the first measure and the measure count drawn for one sample."""
        options = self.engraving_options(rng)
        start = cuts[int(rng.integers(len(cuts)))]
        return options, start, int(rng.integers(self.p["min_measures"], self.p["max_measures"] + 1))

    def _engrave_cut(self, score: KernScore, start: int, count: int, options: dict[str, Any], source: str,
                     numbered_from: int = 0) -> Result:
        """Engrave measures ``start``.. of ``score``, shrinking the run until it is one system.

        ``numbered_from`` is the number of the score's first measure in its piece (labels only).
        """
        tried: list[str] = []
        first = numbered_from + start
        # First try: no more measures than the width estimate says fit, so that the extra engraving
        # of an overflowing try (~1 in 6 samples before; 1 in 20-30 now, measured) is rarely paid.
        count = self._legal_count(score, start, count)
        kern, written = "", 0  # the excerpt last written and its measure count (reused when unchanged)
        if count > 1:
            kern, written = excerpt(score, start, count), count
            count = min(count, estimate_fit(kern, options))
        while True:
            count = self._legal_count(score, start, count)
            if count < 1:
                detail = (f"measures from {first + 1} never fit one system at pageWidth {options['pageWidth']} "
                          "(or end inside a spine split)")
                return Rejection("no_fit", "; ".join([detail, *tried]), source=source)
            if count != written:
                kern, written = excerpt(score, start, count), count
            try:
                # The child rasterises and encodes a one-system page itself (renderers/verovio_child.py).
                engraving = self.engraver().engrave(kern, options, png=True)
            except EngraveError as exc:
                return Rejection(exc.reason, exc.detail[:2000], source=f"{source}#measures={first + 1}-{first + count}")
            if engraving.png is not None:  # one system on one page
                break
            tried.append(f"{count} measures -> {engraving.systems} systems")
            count = min(count - 1, engraving.first_system_measures)
        return Sample(
            task="music",
            prompt=PROMPT_FORMAT,
            target=to_form(kern, self.p["target_form"]),
            images=[engraving.png],
            source=f"{source}#measures={first + 1}-{first + count}",
            # The full Verovio options, so anyone can re-engrave the target and get these pixels.
            meta={"measures": count, "form": self.p["target_form"], "verovio": options},
        )

    @staticmethod
    def _legal_count(score: KernScore, start: int, count: int) -> int:
        """The largest count <= ``count`` whose last measure ends with no spine split open."""
        count = min(count, len(score.measures) - start)
        while count >= 1 and not score.measures[start + count - 1].simple_end:
            count -= 1
        return count

    def close(self) -> None:
        if self._engraver is not None:
            self._engraver.close()
            self._engraver = None
