"""The Pyecharts half of the charts engine: ChartSpec -> ECharts option (built with Pyecharts) -> PNG.

Pyecharts builds the option dict, as in the paper; a persistent headless Chromium page
(``renderers.browser``) holding ECharts from ``node_modules`` draws it with
``setOption(option, true)`` on a live chart (cleared, on a fresh canvas) and encodes that canvas.
Chromium's PNG is re-encoded as RGB (Up filter, libdeflate; its scanlines are reused without decoding
when it is opaque and Up-filtered, as Chromium writes it) so equal pixels give equal bytes.

Value labels are the exact strings of ``Series.labels`` (a page-side formatter returns
them; ECharts never formats a number), grids use ECharts 6's ``outerBoundsMode: 'same'``
so axis labels and names stay inside the plot box, and every other text has a fixed
place (title top, legend in a reserved band, source bottom).
"""

from __future__ import annotations

import base64
import functools
import io
import json
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import deflate
import numpy as np
from PIL import Image

from engines.base import EncodedImage
from renderers.browser import Browser, BrowserOptions, RenderError, close_shared, shared_browser
from renderers.charts import SINGLE_SERIES_KINDS, ChartSpec
from renderers.image import encode_png, filter_rows

REPO = Path(__file__).resolve().parents[1]
ASSETS = Path(__file__).resolve().parent / "assets"
PAGE_JS = ASSETS / "echarts_page.js"
BROWSER_KEY = "echarts"
MAX_SIZE = 2048  # viewport; charts larger than this are refused
# libdeflate level of the chart PNGs (Up filter): 34.3 KB at 4.3 ms per chart vs 35.3 KB at 9.7 ms for
# zlib level 6 (30 charts); libdeflate's levels 1-4 are larger and no faster.
PNG_LEVEL = 6

FONTS = {
    "en": ("DejaVu Sans", "DejaVu Serif", "Noto Sans CJK SC", "WenQuanYi Micro Hei"),
    "zh": ("Noto Sans CJK SC", "Noto Serif CJK SC", "WenQuanYi Micro Hei"),
}
# The CJK faces come last in every stack so Chinese glyphs never fall back to a box.
FALLBACK = "'Noto Sans CJK SC', 'WenQuanYi Micro Hei', sans-serif"
SYMBOLS = ("circle", "emptyCircle", "rect", "roundRect", "triangle", "diamond")
SOURCE_PREFIX = {"en": "Source: ", "zh": "数据来源："}


class LayoutError(RenderError):
    """The chart was drawn but some text is clipped or a value label is missing: draw another spec."""

    def __init__(self, detail: str) -> None:
        super().__init__("layout", detail)


def node_modules() -> Path:
    return Path(os.environ.get("GOT_DATA_NODE_MODULES", REPO / "node_modules"))


def echarts_js() -> Path:
    path = node_modules() / "echarts" / "dist" / "echarts.min.js"
    if not path.is_file():
        raise RenderError("echarts_missing", f"{path} not found: run `npm ci` at the repo root (or set GOT_DATA_NODE_MODULES)")
    return path


def theme_files() -> list[Path]:
    return list(_theme_files(node_modules()))


@functools.lru_cache(maxsize=4)
def _theme_files(root: Path) -> tuple[Path, ...]:
    # Cached: pick_style asks for every chart, and a sorted glob of 36 files costs ~1 ms.
    return tuple(sorted((root / "echarts" / "theme").glob("*.js")))


def themes() -> list[str | None]:
    """None (ECharts' default look) and every theme the echarts package ships, in a fixed order."""
    return [None, *(p.stem for p in theme_files())]


# -- style -----------------------------------------------------------------------
@dataclass
class Style:
    theme: str | None
    font: str
    font_size: int
    title_align: str
    legend: str  # "top" | "bottom" | "right" | "none"
    symbol: str
    symbol_size: int
    smooth: bool
    bar_width: str | None
    label_extra: str  # pie/funnel labels: "lines" (name over value) | "colon" (name: value)

    def record(self) -> dict[str, Any]:
        return {"renderer": "echarts", **self.__dict__}


