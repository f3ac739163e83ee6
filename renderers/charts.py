"""The data model of a chart, shared by the chart renderers (Matplotlib, ECharts) and the target.

The engine draws a ChartSpec from the seed; a renderer draws it; the target is
``onechart_target(spec)``. Values are carried both as numbers (to draw) and as the
exact strings a reader sees (value labels, ticks), and the target uses the strings,
so the label is what is on the image.

Renderer interface (both renderers keep it)::

    def render_chart(spec: ChartSpec, rng: numpy.random.Generator) -> tuple[EncodedImage, dict]:
        '''Draw ``spec``; ``rng`` picks the style; return the PNG and a JSON-able style record.'''
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

ChartKind = Literal[
    "bar", "barh", "grouped_bar", "stacked_bar", "line", "multi_line", "area",
    "pie", "donut", "rose", "scatter", "radar", "funnel",
]  # fmt: skip

# Kinds with one value per category and no axes: the target maps category -> value directly.
SINGLE_SERIES_KINDS = {"pie", "donut", "rose", "funnel"}


@dataclass
class Series:
    name: str
    values: list[float]
    labels: list[str]  # the exact text of each value as drawn on the chart

    def __post_init__(self) -> None:
        if len(self.values) != len(self.labels):
            raise ValueError("a series needs one label per value")


@dataclass
class ChartSpec:
    kind: ChartKind
    categories: list[str]  # x categories; slice names for pie/donut/rose/funnel; x values (as drawn) for scatter
    series: list[Series]
    title: str | None = None
    source: str | None = None
    x_title: str | None = None
    y_title: str | None = None
    unit: str = ""  # appended to drawn values, e.g. "%"; already part of Series.labels
    language: Literal["en", "zh"] = "en"
    width: int = 1024
    height: int = 768
    extra: dict = field(default_factory=dict)  # renderer hints chosen by the engine (legend position, ...)

    def __post_init__(self) -> None:
        for s in self.series:
            if len(s.values) != len(self.categories):
                raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(self.categories)} categories")


def onechart_target(spec: ChartSpec) -> str:
    """OneChart's JSON dict: title, source, x_title, y_title ("None" when absent) and values."""
    if len(spec.series) == 1 and spec.kind in SINGLE_SERIES_KINDS:
        values: dict = dict(zip(spec.categories, spec.series[0].labels, strict=False))
    else:
        values = {s.name: dict(zip(spec.categories, s.labels, strict=False)) for s in spec.series}
    target = {
        "title": spec.title or "None",
        "source": spec.source or "None",
        "x_title": spec.x_title or "None",
        "y_title": spec.y_title or "None",
        "values": values,
    }
    return json.dumps(target, ensure_ascii=False)
