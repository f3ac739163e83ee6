"""Overview statistics of a dataset and small inline SVG plots of them (no JS chart library)."""

from __future__ import annotations

import threading
from collections import Counter
from html import escape
from typing import Any

import numpy as np

from got_data.viewer.catalog import Dataset

TOKEN_SAMPLE = 20_000  # targets tokenised for the token plot: a seeded sample keeps big datasets quick
_ACCENT = "#3b6fd8"


def _fmt(value: float) -> str:
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    if value >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}"


def histogram_svg(values: list[int] | np.ndarray, title: str, unit: str, bins: int = 30, log: bool = False) -> str:
    """A bar histogram; ``log`` uses log-spaced bins for long-tailed values like target length."""
    data = np.asarray(values, dtype=float)
    width, height, pad_l, pad_b, pad_t = 360, 150, 34, 30, 20
    if data.size == 0:
        return _frame(width, height, title, '<text x="50%" y="55%" text-anchor="middle" class="muted">no data</text>')
    lo, hi = float(data.min()), float(data.max())
    if hi <= lo:
        hi = lo + 1
    if log and lo >= 1:
        edges = np.geomspace(lo, hi + 1, bins + 1)
    else:
        edges = np.linspace(lo, hi, bins + 1)
    counts, _ = np.histogram(data, bins=edges)
    top = max(int(counts.max()), 1)
    plot_w, plot_h = width - pad_l - 8, height - pad_b - pad_t
    bar_w = plot_w / bins
    parts = []
    for i, count in enumerate(counts):
        h = plot_h * count / top
        x = pad_l + i * bar_w
        tip = f"{_fmt(edges[i])}–{_fmt(edges[i + 1])} {unit}: {count}"
        parts.append(
            f'<rect x="{x:.1f}" y="{pad_t + plot_h - h:.1f}" width="{max(bar_w - 1, 1):.1f}" height="{h:.1f}" '
            f'fill="{_ACCENT}"><title>{escape(tip)}</title></rect>'
        )
    axis_y = pad_t + plot_h
    parts.append(f'<line x1="{pad_l}" y1="{axis_y}" x2="{width - 8}" y2="{axis_y}" class="axis"/>')
    parts.append(f'<text x="{pad_l}" y="{axis_y + 14}" class="tick">{_fmt(lo)}</text>')
    parts.append(f'<text x="{width - 8}" y="{axis_y + 14}" class="tick" text-anchor="end">{_fmt(hi)}</text>')
    parts.append(f'<text x="{(pad_l + width) / 2}" y="{axis_y + 26}" class="tick" text-anchor="middle">{escape(unit)}</text>')
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 8}" class="tick" text-anchor="end">{_fmt(top)}</text>')
    median = float(np.median(data))
    parts.append(
        f'<text x="{width - 8}" y="{pad_t - 6}" class="tick" text-anchor="end">median {_fmt(round(median, 1))}'
        f" · max {_fmt(hi)}</text>"
    )
    return _frame(width, height, title, "".join(parts))


def bars_svg(counts: dict[str, int], title: str, limit: int = 12) -> str:
    """Horizontal bars for categories (tasks, prompts, image sizes), largest first."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    rest = items[limit:]
    items = items[:limit]
    if rest:
        items.append((f"({len(rest)} more)", sum(c for _, c in rest)))
    row, label_w, width, pad_t = 18, 170, 360, 20
    height = pad_t + row * max(len(items), 1) + 6
    top = max((c for _, c in items), default=1)
    total = sum(counts.values()) or 1
    parts = []
    for i, (label, count) in enumerate(items):
        y = pad_t + i * row
        w = (width - label_w - 60) * count / top
        short = label if len(label) <= 28 else label[:27] + "…"
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" class="label" text-anchor="end">{escape(short)}'
                     f"<title>{escape(label)}</title></text>")
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{max(w, 1):.1f}" height="{row - 5}" fill="{_ACCENT}" rx="2"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" class="tick">{count} · {100 * count / total:.0f}%</text>')
    return _frame(width, height, title, "".join(parts))


def _frame(width: int, height: int, title: str, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img"><text x="0" y="12" class="title">{escape(title)}</text>{body}</svg>'
    )


class Tokenizer:
    """An optional local tokenizer.json (the ``tokenizers`` package); never downloads anything."""

    def __init__(self, path: str) -> None:
        from tokenizers import Tokenizer as _Tok  # optional dependency

        self.path = path
        self._tok = _Tok.from_file(path)

    def count(self, texts: list[str]) -> list[int]:
        return [len(e.ids) for e in self._tok.encode_batch(texts, add_special_tokens=False)]


def load_tokenizer(path: str | None) -> Tokenizer | None:
    if not path:
        return None
    try:
        return Tokenizer(path)
    except ImportError:
        print("got-data view: the 'tokenizers' package is not installed; token plots are omitted")
    except Exception as exc:  # noqa: BLE001 - a bad file only costs the token plot
        print(f"got-data view: cannot load tokenizer {path}: {exc}; token plots are omitted")
    return None


class Overview:
    """Per-dataset statistics and plots, computed once from the listing and cached."""

    def __init__(self, tokenizer: Tokenizer | None = None) -> None:
        self.tokenizer = tokenizer
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def of(self, dataset: Dataset) -> dict[str, Any]:
        with self._lock:
            if dataset.id not in self._cache:
                self._cache[dataset.id] = self._compute(dataset)
            return self._cache[dataset.id]

    def _compute(self, dataset: Dataset) -> dict[str, Any]:
        listing = dataset.listing()
        chars = [len(t) for t in listing.targets]
        sizes = Counter(f"{w}×{h}" for w, h in listing.sizes)
        megapixels = [w * h / 1e6 for w, h in listing.sizes]
        plots = {
            "chars": histogram_svg(chars, "Target length", "characters", log=bool(chars) and max(chars) > 50 * max(min(chars), 1)),
            "tasks": bars_svg(Counter(listing.tasks), "Samples per task"),
            "prompts": bars_svg(Counter(listing.groups), "Samples per prompt"),
        }
        if len(sizes) <= 12:
            plots["sizes"] = bars_svg(sizes, "Image size (width × height)")
        else:
            plots["sizes"] = histogram_svg(megapixels, "Image size", "megapixels")
            plots["widths"] = histogram_svg([w for w, _ in listing.sizes], "Image width", "pixels")
            plots["heights"] = histogram_svg([h for _, h in listing.sizes], "Image height", "pixels")
        if Counter(listing.n_images).keys() - {1}:
            plots["images"] = bars_svg({f"{k} image(s)": v for k, v in Counter(listing.n_images).items()}, "Images per sample")
        stats: dict[str, Any] = {
            "samples": len(chars),
            "chars_median": float(np.median(chars)) if chars else 0,
            "chars_max": max(chars, default=0),
        }
        if self.tokenizer is not None and chars:
            texts = listing.targets
            note = ""
            if len(texts) > TOKEN_SAMPLE:
                pick = np.random.default_rng(0).choice(len(texts), TOKEN_SAMPLE, replace=False)
                texts = [texts[i] for i in pick]
                note = f" (seeded sample of {TOKEN_SAMPLE})"
            tokens = self.tokenizer.count(texts)
            plots["tokens"] = histogram_svg(tokens, "Target length" + note, "tokens", log=max(tokens) > 50 * max(min(tokens), 1))
            stats["tokens_median"] = float(np.median(tokens))
            stats["tokens_max"] = max(tokens)
            stats["tokenizer"] = self.tokenizer.path
        return {"stats": stats, "plots": plots, "errors": dataset.errors(limit=50)}

