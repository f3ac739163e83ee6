"""The charts engine (Matplotlib half): true labels, nothing clipped, CJK glyphs, determinism."""

from __future__ import annotations

import json
import logging
import warnings

import pytest
from helpers import build_dataset, folder_digest, image, samples

from engines.base import PROMPT_FORMAT
from engines.charts import MATPLOTLIB_KINDS, MAX_ATTEMPTS, Charts, load_words
from got_data.executor import BuildError
from renderers import matplotlib_charts as mc
from renderers.charts import SINGLE_SERIES_KINDS, onechart_target

MPL_ONLY = {"echarts_share": 0}


def _engine(**params: object) -> Charts:
    return Charts(Charts.resolve_params({**MPL_ONLY, **params}), seed=0)


def _drawn(engine: Charts, position: int):
    """The spec and figure the engine ships for ``position`` (same attempts, same order)."""
    for attempt in range(MAX_ATTEMPTS):
        renderer, spec, rng = engine.choose(position, attempt)
        assert renderer == "matplotlib"
        try:
            fig, _ = mc.draw_chart(spec, rng)
        except mc.LayoutError:
            continue
        return spec, fig
    pytest.fail(f"position {position}: no legible layout")


def _expected_strings(spec) -> tuple[list[str], list[str]]:
    """(value strings, names) a reader must find on the chart for the target to be true."""
    target = json.loads(onechart_target(spec))
    values = target["values"]
    if spec.kind in SINGLE_SERIES_KINDS:
        return list(values.values()), list(values.keys())
    names = (
        list(values.keys())
        if len(values) > 1 or spec.series[0].name not in (spec.y_title, spec.x_title)
        else []
    )
    cats = [c for series in values.values() for c in series]
    return [v for series in values.values() for v in series.values()], names + cats


@pytest.mark.parametrize("start", [0, 100])
def test_every_value_is_drawn_and_no_text_leaves_the_canvas(start: int) -> None:
    engine = _engine()
    kinds = set()
    for position in range(start, start + 100):
        spec, fig = _drawn(engine, position)
        kinds.add(spec.kind)
        renderer = fig.canvas.get_renderer()
        texts = mc.drawn_texts(fig, renderer)
        width, height = fig.bbox.width, fig.bbox.height
        assert (width, height) == (spec.width, spec.height)
        for t in texts:
            b = t.box
            assert b.x0 >= 0 and b.y0 >= 0 and b.x1 <= width and b.y1 <= height, (position, t.text, b)
        drawn = [t.text for t in texts]
        values, names = _expected_strings(spec)
        # Each value label is drawn once per occurrence in the target.
        for value in set(values):
            assert drawn.count(value) >= values.count(value), (position, spec.kind, value)
        for name in names:
            assert name in drawn, (position, spec.kind, name)
        for field in ("title", "x_title", "y_title"):
            if getattr(spec, field):
                assert getattr(spec, field) in drawn, (position, field)
        if spec.source:
            assert any(spec.source in t for t in drawn), position
        # Value labels never overlap any other text.
        value_boxes = [t for t in texts if t.text in set(values)]
        for a in value_boxes:
            for b in texts:
                if a.artist is b.artist:
                    continue
                ov_x = min(a.box.x1, b.box.x1) - max(a.box.x0, b.box.x0)
                ov_y = min(a.box.y1, b.box.y1) - max(a.box.y0, b.box.y0)
                assert ov_x <= 1 or ov_y <= 1, (position, a.text, b.text)
        fig.clear()
    assert len(kinds) >= 8, kinds


def test_spec_values_are_the_drawn_strings() -> None:
    engine = _engine()
    for position in range(300):
        _, spec, _ = engine.choose(position)
        assert spec.kind in MATPLOTLIB_KINDS
        for s in spec.series:
            assert len(s.labels) == len(spec.categories)
            for v, label in zip(s.values, s.labels, strict=True):
                assert float(label.replace(",", "").rstrip("%")) == pytest.approx(v, abs=1e-9)
        if spec.kind in SINGLE_SERIES_KINDS and spec.unit == "%":
            total = sum(spec.series[0].values)
            assert total == pytest.approx(100, abs=0.06)


def test_value_distributions_are_varied() -> None:
    engine = _engine()
    specs = [engine.choose(p)[1] for p in range(400)]
    labels = [label for spec in specs for s in spec.series for label in s.labels]
    maxima = [max(v for s in spec.series for v in s.values) for spec in specs]
    assert any(label.endswith("%") for label in labels)
    assert any("." in label for label in labels) and any(label.isdigit() for label in labels)
    assert any("," in label for label in labels)
    assert min(maxima) < 10 and max(maxima) > 1e5
    languages = [spec.language for spec in specs]
    assert 0.2 < languages.count("zh") / len(languages) < 0.4
    assert {spec.kind for spec in specs} == set(MATPLOTLIB_KINDS)