def pick_style(spec: ChartSpec, rng: np.random.Generator) -> Style:
    names = themes()
    fonts = FONTS["zh" if spec.language == "zh" else "en"]
    multi = len(spec.series) > 1
    legend_choices = ("top", "bottom", "right") if multi or spec.kind not in SINGLE_SERIES_KINDS else ("none", "top", "bottom")
    legend = spec.extra.get("legend") if spec.extra.get("legend") in legend_choices else None
    return Style(
        theme=names[int(rng.integers(len(names)))],
        font=fonts[int(rng.integers(len(fonts)))],
        font_size=int(rng.integers(13, 17)),
        title_align=("left", "center")[int(rng.integers(2))],
        legend=legend or legend_choices[int(rng.integers(len(legend_choices)))],
        symbol=SYMBOLS[int(rng.integers(len(SYMBOLS)))],
        symbol_size=int(rng.integers(6, 11)),
        smooth=bool(rng.random() < 0.3),
        bar_width=None if rng.random() < 0.6 else f"{int(rng.integers(35, 70))}%",
        label_extra=("lines", "colon")[int(rng.integers(2))],
    )


# -- option ----------------------------------------------------------------------
def _check_text(spec: ChartSpec) -> None:
    for s in spec.series:
        for label in s.labels:
            if not label.strip():
                raise ValueError(f"series {s.name!r} has an empty value label")


def _pyecharts_option(spec: ChartSpec, style: Style) -> tuple[dict[str, Any], list[Any]]:
    """The option dict built by Pyecharts and the label strings per series (page-side formatter)."""
    from pyecharts import options as opts
    from pyecharts.charts import Bar, Funnel, Line, Pie, Radar, Scatter

    init = opts.InitOpts(
        width=f"{spec.width}px",
        height=f"{spec.height}px",
        animation_opts=opts.AnimationOpts(animation=False),
    )
    kind = spec.kind
    fs = style.font_size
    labels: list[Any]
    if kind in ("bar", "barh", "grouped_bar", "stacked_bar"):
        chart: Any = Bar(init).add_xaxis(list(spec.categories))
        position = {"barh": "right", "stacked_bar": "inside"}.get(kind, "top")
        for s in spec.series:
            chart.add_yaxis(
                s.name,
                [float(v) for v in s.values],
                stack="total" if kind == "stacked_bar" else None,
                bar_max_width=style.bar_width,
                label_opts=opts.LabelOpts(is_show=True, position=position, font_size=fs - 2),
            )
        if kind == "barh":
            chart.reversal_axis()
        labels = [list(s.labels) for s in spec.series]
    elif kind in ("line", "multi_line", "area"):
        chart = Line(init).add_xaxis(list(spec.categories))
        for s in spec.series:
            chart.add_yaxis(
                s.name,
                [float(v) for v in s.values],
                is_smooth=style.smooth,
                symbol=style.symbol,
                symbol_size=style.symbol_size,
                is_symbol_show=True,
                areastyle_opts=opts.AreaStyleOpts(opacity=0.25) if kind == "area" else None,
                label_opts=opts.LabelOpts(is_show=True, position="top", font_size=fs - 2),
            )
        labels = [list(s.labels) for s in spec.series]
    elif kind == "scatter":
        chart = Scatter(init).add_xaxis(list(spec.categories))
        for s in spec.series:
            chart.add_yaxis(
                s.name,
                [float(v) for v in s.values],
                symbol=style.symbol,
                symbol_size=style.symbol_size + 4,
                label_opts=opts.LabelOpts(is_show=True, position="top", font_size=fs - 2),
            )
        labels = [list(s.labels) for s in spec.series]
    elif kind in ("pie", "donut", "rose"):
        s = spec.series[0]
        radius = {"pie": ["0%", "55%"], "donut": ["32%", "55%"], "rose": ["12%", "58%"]}[kind]
        chart = Pie(init).add(
            s.name,
            [(c, float(v)) for c, v in zip(spec.categories, s.values, strict=True)],
            radius=radius,
            center=["50%", "55%"],
            rosetype="radius" if kind == "rose" else None,
            label_opts=opts.LabelOpts(is_show=True, position="outside", font_size=fs - 2),
        )
        labels = [[_name_value(c, v, style) for c, v in zip(spec.categories, s.labels, strict=True)]]
    elif kind == "funnel":
        s = spec.series[0]
        chart = Funnel(init).add(
            s.name,
            [(c, float(v)) for c, v in zip(spec.categories, s.values, strict=True)],
            sort_="descending",
            label_opts=opts.LabelOpts(is_show=True, position="right", font_size=fs - 2),
        )
        labels = [[_name_value(c, v, style) for c, v in zip(spec.categories, s.labels, strict=True)]]
    elif kind == "radar":
        top = max(max(float(v) for v in s.values) for s in spec.series)
        top = top * 1.15 if top > 0 else 1.0
        chart = Radar(init).add_schema(
            schema=[opts.RadarIndicatorItem(name=c, max_=top, min_=0) for c in spec.categories],
            center=["50%", "56%"],
            radius="58%",
            textstyle_opts=opts.TextStyleOpts(font_size=fs),
        )
        for s in spec.series:
            chart.add(
                s.name,
                [[float(v) for v in s.values]],
                symbol=style.symbol,
                label_opts=opts.LabelOpts(is_show=True, font_size=fs - 2),
                areastyle_opts=opts.AreaStyleOpts(opacity=0.15),
            )
        labels = [[list(s.labels)] for s in spec.series]
    else:
        raise ValueError(f"the ECharts renderer does not draw {kind!r} charts")
    option = json.loads(chart.dump_options())
    if kind == "radar":
        # Named polygons: ECharts then colours each series from the palette (unnamed ones share a colour).
        for series, s in zip(option["series"], spec.series, strict=True):
            series["data"] = [{"name": s.name, "value": series["data"][0]}]
            series.pop("itemStyle", None)
    return option, labels


