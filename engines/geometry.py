"""Procedural TikZ geometry figures from the seed; the target is the TikZ source itself.

A figure is either a *shapes* scene (2-4 shapes, each in its own cell of a grid so shapes
and their labels never collide: circles, rectangles, triangles with labelled vertices and
an angle mark, regular polygons, segments with end points, arcs) or a *plot* scene (axes
with ticks, one or two function curves drawn with ``\\draw plot``, labelled points on
them). Every coordinate is written out as a number, so the target compiles on its own
with just ``\\usepackage{tikz}`` and gives the same picture (the tests check the pixels).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from engines.base import Param, Rejection
from renderers.tex import Preamble, TexJob, TexLimits
from renderers.tex_engine import TexBatchEngine

PREAMBLE = Preamble(fixed="\\usepackage{tikz}")
COLORS = ("black", "blue", "red", "green!50!black", "orange!90!black", "violet", "teal", "gray", "brown")
WIDTHS = ("thin", "semithick", "thick", "very thick", "line width=0.6pt", "line width=1.2pt")
DASHES = ("", "", "", "dashed", "dotted", "densely dashed", "dash dot", "loosely dashed")
FILLS = ("", "", "", "blue!10", "red!10", "green!10", "yellow!20", "gray!15")
LETTERS = "ABCDEFGHKLMNOPQRSTUVW"


def num(x: float) -> str:
    """A coordinate as TikZ will read it: at most 2 decimals, no trailing zeros, no '-0'."""
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def pt(x: float, y: float) -> str:
    return f"({num(x)},{num(y)})"


def _style(rng: np.random.Generator, fill: bool = False) -> str:
    parts = [COLORS[int(rng.integers(len(COLORS)))], WIDTHS[int(rng.integers(len(WIDTHS)))]]
    dash = DASHES[int(rng.integers(len(DASHES)))]
    if dash:
        parts.append(dash)
    if fill:
        f = FILLS[int(rng.integers(len(FILLS)))]
        if f:
            parts.append(f"fill={f}")
    return ", ".join(parts)


class _Letters:
    def __init__(self, rng: np.random.Generator) -> None:
        self.order = [LETTERS[i] for i in rng.permutation(len(LETTERS))]

    def next(self) -> str:
        return self.order.pop()


def _label(x: float, y: float, cx: float, cy: float, name: str) -> str:
    """A vertex label pushed 0.3 away from the shape's centre, so it sits outside the shape."""
    dx, dy = x - cx, y - cy
    d = math.hypot(dx, dy) or 1.0
    return f"\\node at {pt(x + 0.3 * dx / d, y + 0.3 * dy / d)} {{${name}$}};"


def _triangle(rng, cx, cy, w, h, letters) -> list[str]:
    while True:
        p = [(cx + rng.uniform(-w, w) / 2, cy + rng.uniform(-h, h) / 2) for _ in range(3)]
        p = [(round(x, 2), round(y, 2)) for x, y in p]
        sides = [math.dist(p[i], p[(i + 1) % 3]) for i in range(3)]
        area = abs((p[1][0] - p[0][0]) * (p[2][1] - p[0][1]) - (p[2][0] - p[0][0]) * (p[1][1] - p[0][1])) / 2
        if min(sides) > 1.2 and area > 0.35 * w * h * 0.5:
            break
    gx, gy = sum(x for x, _ in p) / 3, sum(y for _, y in p) / 3
    out = [f"\\draw[{_style(rng, fill=True)}] {pt(*p[0])} -- {pt(*p[1])} -- {pt(*p[2])} -- cycle;"]
    names = [letters.next() for _ in range(3)]
    out += [_label(x, y, gx, gy, n) for (x, y), n in zip(p, names, strict=True)]
    # Angle mark at a random vertex: the arc sweeps the interior angle (< 180 degrees).
    k = int(rng.integers(3))
    (bx, by), a, c = p[k], p[(k + 1) % 3], p[(k + 2) % 3]
    a1 = math.degrees(math.atan2(a[1] - by, a[0] - bx))
    a2 = math.degrees(math.atan2(c[1] - by, c[0] - bx))
    sweep = (a2 - a1) % 360
    if sweep > 180:
        a1, sweep = a2, 360 - sweep
    a1 = round(a1)
    r = 0.35
    out.append(f"\\draw[{COLORS[int(rng.integers(len(COLORS)))]}] {pt(bx, by)} ++({a1}:{num(r)}) "
               f"arc ({a1}:{a1 + round(sweep)}:{num(r)});")  # fmt: skip
    return out


