"""Charts: bar, line, pie, scatter... drawn by Matplotlib or ECharts, OneChart JSON targets.

Per position the seed draws a :class:`ChartSpec` (words from real word lists in
English or Chinese, numbers from controlled distributions) and which renderer draws
it. Values are kept as the exact strings drawn on the chart, so the target is what a
reader sees. A spec whose drawing cannot be laid out legibly (labels that collide or
leave the canvas) is redrawn from the next salt of the same position, so the result
stays a pure function of (seed, position).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import PROMPT_FORMAT, Engine, Param, ParamError, Rejection, Result, Sample
from renderers.charts import ChartSpec, Series, onechart_target

DATA = Path(__file__).resolve().parent / "data"

MATPLOTLIB_KINDS = (
    "bar",
    "barh",
    "grouped_bar",
    "stacked_bar",
    "line",
    "multi_line",
    "pie",
    "donut",
    "scatter",
    "area",
)
ECHARTS_ONLY_KINDS = ("rose", "radar", "funnel")
ALL_KINDS = MATPLOTLIB_KINDS + ECHARTS_ONLY_KINDS
# Relative frequency of each kind (bars and lines dominate real charts).
KIND_WEIGHTS = {
    "bar": 3, "barh": 2, "grouped_bar": 2, "stacked_bar": 2, "line": 3, "multi_line": 2,
    "pie": 2, "donut": 1, "scatter": 1, "area": 1, "rose": 1, "radar": 1, "funnel": 1,
}  # fmt: skip
# Attempts per position before giving up with a rejection (each attempt is a fresh spec).
MAX_ATTEMPTS = 6


class _Retry(RuntimeError):
    """A renderer could not lay a spec out legibly; the engine draws another spec."""


@dataclass(frozen=True)
class WordGroup:
    name: str
    axis_title: str | None
    ordered: bool
    words: tuple[str, ...]


@dataclass(frozen=True)
class Words:
    groups: tuple[WordGroup, ...]  # category groups (with an axis title)
    metrics: tuple[str, ...]
    series: tuple[str, ...]
    units: tuple[str, ...]
    sources: tuple[str, ...]


@cache
def load_words(language: str) -> Words:
    """Parse engines/data/chart_words_<language>.txt (see its header for the format)."""
    groups: list[WordGroup] = []
    current: list[str] | None = None
    header: tuple[str, str | None, bool] | None = None
    pools: dict[str, tuple[str, ...]] = {}

    def flush() -> None:
        if header is None or current is None:
            return
        name, title, ordered = header
        if title is None:
            pools[name] = tuple(current)
        else:
            groups.append(WordGroup(name, title, ordered, tuple(current)))

    for raw in (DATA / f"chart_words_{language}.txt").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            flush()
            left, _, title = line[1:].partition("|")
            name, *flags = left.split()
            title = title.strip()
            header = (name, None if title in ("", "-") else title, "ordered" in flags)
            current = []
        elif current is not None:
            current.append(line)
    flush()
    return Words(tuple(groups), pools["metrics"], pools["series"], pools["units"], pools["sources"])


# -- numbers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberFormat:
    """How the values of one chart are written: decimals, thousands separator, percent."""

    decimals: int
    thousands: bool
    percent: bool

    def label(self, value: float) -> str:
        sep = "," if self.thousands else ""
        text = f"{value:{sep}.{self.decimals}f}"
        return text + ("%" if self.percent else "")


def _number_format(rng: np.random.Generator, percent: bool, exponent: int) -> NumberFormat:
    if percent:
        return NumberFormat(int(rng.choice([0, 1], p=[0.4, 0.6])), False, True)
    # Small magnitudes need decimals to carry information; big ones are mostly integers.
    if exponent <= 1:
        decimals = int(rng.choice([0, 1, 2], p=[0.4, 0.4, 0.2]))
    elif exponent <= 3:
        decimals = int(rng.choice([0, 1, 2], p=[0.6, 0.3, 0.1]))
    else:
        decimals = int(rng.choice([0, 1], p=[0.85, 0.15]))
    return NumberFormat(decimals, exponent >= 4 and bool(rng.random() < 0.6), False)


def _values(rng: np.random.Generator, count: int, low: float, high: float, fmt: NumberFormat) -> list[float]:
    """``count`` values in [low, high], rounded to what is drawn, never zero (labels stay meaningful)."""
    step = 10.0**-fmt.decimals
    raw = rng.uniform(low, high, size=count)
    return [max(step, round(float(v), fmt.decimals)) for v in raw]


def _shares(rng: np.random.Generator, count: int, fmt: NumberFormat) -> list[float]:
    """Percent shares that add up to exactly 100 as drawn, none under ~4% (tiny slices are unreadable)."""
    step = 10.0**-fmt.decimals
    weights = rng.dirichlet(np.full(count, 2.5)) * (1 - 0.04 * count) + 0.04
    shares = [round(float(w) * 100, fmt.decimals) for w in weights[:-1]]
    shares.append(round(100 - sum(shares), fmt.decimals))
    return [max(step, s) for s in shares]


# -- specs ------------------------------------------------------------------------------

COUNTS = {  # (min, max) categories and series per kind
    "bar": ((3, 10), (1, 1)), "barh": ((3, 10), (1, 1)), "grouped_bar": ((2, 6), (2, 3)),
    "stacked_bar": ((3, 7), (2, 3)), "line": ((4, 12), (1, 1)), "multi_line": ((4, 9), (2, 3)),
    "area": ((4, 10), (1, 2)), "pie": ((3, 7), (1, 1)), "donut": ((3, 7), (1, 1)),
    "rose": ((4, 8), (1, 1)), "funnel": ((3, 6), (1, 1)), "scatter": ((4, 10), (1, 2)),
    "radar": ((4, 7), (1, 3)),
}  # fmt: skip
SIZES = (
    (1024, 768),
    (1024, 1024),
    (1280, 720),
    (960, 720),
    (800, 800),
    (1200, 900),
    (900, 1100),
    (1024, 640),
)


def _pick(rng: np.random.Generator, pool: tuple[str, ...] | list[str], k: int = 1) -> list[str]:
    return [pool[int(i)] for i in rng.choice(len(pool), size=k, replace=False)]


def _categories(rng: np.random.Generator, group: WordGroup, count: int) -> list[str]:
    count = min(count, len(group.words))
    if group.ordered:  # a contiguous run keeps time axes in order
        start = int(rng.integers(0, len(group.words) - count + 1))
        return list(group.words[start : start + count])
    return _pick(rng, group.words, count)


def _title(rng: np.random.Generator, language: str, metric: str, axis: str | None, year: str) -> str:
    if language == "zh":
        options = [f"{year}年{metric}", f"各{axis}{metric}对比" if axis else f"{metric}对比", f"{metric}统计"]
        if axis:
            options.append(f"{year}年各{axis}{metric}")
    else:
        options = [f"{metric} in {year}", f"{metric} by {axis.lower()}" if axis else f"{metric} overview"]
        if axis:
            options.append(f"{year} {metric.lower()} by {axis.lower()}")
        options.append(f"{metric}")
    return options[int(rng.integers(len(options)))]


def random_spec(rng: np.random.Generator, kinds: tuple[str, ...], zh_share: float) -> ChartSpec:
    """One chart drawn from ``rng``: kind, words, numbers, size and layout hints."""
    weights = np.array([KIND_WEIGHTS[k] for k in kinds], dtype=float)
    kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
    language = "zh" if rng.random() < zh_share else "en"
    words = load_words(language)
    (cmin, cmax), (smin, smax) = COUNTS[kind]
    n_series = int(rng.integers(smin, smax + 1))

    single = kind in ("pie", "donut", "rose", "funnel")
    if kind == "scatter":
        group = None
        categories: list[str] = []
    else:
        group = words.groups[int(rng.integers(len(words.groups)))]
        categories = _categories(rng, group, int(rng.integers(cmin, cmax + 1)))

    percent = (single and rng.random() < 0.5) or (not single and rng.random() < 0.15)
    exponent = int(rng.integers(0, 6))  # largest values from 2 (1e0) to 1e6
    fmt = _number_format(rng, percent, exponent)
    # The largest value of the chart: 2..10 times its magnitude, so integer charts of 1e0 still vary.
    scale = 100.0 if percent else 10.0**exponent * float(rng.uniform(2, 10))
    metric = _pick(rng, words.metrics)[0]
    unit = "" if percent or rng.random() < 0.5 else _pick(rng, words.units)[0]
    names = _pick(rng, words.series, n_series) if n_series > 1 or rng.random() < 0.5 else [metric]

    series: list[Series] = []
    if kind == "scatter":
        xfmt = _number_format(rng, False, int(rng.integers(0, 4)))
        count = int(rng.integers(cmin, cmax + 1))
        xscale = 10.0 ** int(rng.integers(0, 4))
        # Evenly spaced x with jitter: every x gets its own readable tick.
        xs = np.linspace(0.1, 1.0, count) * xscale + rng.uniform(-0.02, 0.02, count) * xscale
        xs_drawn = sorted({max(10.0**-xfmt.decimals, round(float(x), xfmt.decimals)) for x in xs})
        categories = [xfmt.label(x) for x in xs_drawn]
        for name in names:
            values = _values(rng, len(categories), 0.05 * scale, scale, fmt)
            series.append(Series(name, values, [fmt.label(v) for v in values]))
        x_values = xs_drawn
    else:
        x_values = None
        for i, name in enumerate(names):
            if single and percent:
                values = _shares(rng, len(categories), fmt)
            elif kind in ("multi_line", "radar") or (kind == "area" and n_series > 1):
                # Separate levels per series, so lines (and their labels) rarely cross.
                lo = 0.1 + 0.9 * i / n_series
                values = _values(rng, len(categories), lo * scale, (lo + 0.9 / n_series) * scale, fmt)
            elif percent and kind == "stacked_bar":
                values = _values(rng, len(categories), 10 / n_series, 100 / n_series, fmt)
            else:
                values = _values(rng, len(categories), 0.15 * scale, scale, fmt)
            series.append(Series(name, values, [fmt.label(v) for v in values]))

    year = _pick(rng, [w for g in words.groups if g.name == "years" for w in g.words])[0].rstrip("年")
    axis_title = group.axis_title if group else None
    has_title = rng.random() < 0.85
    title = _title(rng, language, metric, axis_title, year) if has_title else None
    y_title = metric if not percent else (f"{metric}（%）" if language == "zh" else f"{metric} (%)")
    if unit:
        y_title = f"{metric}（{unit}）" if language == "zh" else f"{metric} ({unit})"
    if single:
        x_title, y_title = None, None
    elif kind == "scatter":
        x_title = _pick(rng, [m for m in words.metrics if m != metric])[0]
    else:
        x_title = axis_title if rng.random() < 0.7 else None
        if rng.random() < 0.15:
            y_title = None
    if kind == "barh":  # the category axis is vertical: titles follow the axes as drawn
        x_title, y_title = y_title, x_title
    source = _pick(rng, words.sources)[0] if rng.random() < 0.3 else None
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    extra: dict[str, Any] = {"percent": percent}
    if x_values is not None:
        extra["x_values"] = x_values
    return ChartSpec(
        kind=kind, categories=categories, series=series, title=title, source=source,  # type: ignore[arg-type]
        x_title=x_title, y_title=y_title, unit="%" if percent else "", language=language,  # type: ignore[arg-type]
        width=width, height=height, extra=extra,
    )  # fmt: skip


# -- the engine -------------------------------------------------------------------------


def _parse_kinds(text: str) -> tuple[str, ...]:
    if not text.strip():
        return ALL_KINDS
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in ALL_KINDS]
    if unknown:
        raise ValueError(f"unknown chart kind {unknown[0]!r} (known: {', '.join(ALL_KINDS)})")
    return kinds


class Charts(Engine):
    name = "charts"
    version = "3"  # 2: Matplotlib charts PNG-encoded with the Up filter; 3: ECharts PNGs deflated by libdeflate
    description = "Bar/line/pie/donut/scatter/area charts (Matplotlib, ECharts), OneChart JSON targets"
    inputs = "none"
    params = (
        Param("zh_share", 0.3, "share of charts whose words are Chinese", float, minimum=0.0, maximum=1.0),
        Param("echarts_share", 0.5, "share of charts drawn by ECharts (the rest by Matplotlib)", float,
              minimum=0.0, maximum=1.0),
        Param("kinds", "", "comma-separated chart kinds to draw (empty: all; rose/radar/funnel are ECharts-only)"),
    )  # fmt: skip

    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        params = super().resolve_params(given)
        try:
            kinds = _parse_kinds(params["kinds"])
        except ValueError as exc:
            raise ParamError(f"--param kinds: {exc}") from None
        if params["echarts_share"] == 0 and not set(kinds) & set(MATPLOTLIB_KINDS):
            raise ParamError("--param kinds: only ECharts kinds chosen but echarts_share=0")
        return params

    def __init__(self, params: dict[str, Any], seed: int, units: Any = ()) -> None:
        super().__init__(params, seed, units)
        kinds = _parse_kinds(self.p["kinds"])
        self._kinds = {
            "matplotlib": tuple(k for k in kinds if k in MATPLOTLIB_KINDS),
            "echarts": kinds,
        }

    def choose(self, position: int, attempt: int = 0) -> tuple[str, ChartSpec, np.random.Generator]:
        """Renderer, spec and the style generator of one attempt at ``position`` (pure function)."""
        rng = self.rng(position, attempt)
        renderer = "echarts" if rng.random() < self.p["echarts_share"] else "matplotlib"
        if not self._kinds[renderer]:  # kinds= names only ECharts kinds
            renderer = "echarts"
        spec = random_spec(rng, self._kinds[renderer], self.p["zh_share"])
        return renderer, spec, rng

    def sample(self, position: int) -> Result:
        last = ""
        for attempt in range(MAX_ATTEMPTS):
            renderer, spec, rng = self.choose(position, attempt)
            try:
                image, style = _render(renderer, spec, rng)
            except _Retry as exc:
                last = str(exc)
                continue
            except RuntimeError as exc:
                # A renderer failure with a stable code (browser_crash, echarts_error...) keeps its code.
                if not hasattr(exc, "reason"):
                    raise
                return Rejection(exc.reason, getattr(exc, "detail", str(exc)))
            return Sample(
                task="chart",
                prompt=PROMPT_FORMAT,
                target=onechart_target(spec),
                images=[image],
                meta={"renderer": renderer, "kind": spec.kind, "language": spec.language, "style": style,
                      "attempt": attempt},
            )  # fmt: skip
        return Rejection("layout", f"no legible layout in {MAX_ATTEMPTS} attempts: {last}")

    def close(self) -> None:
        module = sys.modules.get("renderers.echarts_charts")
        if module is not None and hasattr(module, "close"):
            module.close()


def _render(renderer: str, spec: ChartSpec, rng: np.random.Generator) -> tuple[Any, dict]:
    # Imported lazily: a Matplotlib-only build never loads the browser side, and vice versa.
    if renderer == "echarts":
        from renderers import echarts_charts as module
    else:
        from renderers import matplotlib_charts as module  # type: ignore[no-redef]
    layout_error = getattr(module, "LayoutError", None)
    try:
        return module.render_chart(spec, rng)
    except Exception as exc:
        if layout_error is not None and isinstance(exc, layout_error):
            raise _Retry(str(exc)) from None
        raise
