"""The batch loop shared by the TeX engines (formulas, tables, geometry).

A subclass implements ``prepare(position)`` -> ``(TexJob, meta)`` or a Rejection, where
``meta["target"]`` is the sample's target. ``generate`` prepares every position of the
shard, renders all jobs in one ``TexRenderer.render`` call (batched per preamble) and
yields one result per position, in order. The renderer (working folder, formats) lives on
the engine instance and is reused across shards until ``close()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from engines.base import PROMPT_FORMAT, Engine, Rejection, Result, Sample
from renderers.tex import TexJob, TexLimits, TexRenderer


class TexBatchEngine(Engine):
    task: ClassVar[str] = ""

    def limits(self) -> TexLimits:
        return TexLimits()

    @staticmethod
    def check_style_params(params: dict[str, Any], fonts: Iterable[str]) -> None:
        """The font list and dpi range shared by the TeX engines; ValueError names the bad value."""
        known = list(fonts)
        chosen = [f.strip() for f in params["fonts"].split(",") if f.strip()]
        unknown = [f for f in chosen if f not in known]
        if unknown or not chosen:
            raise ValueError(f"unknown font {unknown[0] if unknown else '(none)'}; known: {', '.join(known)}")
        if params["dpi_min"] > params["dpi_max"]:
            raise ValueError("dpi_min is larger than dpi_max")

    def _renderer(self) -> TexRenderer:
        if "_tex" not in self.__dict__:
            self._tex = TexRenderer(self.limits())
        return self._tex

    def close(self) -> None:
        if "_tex" in self.__dict__:
            self._tex.close()
            del self._tex

    def prepare(self, position: int) -> tuple[TexJob, dict[str, Any]] | Rejection:
        raise NotImplementedError

    def generate(self, positions: Sequence[int]) -> Iterable[Result]:
        prepared: list[tuple[TexJob, dict[str, Any]] | Rejection] = []
        for position in positions:
            try:
                prepared.append(self.prepare(position))
            except Exception as exc:  # noqa: BLE001 - reported as a value
                prepared.append(Rejection("engine_error", f"{type(exc).__name__}: {exc}"))
        jobs = [p[0] for p in prepared if not isinstance(p, Rejection)]
        try:
            images = iter(self._renderer().render(jobs))
        except Exception as exc:  # noqa: BLE001 - a broken TeX set-up fails the positions, not the worker
            images = iter([Rejection("engine_error", f"{type(exc).__name__}: {exc}")] * len(jobs))
        for p in prepared:
            if isinstance(p, Rejection):
                yield p
                continue
            job, meta = p
            image = next(images)
            if isinstance(image, Rejection):
                yield image
                continue
            meta = dict(meta)
            target = meta.pop("target")
            yield Sample(task=self.task, prompt=PROMPT_FORMAT, target=target, images=[image], source=job.source, meta=meta)
