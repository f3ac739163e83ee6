"""tables engine: real tab2latex tables, labels re-render to the same pixels, styles, determinism."""

from __future__ import annotations

import json

import numpy as np
from helpers import SHARED_DATA, build_dataset, errors, folder_digest, image, samples

from engines.base import PROMPT_FORMAT
from engines.tables import DEFAULT_SET, table_job
from renderers.image import decode
from renderers.tex import TexRenderer

TAB2LATEX = SHARED_DATA / "tables" / "tab2latex_test.jsonl"


def test_real_tables_labels_are_true(tmp_path):
    rows = TAB2LATEX.read_text(encoding="utf-8").splitlines()[3::83][:60]
    src = tmp_path / "t.jsonl"
    src.write_text("\n".join(rows) + "\n")
    out = tmp_path / "ds"
    build_dataset("tables", out, n=60, inputs=[str(src)], shard_size=30)
    recs, errs = samples(out), errors(out)
    assert len(recs) + len(errs) == 60 and len(recs) >= 50
    assert all(e["detail"] for e in errs)
    assert {r["prompt"] for r in recs} == {PROMPT_FORMAT} and {r["task"] for r in recs} == {"table"}
    for r in recs:
        assert r["target"].startswith("\\begin{tabular}{") and r["target"].endswith("\\end{tabular}")
    assert any("\\multicolumn" in r["target"] for r in recs) and any("\\toprule" in r["target"] for r in recs)
    assert len({r["meta"]["font"] for r in recs}) >= 3
    tex = TexRenderer()
    try:
        jobs = [table_job(r["target"], r["meta"], r["meta"]["dpi"], r["meta"]["margin"], None)[0] for r in recs[:30]]
        again = tex.render(jobs[::-1])[::-1]  # another batch order than the build's
    finally:
        tex.close()
    for r, img in zip(recs[:30], again, strict=True):
        assert decode(img.data).tobytes() == image(out, r).tobytes()


def test_tex_file_lists_colours_and_errors(tmp_path):
    src = tmp_path / "tables.tex"
    src.write_text(
        "\\begin{table}\\begin{tabular*}{\\textwidth}{@{\\extracolsep{\\fill}}lcr}\n\\toprule\n"
        "\\rowcolor{gray!20} A & \\multicolumn{2}{c}{B} \\\\ % a comment\n\\midrule\n"
        "\\multirow{2}{*}{x} & \\cellcolor{red!25} 1 & \\textcolor{blue}{2} \\\\\n & 3 & 4 \\\\\n\\bottomrule\n"
        "\\end{tabular*}\\end{table}\n"
        "\\begin{tabular}{|l|l|}\\hline \\cmark & 1 \\\\ \\hline\\end{tabular}\n"
    )
    out = tmp_path / "ds"
    build_dataset("tables", out, n=2, inputs=[str(src)])
    (rec,) = samples(out)
    assert rec["target"] == (
        "\\begin{tabular}{lcr}\n\\toprule\n\\rowcolor{gray!20} A & \\multicolumn{2}{c}{B} \\\\\n\\midrule\n"
        "\\multirow{2}{*}{x} & \\cellcolor{red!25} 1 & \\textcolor{blue}{2} \\\\\n& 3 & 4 \\\\\n\\bottomrule\n"
        "\\end{tabular}"
    )
    px = np.asarray(image(out, rec).convert("RGB")).reshape(-1, 3).astype(int)
    assert ((px[:, 0] > 200) & (px[:, 1] < 200)).any()  # the red cell is there
    (err,) = errors(out)
    assert err["reason"] == "tex_error" and "\\cmark" in err["detail"]


def test_default_set_and_determinism(tmp_path):
    data = json.loads(DEFAULT_SET.read_text(encoding="utf-8"))
    assert data["licence"] and data["source"] and len(data["tables"]) >= 100
    a, b = tmp_path / "a", tmp_path / "b"
    build_dataset("tables", a, n=12, shard_size=5)
    build_dataset("tables", b, n=12, shard_size=5)
    assert folder_digest(a) == folder_digest(b)
    assert len(samples(a)) == 12


def test_chinese_tables_use_xelatex(tmp_path):
    src = tmp_path / "zh.txt"
    src.write_text("\\begin{tabular}{lr}\\toprule 城市 & 人口 \\\\ \\midrule 北京 & 2189 \\\\ \\bottomrule\\end{tabular}\n")
    out = tmp_path / "ds"
    build_dataset("tables", out, n=1, inputs=[str(src)])
    (rec,) = samples(out)
    assert rec["meta"]["font"] == "noto-cjk" and "北京" in rec["target"]
    assert image(out, rec).width > 60
