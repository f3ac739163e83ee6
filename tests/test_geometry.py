"""geometry engine: the TikZ target re-compiles alone to the sample's pixels; many seeds; determinism."""

from __future__ import annotations

import numpy as np
from helpers import build_dataset, errors, folder_digest, image, samples

from engines.base import PROMPT_FORMAT, Rejection
from engines.geometry import geometry_job, tikz_figure
from renderers.image import decode
from renderers.tex import TexRenderer


def test_targets_recompile_to_the_same_picture(tmp_path):
    out = tmp_path / "ds"
    build_dataset("geometry", out, n=40, seed=7, shard_size=20)
    recs = samples(out)
    assert errors(out) == [] and len(recs) == 40
    assert {r["prompt"] for r in recs} == {PROMPT_FORMAT}
    tex = TexRenderer()
    try:
        # Each target compiled on its own (batch of one), as a user would.
        for r in recs[:12]:
            job = geometry_job(r["target"], r["meta"]["dpi"], r["meta"]["margin"], None)[0]
            (img,) = tex.render([job])
            assert decode(img.data).tobytes() == image(out, r).tobytes()
    finally:
        tex.close()
    text = "\n".join(r["target"] for r in recs)
    for feature in ("circle", "rectangle", "-- cycle", "arc (", "plot (", "node", "dashed", "->"):
        assert feature in text, feature


def test_many_seeds_make_valid_varied_figures():
    targets = [tikz_figure(np.random.default_rng(s)) for s in range(300)]
    assert len(set(targets)) == 300
    for t in targets:
        assert t.startswith("\\begin{tikzpicture}") and t.endswith("\\end{tikzpicture}")
        assert t.count("{") == t.count("}")
    tex = TexRenderer()
    try:  # every one of 120 seeds compiles, has ink and stays within the size limits
        images = tex.render([geometry_job(t, 72, 4, None)[0] for t in targets[:120]])
    finally:
        tex.close()
    assert all(not isinstance(i, Rejection) for i in images), [i for i in images if isinstance(i, Rejection)][:1]


def test_determinism(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_dataset("geometry", a, n=10, seed=3)
    build_dataset("geometry", b, n=10, seed=3)
    assert folder_digest(a) == folder_digest(b)