def _name_value(name: str, value: str, style: Style) -> str:
    return f"{name}\n{value}" if style.label_extra == "lines" else f"{name}: {value}"


def _axis_option(spec: ChartSpec, option: dict[str, Any], style: Style) -> None:
    """Category ticks all shown, axis names centred, value axes with headroom for the labels."""
    fs = style.font_size
    x_axes, y_axes = option.get("xAxis", []), option.get("yAxis", [])
    for axes, title in ((x_axes, spec.x_title), (y_axes, spec.y_title)):
        for axis in axes:
            is_category = "data" in axis
            axis.update(
                {
                    "nameLocation": "middle",
                    "nameGap": 12,
                    "nameTextStyle": {"fontSize": fs, "fontWeight": "bold"},
                    "axisLabel": {"fontSize": fs - 2, "hideOverlap": False, **({"interval": 0} if is_category else {})},
                }
            )
            if is_category:
                axis["type"] = "category"
            else:
                axis["type"] = "value"
                axis["boundaryGap"] = ["0%", "12%"]
            if title:
                axis["name"] = title
            else:
                axis.pop("name", None)
    # barh: ChartSpec's x_title/y_title already name the axes as drawn (x = horizontal values).
    # Many or long categories on a horizontal axis: slant them rather than skip any.
    category_x = [a for a in x_axes if a.get("type") == "category"]
    if category_x:
        longest = max((len(c) for c in spec.categories), default=0)
        if longest * len(spec.categories) * fs * 0.6 > spec.width * 0.7:
            category_x[0]["axisLabel"]["rotate"] = 30


