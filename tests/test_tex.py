"""The batched TeX renderer: batch independence, failure isolation, time-outs, lock-down."""

from __future__ import annotations

import os

import pytest
from helpers import build_dataset, errors, samples

from engines.base import EncodedImage, Rejection
from renderers.tex import Preamble, TexJob, TexLimits, TexRenderer
from renderers.tex_extract import extract_math, extract_tabulars
from renderers.tex_safety import check_snippet

P = Preamble(fixed="\\usepackage{amsmath,amssymb}", tail="\\usepackage{mathptmx}")
SECRETS = ("root:x:0:0", "root:", "/bin/bash", os.uname().nodename)


@pytest.fixture(scope="module")
def tex():
    r = TexRenderer(TexLimits(timeout_base_s=3, timeout_per_snippet_s=0.05))
    yield r
    r.close()


def test_batch_isolates_errors_loops_and_empty_pages(tex):
    bodies = ["$\\displaystyle \\frac { d } { d s }$", "$\\foo x$", "$x^2$", "\\def\\a{\\a}\\a", "$y$", "", "$\\frac{a}{b}$"]
    res = tex.render([TexJob(b, P, source=f"s{i}") for i, b in enumerate(bodies)])
    kinds = [r.reason if isinstance(r, Rejection) else "ok" for r in res]
    assert kinds == ["ok", "tex_error", "ok", "tex_timeout", "ok", "empty_render", "ok"]
    assert "Undefined control sequence" in res[1].detail and res[1].source == "s1"
    # A snippet renders the same pixels in a batch as alone (so re-runs and shard sizes are safe).
    for body, r in zip(bodies, res, strict=True):
        if isinstance(r, EncodedImage):
            assert tex.render([TexJob(body, P)])[0].data == r.data


def test_overfull_is_caught():
    r = TexRenderer(TexLimits(max_width_pt=100))
    try:
        res = r.render([TexJob("$" + " + ".join(f"x_{{{i}}}" for i in range(40)) + "$", P), TexJob("$x$", P)])
    finally:
        r.close()
    assert isinstance(res[0], Rejection) and res[0].reason == "overfull"
    assert isinstance(res[1], EncodedImage)


@pytest.mark.parametrize(
    "body",
    [
        "\\write18{cat /etc/passwd > leak.txt}",
        "\\immediate\\write18{id}",
        "$\\input{/etc/passwd}$",
        "\\input /etc/passwd",
        "\\include{../../etc/passwd}",
        "\\newread\\f\\openin\\f=/etc/hostname \\read\\f to\\x \\x",
        "\\immediate\\openout5=../x.tex \\immediate\\write5{hi}",
        "\\csname input\\endcsname{/etc/passwd}",
        "^^5cinput{/etc/passwd}",
        "\\catcode`\\Q=0 Qinput{/etc/passwd}",
        "\\usepackage{foo}",
        "\\makeatletter\\@@input /etc/passwd",
        "\\end{snip}\\end{document}",
        "{ unbalanced",
        "$x",
    ],
)
def test_unsafe_snippets_are_rejected(tex, body):
    assert check_snippet(body) is not None
    res = tex.render([TexJob(body, P, source="evil")])[0]
    assert isinstance(res, Rejection) and res.reason == "unsafe_input"
    assert not any(s in res.detail for s in SECRETS)


def test_tex_itself_is_paranoid_without_the_precheck(tex):
    """Defence in depth: even if the pre-check missed it, kpathsea refuses files outside the folder."""
    out = tex._run([TexJob("\\input{/etc/passwd}", P)])
    text = open(os.path.join(tex.workdir, "batch.out.txt")).read()
    assert "root:x:0:0" not in text and out.pdf is None
    assert "openin_any = p" in text or "not found" in text
    assert not any(n.endswith(".txt") and n != "batch.out.txt" for n in os.listdir(tex.workdir))


def test_evil_inputs_leave_no_trace_in_a_dataset(tmp_path):
    src = tmp_path / "evil.tex"
    src.write_text(
        "\\begin{document}\n$\\input{/etc/passwd}$ and $x^2$\n\\[\\immediate\\write18{cat /etc/passwd}\\]\n"
        "\\begin{equation}\\openin5=/etc/hostname a\\end{equation}\n$\\csname input\\endcsname{/etc/passwd}$\n"
        "\\end{document}\n"
    )
    out = tmp_path / "ds"
    build_dataset("formulas", out, n=5, inputs=[str(src)])
    blob = b"".join(p.read_bytes() for p in out.iterdir() if p.is_file())
    for s in SECRETS:
        assert s.encode() not in blob
    reasons = sorted(e["reason"] for e in errors(out))
    assert reasons == ["unsafe_input"] * 4
    assert [r["target"] for r in samples(out)] == ["\\( x^2 \\)"]
    assert not (tmp_path / "leak.txt").exists() and not (tmp_path / "x.tex").exists()


def test_cjk_goes_through_xelatex(tex):
    pre = Preamble(fixed="\\usepackage{amsmath}", tail="\\usepackage{xeCJK}", xetex=True)
    res = tex.render([TexJob("$\\displaystyle S = \\text{面积}$", pre), TexJob("中文表格", pre)])
    assert all(isinstance(r, EncodedImage) and r.width > 40 for r in res)


def test_extraction_of_math_and_tables():
    src = (
        "\\documentclass{article}\\begin{document}\nText $a+b$ and \\(c\\), price \\$5.\n"
        "\\[ x = 1 \\label{e} \\]\n$$y$$\n\\begin{align*} a &= b \\\\ c &= d \\nonumber \\end{align*}\n"
        "% $hidden$\n\\begin{equation} E = mc^2 \\end{equation}\n"
        "\\begin{tabularx}{\\linewidth}{lX} a & {b {c}} \\\\ \\end{tabularx}\n\\end{document}\n"
    )
    found = [(f.tex, f.kind, f.line) for f in extract_math(src)]
    assert found == [("a+b", "inline", 2), ("c", "inline", 2), ("x = 1", "display", 3), ("y", "display", 4),
                     ("a &= b \\\\ c &= d", "aligned", 5), ("E = mc^2", "display", 7)]  # fmt: skip
    tabs = extract_tabulars(src)
    assert [t.tex for t in tabs] == ["\\begin{tabular}{ll}\na & {b {c}} \\\\\n\\end{tabular}"]


def test_a_batch_of_200_gives_the_same_pixels_as_single_runs(tex):
    from engines.formulas import Formulas, plan_formulas

    eng = Formulas(Formulas.resolve_params({"fonts": "times"}), 0, plan_formulas([]))
    jobs = [p[0] for p in (eng.prepare(i) for i in range(200)) if isinstance(p, tuple)]
    assert len(jobs) == 200
    runs = tex.runs
    batch = tex.render(jobs)
    assert tex.runs - runs == 1  # one TeX run for all 200 (the default set compiles cleanly)
    for i in range(0, 200, 25):
        assert tex.render([jobs[i]])[0].data == batch[i].data