def _circle(rng, cx, cy, w, h, letters) -> list[str]:
    r = round(float(rng.uniform(0.5, min(w, h) / 2)), 2)
    name = letters.next()
    out = [f"\\draw[{_style(rng, fill=True)}] {pt(cx, cy)} circle ({num(r)});",
           f"\\fill {pt(cx, cy)} circle (1.5pt) node[below right] {{${name}$}};"]  # fmt: skip
    if rng.random() < 0.6:  # a radius to a labelled point on the circle
        ang = float(rng.uniform(0, 360))
        qx, qy = cx + r * math.cos(math.radians(ang)), cy + r * math.sin(math.radians(ang))
        out.append(f"\\draw {pt(cx, cy)} -- {pt(qx, qy)};")
        out.append(_label(qx, qy, cx, cy, letters.next()))
    return out


def _rectangle(rng, cx, cy, w, h, letters) -> list[str]:
    rw, rh = float(rng.uniform(1.2, w)), float(rng.uniform(1.0, h))
    x0, y0, x1, y1 = cx - rw / 2, cy - rh / 2, cx + rw / 2, cy + rh / 2
    out = [f"\\draw[{_style(rng, fill=True)}] {pt(x0, y0)} rectangle {pt(x1, y1)};"]
    if rng.random() < 0.7:
        for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1)):
            out.append(_label(x, y, cx, cy, letters.next()))
    return out


def _polygon(rng, cx, cy, w, h, letters) -> list[str]:
    n = int(rng.integers(5, 9))
    r = float(rng.uniform(0.7, min(w, h) / 2))
    rot = float(rng.uniform(0, 360 / n))
    p = [(cx + r * math.cos(math.radians(rot + 360 * i / n)), cy + r * math.sin(math.radians(rot + 360 * i / n)))
         for i in range(n)]  # fmt: skip
    out = [f"\\draw[{_style(rng, fill=True)}] " + " -- ".join(pt(x, y) for x, y in p) + " -- cycle;"]
    if n <= 6 and rng.random() < 0.6:
        out += [_label(x, y, cx, cy, letters.next()) for x, y in p]
    return out


def _segment(rng, cx, cy, w, h, letters) -> list[str]:
    ang = float(rng.uniform(0, 180))
    half = float(rng.uniform(0.6, 0.5 * min(w / abs(math.cos(math.radians(ang)) + 1e-9),
                                            h / abs(math.sin(math.radians(ang)) + 1e-9), 2 * w)))  # fmt: skip
    half = min(half, w / 2, h / 2 + 0.5)
    dx, dy = half * math.cos(math.radians(ang)), half * math.sin(math.radians(ang))
    a, b = (cx - dx, cy - dy), (cx + dx, cy + dy)
    out = [f"\\draw[{_style(rng)}] {pt(*a)} -- {pt(*b)};"]
    for x, y in (a, b):
        out.append(f"\\fill {pt(x, y)} circle (1.5pt);")
        out.append(_label(x, y, cx, cy, letters.next()))
    return out


def _arc(rng, cx, cy, w, h, letters) -> list[str]:
    r = float(rng.uniform(0.6, min(w, h) / 2))
    start = int(rng.integers(0, 360))
    sweep = int(rng.integers(60, 300))
    sx, sy = cx + r * math.cos(math.radians(start)), cy + r * math.sin(math.radians(start))
    return [f"\\draw[{_style(rng)}] {pt(sx, sy)} arc ({start}:{start + sweep}:{num(r)});"]


SHAPES = (_triangle, _circle, _rectangle, _polygon, _segment, _arc)