def _layout(spec: ChartSpec, option: dict[str, Any], style: Style) -> None:
    fs = style.font_size
    w, h = spec.width, spec.height
    top = 16
    titles = []
    if spec.title:
        titles.append(
            {
                "text": spec.title,
                "left": style.title_align,
                "top": top,
                "textStyle": {"fontSize": fs + 6, "fontWeight": "bold", "width": w - 40, "overflow": "break"},
            }
        )
        top += fs + 6 + 22
    bottom = 16
    if spec.source:
        titles.append(
            {
                "text": SOURCE_PREFIX.get(spec.language, "Source: ") + spec.source,
                "left": 20,
                "bottom": bottom,
                "textStyle": {"fontSize": fs - 3, "fontWeight": "normal", "width": w - 40, "overflow": "break"},
            }
        )
        bottom += fs + 10
    option["title"] = titles
    right = 24
    legend = option.get("legend") or [{}]
    legend_opt = legend[0] if isinstance(legend, list) else legend
    legend_opt.update({"type": "plain", "textStyle": {"fontSize": fs - 1}, "show": style.legend != "none"})
    for key in ("top", "bottom", "left", "right", "orient"):
        legend_opt.pop(key, None)
    if style.legend == "top":
        legend_opt.update({"top": top, "left": "center", "orient": "horizontal", "width": w - 60})
        top += _legend_rows(spec, style) * (fs + 12) + 8
    elif style.legend == "bottom":
        legend_opt.update({"bottom": bottom, "left": "center", "orient": "horizontal", "width": w - 60})
        bottom += _legend_rows(spec, style) * (fs + 12) + 8
    elif style.legend == "right":
        legend_opt.update({"right": 12, "top": "middle", "orient": "vertical"})
        longest = max((len(n) for n in _legend_names(spec)), default=4)
        right += min(int(w * 0.3), int(longest * fs * (1.0 if spec.language == "zh" else 0.62)) + 45)
    option["legend"] = [legend_opt]
    top += 8
    if spec.kind == "radar" and (spec.x_title or spec.y_title):
        # No axes to name: the value title sits above the radar, the category title below it.
        graphics = []
        dark = (style.theme or "").startswith("dark")
        if spec.y_title:
            graphics.append(_caption(spec.y_title, {"left": 24, "top": top}, fs, dark))
            top += fs + 14
        if spec.x_title:
            graphics.append(_caption(spec.x_title, {"left": "center", "bottom": bottom}, fs, dark))
            bottom += fs + 14
        option["graphic"] = graphics
    if "xAxis" in option:
        option["grid"] = [
            {
                "left": 24,
                "right": right,
                "top": top,
                "bottom": bottom + 8,
                "outerBoundsMode": "same",
                "outerBoundsContain": "all",
            }
        ]
    else:
        # Polar-like charts: fit the drawing into the band between title/legend and source.
        cx = f"{round(100 * (w - right + 24) / 2 / w, 1)}%"
        cy = f"{round(100 * (top + (h - bottom)) / 2 / h, 1)}%"
        avail = min(w - right - 24, h - top - bottom)
        for series in option.get("series", []):
            if series.get("type") == "pie":
                series["center"] = [cx, cy]
                outer = int(avail * 0.30)
                inner = {"pie": 0, "donut": int(outer * 0.55), "rose": int(outer * 0.2)}[spec.kind]
                series["radius"] = [inner, outer]
                series["avoidLabelOverlap"] = True
                series["labelLine"] = {"show": True, "length": 12, "length2": 10}
                series["label"]["edgeDistance"] = 10
                series["labelLayout"] = {"moveOverlap": "shiftY"}
            elif series.get("type") == "funnel":
                series.update({"left": 30, "top": top, "bottom": bottom + 8, "width": "45%", "minSize": "8%"})
                series["labelLine"] = {"show": True, "length": 20}
        for radar in option.get("radar", []):
            radar["center"] = [cx, cy]
            radar["radius"] = int(avail * 0.33)
            radar["axisName"] = {"fontSize": fs - 1, "color": "inherit"}
            radar.pop("name", None)


def _caption(text: str, place: dict[str, Any], fs: int, dark: bool) -> dict[str, Any]:
    fill = "#ddd" if dark else "#444"
    return {"type": "text", **place, "style": {"text": text, "fontSize": fs, "fontWeight": "bold", "fill": fill}}


def _legend_names(spec: ChartSpec) -> list[str]:
    return list(spec.categories) if spec.kind in SINGLE_SERIES_KINDS else [s.name for s in spec.series]


def _legend_rows(spec: ChartSpec, style: Style) -> int:
    per_char = style.font_size * (1.0 if spec.language == "zh" else 0.62)
    total = sum(len(n) * per_char + 45 for n in _legend_names(spec))
    return max(1, int(np.ceil(total / max(1.0, spec.width - 80))))


