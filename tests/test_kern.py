"""The **kern reader/writer and the procedural generator, without Verovio."""

from __future__ import annotations

import numpy as np
import pytest

from renderers.kern import KernError, decode_bytes, excerpt, from_form, parse_kern, split_subtoken, to_form
from renderers.kern_gen import generate_kern, generate_score

PIECE = """!!!OTL: test
**kern\t**kern\t**dynam
*clefF4\t*clefG2\t*
*k[f#]\t*k[f#]\t*
*M3/4\t*M3/4\t*
=1\t=1\t=1
4G\t(4g\tp
4B\t4a\t.
4d\t[4b\t.
=2\t=2\t=2
*clefG2\t*\t*
2.g\t4b]\t.
.\t4cc)\t.
.\t4dd\t.
=3\t=3\t=3
*^\t*\t*
4g\t4b\t[2dd\t.
4a\t4cc\t.\t.
4b\t4dd\t4ee]\t.
*v\t*v\t*\t*
=4\t=4\t=4
*k[]\t*k[]\t*
*M2/4\t*M2/4\t*
4c\t4cc\t.
4e\t4ee\t.
==\t==\t==
*-\t*-\t*-
"""


def test_parse_keeps_kern_spines_and_tracks_state() -> None:
    score = parse_kern(PIECE)
    assert len(score.measures) == 5  # an empty first segment (before =1) + 4 measures
    assert score.measures[2].state[0]["clef"] == "*clefF4"
    assert score.measures[3].state[0]["clef"] == "*clefG2"
    assert score.measures[3].simple_end and not score.measures[3].lines[0].fields == ["*", "*"]  # split closed
    assert all(len(line.fields) in (2, 3) for m in score.measures for line in m.lines)


def test_excerpt_carries_state_and_closes_spans() -> None:
    score = parse_kern(PIECE)
    text = excerpt(score, 3, 2)  # measures 3-4: clef change before the cut, split inside
    lines = text.splitlines()
    assert lines[0] == "**kern\t**kern"
    assert lines[1] == "*clefG2\t*clefG2"  # the clef change of measure 2 carried in
    assert lines[2] == "*k[f#]\t*k[f#]" and lines[3] == "*M3/4\t*M3/4"
    assert lines[-1] == "*-\t*-"
    assert "*^\t*" in lines and "*v\t*v\t*" in lines
    assert "*k[]\t*k[]" in lines and "*M2/4\t*M2/4" in lines
    assert all("=3" not in line for line in lines)  # measure numbers dropped
    # measure 2 starts with a tie end and a slur end whose partners lie before the cut
    two = excerpt(score, 2, 1)
    body = two.splitlines()
    assert body[1] == "*clefG2\t*clefG2"  # the clef change at the start of the measure joins the header
    assert "2.g\t4b" in body and ".\t4cc" in body
    assert not any("]" in line or ")" in line for line in body if not line.startswith("*"))
    # measure 1 alone: the tie and slur it opens are closed nowhere, so they are dropped
    one = excerpt(score, 1, 1)
    assert not any("[" in line or "(" in line for line in one.splitlines() if not line.startswith("*"))


def test_forms_round_trip() -> None:
    text = excerpt(parse_kern(PIECE), 1, 3)
    for form in ("ekern", "bekern"):
        converted = to_form(text, form)
        assert converted.startswith("**ekern_1.0\t**ekern_1.0\n")
        assert "·" in converted
        assert from_form(converted) == text
    assert to_form("**kern\n8cc#L\n*-\n", "ekern").splitlines()[1] == "8·cc#·L"
    assert to_form("**kern\n8cc#LL\n*-\n", "bekern").splitlines()[1] == "8·cc·#·L·L"


@pytest.mark.parametrize("text,reason", [
    ("**kern\t**kern\t**kern\n4c\t4d\t4e\n*-\t*-\t*-\n", "not_two_staff"),
    ("**kern\n4c\n*-\n", "not_two_staff"),
    ("**kern\t**kern\n4c\t4d\t4e\n*-\t*-\n", "malformed_spines"),
    ("**kern\t**kern\n4c\t4Xq%\n*-\t*-\n", "unknown_token"),
    ("**kern\t**kern\n4c\t4ccd\n*-\t*-\n", "unknown_token"),
    ("**kern\t**kern\n*v\t*\n*-\t*-\n", "malformed_spines"),
    ("4c\t4d\n", "malformed_spines"),
])
def test_bad_input_is_a_reason(text: str, reason: str) -> None:
    with pytest.raises(KernError) as info:
        parse_kern(text)
    assert info.value.reason == reason


def test_latin1_fallback_and_tokens() -> None:
    assert decode_bytes("!!!COM: Dvořák\n".encode()) == "!!!COM: Dvořák\n"
    assert decode_bytes("!!!COM: Fauré\n".encode("latin-1")) == "!!!COM: Fauré\n"
    assert "".join(p.text for p in split_subtoken("(8.cc#'L")) == "(8.cc#'L"
    assert [p.kind for p in split_subtoken("4r")] == ["duration", "rest"]


def test_generator_is_valid_and_varied() -> None:
    meters, keys = set(), set()
    for seed in range(60):
        text = generate_kern(np.random.default_rng(seed), 10)
        assert text == generate_kern(np.random.default_rng(seed), 10)
        score = parse_kern(text)
        # The engine takes the piece as a score built directly: it must be what parsing the text gives.
        assert generate_score(np.random.default_rng(seed), 10) == score
        # What the engine generates for an excerpt: measures first..stop-1 of a piece, a valid file of
        # its own, opening with its clef, key and meter; only the piece's last measure ends with '=='.
        first = seed % 10
        stop = min(10, first + 1 + seed % 6)
        part_text = generate_kern(np.random.default_rng(seed), 10, first, stop)
        part = parse_kern(part_text)
        assert generate_score(np.random.default_rng(seed), 10, first, stop) == part
        assert len(part.measures) == len(part.cut_points()) == stop - first
        opening = "\n".join(part_text.splitlines()[1:6])
        assert "*clef" in opening and "*k[" in opening and "*M" in opening
        assert ("==\t==" in part_text) == (stop == 10)
        assert part_text.rstrip().endswith("*-\t*-")
        assert len(score.measures) == 10
        assert len(score.cut_points()) == 10
        lines = text.splitlines()
        meters.add(next(line for line in lines if line.startswith("*M")))
        keys.add(lines[2])
        num, den = map(int, next(line for line in lines if line.startswith("*M"))[2:].split("\t")[0].split("/"))
        for m in score.measures:
            for staff in (0, 1):
                total = 0.0
                for line in m.lines:
                    if line.kind == "d" and line.fields[staff] != ".":
                        head = split_subtoken(line.fields[staff].split(" ")[0])
                        dur = next(p.text for p in head if p.kind == "duration")
                        total += (1.5 if dur.endswith(".") else 1.0) * 4 / int(dur.rstrip("."))
                assert total == pytest.approx(num * 4 / den)  # every staff fills the meter
        text_tokens = text.replace("\n", "\t").split("\t")
        assert any("L" in t for t in text_tokens)
    assert len(meters) >= 5 and len(keys) >= 8