def shapes_scene(rng: np.random.Generator) -> list[str]:
    cols, rows = (2, 2) if rng.random() < 0.6 else (3, 2)
    cell_w, cell_h = 3.6, 3.0
    cells = rng.permutation(cols * rows)[: int(rng.integers(2, min(4, cols * rows) + 1))]
    letters = _Letters(rng)
    out: list[str] = []
    for c in sorted(int(c) for c in cells):
        cx, cy = (c % cols + 0.5) * cell_w, (c // cols + 0.5) * cell_h
        make = SHAPES[int(rng.integers(len(SHAPES)))]
        # The usable box leaves 0.5 cm each side for labels: neighbours' labels never meet.
        out += make(rng, cx, cy, cell_w - 1.2, cell_h - 1.2, letters)
    return out


FUNCTIONS = (
    ("{a}*sin(\\x*{b} r)", lambda x, a, b: a * np.sin(x * b)),
    ("{a}*cos(\\x*{b} r)", lambda x, a, b: a * np.cos(x * b)),
    ("{a}*(\\x)^2+{b}", lambda x, a, b: a * x**2 + b),
    ("{a}*(\\x)^3+{b}*\\x", lambda x, a, b: a * x**3 + b * x),
    ("{a}*\\x+{b}", lambda x, a, b: a * x + b),
    ("{a}*exp(\\x*{b})", lambda x, a, b: a * np.exp(x * b)),
)


def plot_scene(rng: np.random.Generator) -> list[str]:
    xr, yr = float(rng.integers(3, 6)), float(rng.integers(2, 4))
    axes = [f"\\draw[->] {pt(-xr - 0.3, 0)} -- {pt(xr + 0.3, 0)} node[right] {{$x$}};",
            f"\\draw[->] {pt(0, -yr - 0.3)} -- {pt(0, yr + 0.3)} node[above] {{$y$}};"]  # fmt: skip
    with_ticks = rng.random() < 0.7
    letters = _Letters(rng)
    curves: list[str] = []
    drawn: list[tuple[np.ndarray, np.ndarray]] = []  # sampled curves, to keep labels off them
    points: list[tuple[float, float]] = []
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(len(FUNCTIONS)))
        expr, fn = FUNCTIONS[k]
        a = round(float(rng.uniform(0.3, 1.5)) * (1 if rng.random() < 0.7 else -1), 2)
        b = round(float(rng.uniform(0.4, 1.5)), 2) if k in (0, 1, 5) else round(float(rng.uniform(-1, 1)), 2)
        # Domain: the part of [-xr, xr] where the curve stays within [-yr, yr] (so inside the axes).
        xs = np.linspace(-xr, xr, 401)
        ok = np.abs(fn(xs, a, b)) <= yr
        if ok.sum() < 40:
            continue
        best = max(np.split(np.flatnonzero(ok), np.flatnonzero(np.diff(np.flatnonzero(ok)) > 1) + 1), key=len)
        x0, x1 = math.ceil(xs[best[0]] * 10) / 10, math.floor(xs[best[-1]] * 10) / 10
        if x1 - x0 < 1:
            continue
        e = expr.format(a=num(a), b=num(b)).replace("+-", "-")
        # pgfmath costs ~1.5 ms per sample in TeX; with `smooth`, 12-20 samples over these short domains
        # draw the same curve as 60.
        samples = int(rng.choice([12, 16, 20]))
        # Thin dotted curves almost vanish at low resolution: dotted only from semithick up.
        style = _style(rng).replace("thin, dotted", "thin, dashed")
        curves.append(f"\\draw[{style}, domain={num(x0)}:{num(x1)}, smooth, samples={samples}, variable=\\x] "
                      f"plot ({{\\x}}, {{{e}}});")  # fmt: skip
        cx = np.linspace(x0, x1, 200)
        drawn.append((cx, fn(cx, a, b)))
        if rng.random() < 0.6:
            px = round(float(rng.uniform(x0, x1)), 1)
            py = float(fn(np.array([px]), a, b)[0])
            # A labelled point keeps clear of the axes and of other labelled points.
            if abs(px) > 0.7 and abs(py) > 0.5 and all(math.dist((px, py), q) > 1.5 for q in points):
                points.append((px, py))
                curves.append(f"\\fill {pt(px, py)} circle (1.5pt) node[above right] {{${letters.next()}$}};")
    ticks: list[str] = []
    if with_ticks:  # integer ticks; every other one labelled (numbers never touch), unless a curve is there
        for t in range(1, int(xr) + 1):
            for s in (-t, t):
                near = any(((np.abs(cx - s) < 0.45) & (cy < 0.1) & (cy > -0.75)).any() for cx, cy in drawn)
                lab = f" node[below] {{${s}$}}" if t % 2 == 0 and not near else ""
                ticks.append(f"\\draw {pt(s, 0.08)} -- {pt(s, -0.08)}{lab};")
    return axes + ticks + curves


def tikz_figure(rng: np.random.Generator) -> str:
    lines = plot_scene(rng) if rng.random() < 0.35 else shapes_scene(rng)
    scale = num(float(rng.choice([0.8, 0.9, 1.0, 1.1])))
    opts = f"[scale={scale}]" if scale != "1" else ""
    return f"\\begin{{tikzpicture}}{opts}\n" + "\n".join(lines) + "\n\\end{tikzpicture}"


class Geometry(TexBatchEngine):
    name = "geometry"
    task = "geometry"
    version = "1"
    description = "procedural TikZ geometry (shapes, angle marks, function plots); the TikZ source as target"
    inputs = "none"
    params = (
        Param("dpi_min", 100, "lowest raster resolution", int, minimum=50, maximum=600),
        Param("dpi_max", 200, "highest raster resolution", int, minimum=50, maximum=600),
        Param("batch", 100, "figures per TeX run", int, minimum=1, maximum=1000),
    )

    def limits(self) -> TexLimits:
        return TexLimits(max_width_pt=600, max_height_pt=600, batch_size=self.p["batch"])

    def prepare(self, position: int) -> tuple[TexJob, dict[str, Any]] | Rejection:
        rng = self.rng(position)
        tikz = tikz_figure(rng)
        dpi = int(rng.integers(self.p["dpi_min"], self.p["dpi_max"] + 1))
        margin = int(rng.integers(8, 41))
        return geometry_job(tikz, dpi, margin, f"seed-position:{position}")


def geometry_job(tikz: str, dpi: int, margin: int, source: str | None) -> tuple[TexJob, dict[str, Any]]:
    job = TexJob(body=tikz, preamble=PREAMBLE, dpi=dpi, margin_px=margin, gray=False, source=source)
    return job, {"target": tikz, "dpi": dpi, "margin": margin}
