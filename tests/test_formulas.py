"""formulas engine: true labels on real im2latex formulas, .tex extraction, rejections, determinism."""

from __future__ import annotations

from helpers import SHARED_DATA, build_dataset, errors, folder_digest, image, samples

from engines.base import PROMPT_FORMAT
from engines.formulas import formula_job, normalise, parse_target
from renderers.image import decode
from renderers.tex import TexRenderer

IM2LATEX = SHARED_DATA / "formulas" / "im2latex100k_test_val.txt"


def _rerender(records, out):
    """Every target, rendered alone from the target text and meta, gives the sample's pixels."""
    tex = TexRenderer()
    try:
        jobs = []
        for r in records:
            formula, inline = parse_target(r["target"])
            m = r["meta"]
            jobs.append(formula_job(formula, inline, m["font"], m["size"], m["dpi"], m["margin"], None)[0])
        tex.limits.batch_size = 7  # other batch boundaries than the build's
        again = tex.render(jobs)
    finally:
        tex.close()
    for r, img in zip(records, again, strict=True):
        assert decode(img.data).tobytes() == image(out, r).tobytes(), r["target"]


def test_real_formulas_labels_are_true(tmp_path):
    lines = IM2LATEX.read_text(encoding="utf-8").splitlines()[::97][:200]
    src = tmp_path / "im2latex.txt"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "ds"
    build_dataset("formulas", out, n=200, inputs=[str(src)], shard_size=100)
    recs, errs = samples(out), errors(out)
    assert len(recs) + len(errs) == 200 and len(recs) >= 170
    assert {r["prompt"] for r in recs} == {PROMPT_FORMAT} and {r["task"] for r in recs} == {"formula"}
    wanted = {normalise(x) for x in lines}
    for r in recs:
        formula, _ = parse_target(r["target"])
        assert formula in wanted  # the input line, normalised (whitespace, \\label)
    assert {e["reason"] for e in errs} <= {"tex_error", "unsafe_input", "overfull"}
    assert all(e["detail"] for e in errs)
    assert any(e["detail"].startswith("!") for e in errs if e["reason"] == "tex_error") or not errs
    assert len({r["meta"]["font"] for r in recs}) >= 4 and len({r["meta"]["mode"] for r in recs}) == 2
    _rerender(recs[:120], out)


def test_default_set_and_determinism(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    build_dataset("formulas", a, n=40, shard_size=15)
    build_dataset("formulas", b, n=40, shard_size=15)
    assert folder_digest(a) == folder_digest(b)
    assert len(samples(a)) == 40
    # Another shard size gives the same samples (batches differ, pixels must not).
    c = tmp_path / "c"
    build_dataset("formulas", c, n=40, shard_size=40)
    assert [(r["target"], r["sha256"] if "sha256" in r else None) for r in samples(a)] == \
        [(r["target"], r["sha256"] if "sha256" in r else None) for r in samples(c)]  # fmt: skip
    for ra, rc in zip(samples(a), samples(c), strict=True):
        assert image(a, ra).tobytes() == image(c, rc).tobytes()


def test_tex_files_and_folders(tmp_path):
    d = tmp_path / "paper"
    d.mkdir()
    (d / "main.tex").write_text(
        "\\documentclass{article}\n\\begin{document}\nLet $x \\in \\mathbb{R}$ be given.\n"
        "\\begin{align}\na &= b + c \\label{eq:1}\\\\\nd &= e\n\\end{align}\n"
        "\\begin{gather*} f = g \\end{gather*}\n\\[ \\undefinedmacro{y} \\]\n\\end{document}\n"
    )
    out = tmp_path / "ds"
    build_dataset("formulas", out, n=4, inputs=[str(d)])
    targets = sorted(r["target"] for r in samples(out))
    assert targets == sorted([
        "\\( x \\in \\mathbb{R} \\)",
        "\\[ \\begin{aligned} a &= b + c \\\\ d &= e \\end{aligned} \\]",
        "\\[ \\begin{gathered} f = g \\end{gathered} \\]",
    ])  # fmt: skip
    (err,) = errors(out)
    assert err["reason"] == "tex_error" and "Undefined control sequence" in err["detail"]
    assert err["source"].endswith("main.tex:9")


def test_math_extracted_from_real_tex_files(tmp_path):
    """The TikZ sources in the shared data are real .tex files with inline math in their labels."""
    out = tmp_path / "ds"
    build_dataset("formulas", out, n=60, inputs=[str(SHARED_DATA / "tikz")], shard_size=60)
    recs, errs = samples(out), errors(out)
    assert len(recs) + len(errs) == 60 and len(recs) >= 50
    assert all(r["target"].startswith(("\\( ", "\\[ ")) and ".tex:" in r["source"] for r in recs)
    assert all(e["detail"] and ".tex:" in e["source"] for e in errs)
    _rerender(recs[:20], out)
