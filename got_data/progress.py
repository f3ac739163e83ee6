"""Build progress: a live bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    def __init__(self, total: int, label: str, stream: TextIO | None = None, interval: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.total = total
        self.label = label
        self.interval = interval
        self.done = self.samples = self.errors = 0
        self.started = time.monotonic()
        self._last_log = 0.0
        self._bar = None
        if self.stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="pos", file=self.stream, dynamic_ncols=True)

    def advance(self, receipt: dict[str, Any]) -> None:
        step = receipt["stop"] - receipt["start"]
        self.done += step
        self.samples += receipt["samples"]
        self.errors += receipt["errors"]
        if self._bar is not None:
            self._bar.update(step)
            self._bar.set_postfix(samples=self.samples, errors=self.errors, refresh=False)
            return
        now = time.monotonic()
        if now - self._last_log >= self.interval or self.done >= self.total:
            self._last_log = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        eta_text = f"{eta:.0f}s" if eta != float("inf") else "?"
        return (
            f"[{self.label}] {self.done}/{self.total} positions, {self.samples} samples, "
            f"{self.errors} errors, {rate:.1f}/s, ETA {eta_text}"
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