def build_option(spec: ChartSpec, style: Style) -> tuple[dict[str, Any], list[Any]]:
    """The full ECharts option for ``spec`` and the value label strings per series."""
    _check_text(spec)
    option, labels = _pyecharts_option(spec, style)
    option.pop("tooltip", None)
    option["animation"] = False
    option["textStyle"] = {"fontFamily": f"'{style.font}', {FALLBACK}"}
    _axis_option(spec, option, style)
    _layout(spec, option, style)
    return option, labels


# -- rendering -------------------------------------------------------------------
def _setup(page: Any) -> None:
    page.set_content("<!doctype html><html><head><meta charset='utf-8'></head><body style='margin:0'></body></html>")
    page.add_script_tag(path=str(echarts_js()))
    for path in theme_files():
        page.add_script_tag(path=str(path))
    page.add_script_tag(path=str(PAGE_JS))


def browser_options() -> BrowserOptions:
    return BrowserOptions(width=MAX_SIZE, height=MAX_SIZE, device_scale_factor=1.0, setup=_setup)


def browser() -> Browser:
    """This worker's Chromium for ECharts (started on first use, kept across shards)."""
    return shared_browser(BROWSER_KEY, browser_options)


def render_option(
    option: dict[str, Any], labels: list[Any], width: int, height: int, theme: str | None, on: Browser | None = None
) -> EncodedImage:
    """Draw one ECharts option on the live page; raise RenderError (reason code) when it cannot be drawn."""
    if not (0 < width <= MAX_SIZE and 0 < height <= MAX_SIZE):
        raise RenderError("bad_size", f"chart size {width}x{height} outside 1..{MAX_SIZE}")
    target = on or browser()
    # One JSON string each way: Playwright validates every node of a structured argument or
    # result in Python (~7000 nodes per option and text list), which cost more than the PNG work.
    request = json.dumps({"option": option, "labels": labels, "width": width, "height": height, "theme": theme})
    try:
        drawn = json.loads(target.call("req => JSON.stringify(window.gotRender(JSON.parse(req)))", request))
    except RenderError as exc:
        if exc.reason == "javascript_error":
            raise RenderError("echarts_error", exc.detail) from None
        raise
    url = drawn.get("url") if isinstance(drawn, dict) else None
    if not isinstance(url, str) or not url.startswith("data:image/png;base64,"):
        raise RenderError("echarts_error", "the page returned no PNG")
    check_legible(drawn["texts"], labels, width, height)  # before decoding: a rejected chart costs no PNG work
    chromium_png = base64.b64decode(url.split(",", 1)[1])
    scanlines = rgb_scanlines_of_up_png(chromium_png, width, height)
    if scanlines is not None:
        return _png_of_scanlines(scanlines, width, height)
    pixels = Image.open(io.BytesIO(chromium_png))
    pixels.load()
    if pixels.size != (width, height):
        raise RenderError("echarts_error", f"ECharts drew {pixels.size[0]}x{pixels.size[1]}, expected {width}x{height}")
    if pixels.mode != "RGBA" or pixels.getchannel("A").getextrema() != (255, 255):
        return encode_png(pixels, level=PNG_LEVEL)  # the page paints opaque RGBA; flatten if it did not
    return encode_png_libdeflate(np.asarray(pixels.convert("RGB")), PNG_LEVEL)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.lru_cache(maxsize=16)
def _rgb_columns(width: int) -> np.ndarray:
    """Columns of an RGBA scanline (filter byte + 4 bytes per pixel) that make the RGB scanline."""
    return np.concatenate([[0], (1 + 4 * np.arange(width)[:, None] + np.arange(3)).ravel()])