def test_word_lists_are_real_and_both_languages_load() -> None:
    for language in ("en", "zh"):
        words = load_words(language)
        assert len(words.groups) >= 10 and all(len(g.words) >= 4 for g in words.groups)
        assert len(words.metrics) >= 20 and len(words.series) >= 20
    assert "January" in [w for g in load_words("en").groups for w in g.words]
    assert "广东" in [w for g in load_words("zh").groups for w in g.words]


def test_chinese_text_uses_the_cjk_font_without_tofu(caplog: pytest.LogCaptureFixture) -> None:
    engine = _engine(zh_share=1.0)
    found = 0
    for position in range(12):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "Glyph ... missing from font" is a UserWarning
            with caplog.at_level(logging.WARNING, logger="matplotlib"):
                spec, fig = _drawn(engine, position)
        assert spec.language == "zh"
        assert not [r for r in caplog.records if "findfont" in r.getMessage() or "Glyph" in r.getMessage()]
        cjk_files = {path for path, _ in mc.CJK_FONT_FILES}
        for t in mc.drawn_texts(fig):
            if any("\u4e00" <= ch <= "\u9fff" for ch in t.text):
                found += 1
                path = mc.font_manager.findfont(t.artist.get_fontproperties(), fallback_to_default=False)
                # Noto Sans CJK's Simplified Chinese face is index 2 of its .ttc (JP is index 0).
                assert str(path) in cjk_files, (t.text, path)
                if "Noto" in str(path):
                    assert getattr(path, "face_index", 2) == 2, (t.text, path)
        fig.clear()
    assert found > 20


def test_cjk_glyphs_are_not_tofu() -> None:
    """The same Chinese string drawn with the CJK font differs glyph by glyph (tofu boxes are all alike)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    family = mc.cjk_families()[0]
    crops = []
    for ch in "销售额":
        fig = Figure(figsize=(1, 1), dpi=100)
        FigureCanvasAgg(fig)
        fig.text(0.5, 0.5, ch, family=family, fontsize=40, ha="center", va="center")
        fig.canvas.draw()
        crops.append(np.asarray(fig.canvas.buffer_rgba())[..., 0].copy())
    assert not np.array_equal(crops[0], crops[1]) and not np.array_equal(crops[1], crops[2])
    assert all((c < 128).sum() > 50 for c in crops)


def test_build_samples_have_the_onechart_target_and_meta(tmp_path) -> None:
    out = tmp_path / "a"
    summary = build_dataset("charts", out, n=6, params=MPL_ONLY)
    assert summary.samples == 6 and summary.errors == 0
    engine = _engine()
    for position, record in enumerate(samples(out)):
        assert record["task"] == "chart" and record["prompt"] == PROMPT_FORMAT
        target = json.loads(record["target"])
        assert set(target) == {"title", "source", "x_title", "y_title", "values"}
        assert record["meta"]["renderer"] == "matplotlib"
        assert record["meta"]["kind"] in MATPLOTLIB_KINDS
        assert record["meta"]["language"] in ("en", "zh")
        assert "palette" in record["meta"]["style"]
        spec, fig = _drawn(engine, position)
        assert record["target"] == onechart_target(spec)
        img = image(out, record)
        assert img.size == (spec.width, spec.height)
        assert np_equal(img, mc.rasterize(fig))
        fig.clear()


def np_equal(img, rgba) -> bool:
    import numpy as np

    return np.array_equal(np.asarray(img.convert("RGB")), rgba[..., :3])


def test_two_builds_are_byte_identical(tmp_path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    build_dataset("charts", a, n=40, shard_size=20, params=MPL_ONLY)
    build_dataset("charts", b, n=40, shard_size=20, params=MPL_ONLY)
    assert folder_digest(a) == folder_digest(b)
    assert len(folder_digest(a)) >= 7  # index + 2 x (tar, jsonl, errors)


def test_kinds_param(tmp_path) -> None:
    build_dataset("charts", tmp_path / "k", n=4, params={**MPL_ONLY, "kinds": "pie,donut"})
    assert {r["meta"]["kind"] for r in samples(tmp_path / "k")} <= {"pie", "donut"}
    with pytest.raises(BuildError, match="unknown chart kind"):
        build_dataset("charts", tmp_path / "x", n=2, params={"kinds": "histogram"})
    with pytest.raises(BuildError, match="ECharts"):
        build_dataset("charts", tmp_path / "y", n=2, params={**MPL_ONLY, "kinds": "radar"})
