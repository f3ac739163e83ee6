"""The music engine: one-system excerpts whose **kern target re-engraves to the very same pixels."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import verovio
from helpers import SHARED_DATA, build_dataset, errors, folder_digest, image, samples

from engines.base import PROMPT_FORMAT
from renderers.image import encode_png
from renderers.kern import from_form
from renderers.verovio_render import BASE_OPTIONS, EngraveError, Engraver, count_systems, rasterize

KERN = SHARED_DATA / "kern"


@pytest.fixture(scope="module")
def toolkit() -> verovio.toolkit:
    return verovio.toolkit()


def _engrave_in_process(tk: verovio.toolkit, kern: str, options: dict) -> str:
    tk.resetOptions()
    tk.setOptions({**BASE_OPTIONS, **options})
    assert tk.loadData(kern), tk.getLog()
    assert tk.getPageCount() == 1
    return tk.renderToSVG(1)


def _check_labels(out: Path, tk: verovio.toolkit) -> list[dict]:
    records = samples(out)
    for record in records:
        assert record["task"] == "music" and record["prompt"] == PROMPT_FORMAT
        kern = from_form(record["target"])
        assert kern.startswith("**kern\t**kern\n") and kern.endswith("*-\t*-\n")
        svg = _engrave_in_process(tk, kern, record["meta"]["verovio"])
        assert count_systems(svg) == 1, record["source"]
        # The target engraved again with the recorded options is exactly the image.
        assert np.array_equal(np.asarray(rasterize(svg)), np.asarray(image(out, record).convert("L"))), record["source"]
    return records


def test_builtin_targets_engrave_as_the_image(tmp_path: Path, toolkit: verovio.toolkit) -> None:
    summary = build_dataset("music", tmp_path / "a", n=10, seed=3)
    assert summary.errors == 0
    records = _check_labels(tmp_path / "a", toolkit)
    assert len(records) == 10
    assert len({r["meta"]["verovio"]["font"] for r in records}) >= 3
    assert len({r["meta"]["measures"] for r in records}) >= 2
    assert any(r["meta"]["measures"] >= 2 for r in records)


def test_real_kern_inputs(tmp_path: Path, toolkit: verovio.toolkit) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    for folder in ("joplin", "mozart-piano-sonatas", "scarlatti-keyboard-sonatas"):
        for path in sorted((KERN / folder).glob("*.krn"))[:2]:
            shutil.copy(path, inputs / path.name)
    summary = build_dataset("music", tmp_path / "out", n=12, inputs=[str(inputs)])
    records = _check_labels(tmp_path / "out", toolkit)
    assert len(records) >= 9, summary.errors_by_reason
    assert all(r["source"].startswith(str(inputs)) and "#measures=" in r["source"] for r in records)


def test_target_forms(tmp_path: Path) -> None:
    build_dataset("music", tmp_path / "kern", n=3, seed=5)
    plain = [r["target"] for r in samples(tmp_path / "kern")]
    for form in ("ekern", "bekern"):
        build_dataset("music", tmp_path / form, n=3, seed=5, params={"target_form": form})
        targets = [r["target"] for r in samples(tmp_path / form)]
        assert all(t.startswith("**ekern_1.0\t**ekern_1.0\n") and "·" in t for t in targets)
        assert [from_form(t) for t in targets] == plain


def test_bad_inputs_become_rejections(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "three.krn").write_text("**kern\t**kern\t**kern\n4c\t4d\t4e\n*-\t*-\t*-\n")
    (inputs / "ragged.krn").write_text("**kern\t**kern\n*clefF4\t*clefG2\n4C\t4c\t4e\n*-\t*-\n")
    (inputs / "token.krn").write_text("**kern\t**kern\n*clefF4\t*clefG2\n4C\t4c%%\n*-\t*-\n")
    good = "**kern\t**kern\n*clefF4\t*clefG2\n!!!COM: Fauré\n*M2/4\t*M2/4\n4C\t4c\n4D\t4d\n=\t=\n2E\t2e\n==\t==\n*-\t*-\n"
    (inputs / "latin1.krn").write_bytes(good.encode("latin-1"))
    summary = build_dataset("music", tmp_path / "out", n=8, inputs=[str(inputs)])
    reasons = {Path(e["source"]).name.split("#")[0]: e["reason"] for e in errors(tmp_path / "out")}
    assert reasons == {"three.krn": "not_two_staff", "ragged.krn": "malformed_spines", "token.krn": "unknown_token"}
    assert summary.samples == 2 and all("latin1.krn" in r["source"] for r in samples(tmp_path / "out"))


def test_verovio_crash_is_isolated() -> None:
    engraver = Engraver()
    try:
        with pytest.raises(EngraveError) as info:  # aborts Verovio 6.4.1 (std::length_error)
            engraver.engrave("**kern\t**kern\n4c\t4d\t4e\n*-\t*-\n", {})
        assert info.value.reason == "verovio_crash"
        ok = engraver.engrave("**kern\t**kern\n*clefF4\t*clefG2\n4C\t4c\n*-\t*-\n", {})
        assert ok.systems == 1 and engraver.restarts == 1
        with pytest.raises(EngraveError) as info:  # also while the child rasterises
            engraver.engrave("**kern\t**kern\n4c\t4d\t4e\n*-\t*-\n", {}, png=True)
        assert info.value.reason == "verovio_crash"
        again = engraver.engrave("**kern\t**kern\n*clefF4\t*clefG2\n4C\t4c\n*-\t*-\n", {}, png=True)
        assert again.png is not None and engraver.restarts == 2
    finally:
        engraver.close()


def test_child_rasterises_one_system_pages(toolkit: verovio.toolkit) -> None:
    """With png=True the child returns the very PNG the worker would make from the SVG, only for one system."""
    one = "**kern\t**kern\n*clefF4\t*clefG2\n*M2/4\t*M2/4\n4C\t4c\n4D\t4d\n=\t=\n2E\t2e\n==\t==\n*-\t*-\n"
    many = "**kern\t**kern\n*clefF4\t*clefG2\n*M2/4\t*M2/4\n" + "8C 8E\t16c 16d 16e 16f\n" * 8 + "==\t==\n*-\t*-\n"
    many = many.replace("8C 8E\t16c 16d 16e 16f\n" * 4, "4C\t4c\n4D\t4d\n=\t=\n" * 6)
    engraver = Engraver()
    try:
        options = {"pageWidth": 1500, "scale": 50}
        engraving = engraver.engrave(one, options, png=True)
        assert engraving.png is not None and engraving.svg == b""
        expected = encode_png(rasterize(_engrave_in_process(toolkit, one, options)))
        assert engraving.png == expected
        overflow = engraver.engrave(many, {"pageWidth": 600, "scale": 70}, png=True)
        assert overflow.systems > 1 and overflow.png is None
        assert 1 <= overflow.first_system_measures < 7
        assert count_systems(engraver.engrave(one, options).svg) == 1  # SVG answers still work in between
    finally:
        engraver.close()


def test_verovio_error_carries_its_log() -> None:
    engraver = Engraver()
    try:
        with pytest.raises(EngraveError) as info:
            engraver.engrave("not music", {"inputFrom": "mei"}, png=True)
        assert info.value.reason == "verovio_error"
        assert "MEI" in info.value.detail  # Verovio's own words, captured from its stderr
        assert engraver.restarts == 0
    finally:
        engraver.close()


def test_text_is_drawn(toolkit: verovio.toolkit) -> None:
    kern = ("**kern\t**kern\n*clefF4\t*clefG2\n*M3/4\t*M3/4\n!\t!LO:TX:a:t=Allegro con brio\n"
            "4C\t4c\n4D\t4d\n4E\t4e\n==\t==\n*-\t*-\n")
    svg = _engrave_in_process(toolkit, kern, {"pageWidth": 2000})
    assert "Allegro" in svg
    without = re.sub(r"<text\b.*?</text>", "", svg, flags=re.S)
    assert without != svg
    ink = np.asarray(rasterize(svg)) < 128
    ink_without = np.asarray(rasterize(without)) < 128
    # A rasteriser without a usable serif face drops text silently: the text must add visible ink.
    assert ink.sum() - ink_without.sum() > 200


def test_deterministic(tmp_path: Path) -> None:
    build_dataset("music", tmp_path / "a", n=5, seed=11)
    build_dataset("music", tmp_path / "b", n=5, seed=11)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")