def rgb_scanlines_of_up_png(png: bytes, width: int, height: int) -> np.ndarray | None:
    """The Up-filtered RGB scanlines of an opaque 8-bit RGBA PNG whose rows all use the Up filter.

    Chromium writes canvases that way. The Up filter works byte by byte, so dropping the alpha
    bytes of its scanlines gives exactly the scanlines ``filter_rows`` makes from the RGB pixels:
    no unfiltering, no Pillow decode, the same output bytes. None when the PNG is anything else
    (or not opaque: first-row alpha 255 and every later alpha delta 0); the caller decodes it then.
    """
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return None
    if png[16:29] != struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0):
        return None
    chunks, pos = [], 33
    while pos + 8 <= len(png):
        (size,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            chunks.append(png[pos + 8 : pos + 8 + size])
        elif kind == b"IEND":
            break
        pos += 12 + size
    stride = 1 + 4 * width
    try:
        raw = deflate.zlib_decompress(b"".join(chunks), stride * height)
    except deflate.DeflateError:
        return None
    if len(raw) != stride * height:
        return None
    rows = np.frombuffer(raw, np.uint8).reshape(height, stride)
    alpha = rows[:, 4::4]
    if not ((rows[:, 0] == 2).all() and (alpha[0] == 255).all() and not alpha[1:].any()):
        return None
    return rows.take(_rgb_columns(width), axis=1)


def _png_of_scanlines(scanlines: np.ndarray, width: int, height: int, level: int = PNG_LEVEL) -> EncodedImage:
    data = deflate.zlib_compress(scanlines, level)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")
    return EncodedImage(png, width, height, "png")


def encode_png_libdeflate(rgb: np.ndarray, level: int = PNG_LEVEL) -> EncodedImage:
    """(h, w, 3) uint8 as an RGB PNG: Up filter (renderers.image.filter_rows), deflated by libdeflate.

    Same scanlines as renderers.image.encode_png_fast; libdeflate compresses them to a smaller
    zlib stream at about half zlib's CPU (its output is fixed for a given libdeflate version).
    """
    height, width = rgb.shape[:2]
    return _png_of_scanlines(filter_rows(rgb, "up"), width, height, level)


def text_fragments(texts: list[dict[str, Any]]) -> set[str]:
    """Every drawn line, and both halves of "name: value" lines, as a reader would split them."""
    out: set[str] = set()
    for t in texts:
        line = t["text"]
        out.add(line)
        out.update(part for part in line.split(": ") if part)
    return out


def _flat(labels: list[Any]) -> list[str]:
    flat: list[str] = []
    for item in labels:
        if isinstance(item, list):
            flat.extend(_flat(item))
        elif item is not None:
            flat.extend(str(item).split("\n"))
    return flat


def check_legible(texts: list[dict[str, Any]], labels: list[Any], width: int, height: int) -> None:
    """Raise LayoutError when a text leaves the canvas or a value label was not drawn."""
    for t in texts:
        if t["x"] < -0.5 or t["y"] < -0.5 or t["x"] + t["width"] > width + 0.5 or t["y"] + t["height"] > height + 0.5:
            box = [round(t["x"]), round(t["y"]), round(t["x"] + t["width"]), round(t["y"] + t["height"])]
            raise LayoutError(f"text {t['text']!r} at {box} is clipped by the {width}x{height} canvas")
    drawn = {t["text"] for t in texts}
    missing = [label for label in _flat(labels) if label not in drawn]
    if missing:
        raise LayoutError(f"value label {missing[0]!r} was not drawn ({len(missing)} missing)")


def render_chart(spec: ChartSpec, rng: np.random.Generator, on: Browser | None = None) -> tuple[EncodedImage, dict]:
    """Draw ``spec`` with ECharts; ``rng`` picks the style. Raises RenderError (with ``.reason``) on failure."""
    style = pick_style(spec, rng)
    option, labels = build_option(spec, style)
    image = render_option(option, labels, spec.width, spec.height, style.theme, on=on)
    return image, style.record()


def drawn_texts(on: Browser | None = None) -> list[dict[str, Any]]:
    """The visible text elements of the last chart with their boxes in canvas pixels."""
    return json.loads((on or browser()).call("() => JSON.stringify(window.gotTexts())"))


def close() -> None:
    """Close this worker's browser (the charts engine calls this from its close())."""
    close_shared(BROWSER_KEY)

