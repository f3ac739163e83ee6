"""The contract every engine implements.

An engine turns positions into samples. A sample is a pure function of
(engine, params, seed, position): ``Engine.rng(position)`` is the only source of
randomness an engine may use, and ``generate`` must yield exactly one result,
a :class:`Sample` or a :class:`Rejection`, per position, in order.

Engines that read inputs (PDFs, SMILES, kern...) list them once on the driver in
``plan``, returning small JSON-able *units*; every worker gets the same units, so a
position can be mapped to a unit without any shared state.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

PROMPT_OCR = "OCR: "
PROMPT_FORMAT = "OCR with format: "
PROMPT_MULTI_CROP = "OCR with format upon the patch reference: "
PROMPT_MULTI_PAGE = "OCR with format across multi pages: "


class ParamError(ValueError):
    """A --param value that does not fit its declaration."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Param:
    """One engine setting, given on the command line as ``--param name=value``."""

    name: str
    default: Any
    help: str
    type: type = str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def parse(self, raw: Any) -> Any:
        value = self._coerce(raw)
        if self.choices is not None and value not in self.choices:
            raise ParamError(f"--param {self.name}={raw!r}: expected one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and value < self.minimum:
            raise ParamError(f"--param {self.name}={raw!r}: must be >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise ParamError(f"--param {self.name}={raw!r}: must be <= {self.maximum}")
        return value

    def _coerce(self, raw: Any) -> Any:
        if not isinstance(raw, str):
            if self.type is float and isinstance(raw, int) and not isinstance(raw, bool):
                return float(raw)
            if isinstance(raw, self.type):
                return raw
            raw = str(raw)
        try:
            if self.type is bool:
                low = raw.strip().lower()
                if low in _TRUE:
                    return True
                if low in _FALSE:
                    return False
                raise ValueError(raw)
            return self.type(raw)
        except ValueError:
            raise ParamError(f"--param {self.name}={raw!r}: expected {self.type.__name__}") from None


@dataclass(frozen=True)
class EncodedImage:
    """An image already encoded to bytes (PNG unless ``ext`` says otherwise)."""

    data: bytes
    width: int
    height: int
    ext: str = "png"


@dataclass
class Sample:
    """One image-text pair. ``boxes`` are pixel boxes [x1, y1, x2, y2] on ``images[0]``."""

    task: str
    prompt: str
    target: str
    images: list[EncodedImage]
    source: str | None = None
    boxes: list[list[int]] | None = None
    colors: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rejection:
    """An input or position that produced no sample, with a stable reason code."""

    reason: str
    detail: str = ""
    source: str | None = None


Result = Sample | Rejection


BUILTIN_DATA = Path(__file__).resolve().parent / "data"


def source_name(path: str | Path) -> str:
    """How an input file is named in units and manifests.

    Built-in sets become ``builtin:NAME`` so a dataset's bytes do not depend on where got-data
    is installed; other inputs keep the name the user gave.
    """
    text = str(path)
    if "://" in text:
        return text
    resolved = Path(text).resolve()
    if resolved.is_relative_to(BUILTIN_DATA):
        return f"builtin:{resolved.relative_to(BUILTIN_DATA).as_posix()}"
    return text


def stable_hash(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj``: used for config and input fingerprints."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class Engine:
    """Base class of all engines. Subclasses set the class variables and ``generate``/``sample``.

    One instance lives per worker process and per dataset configuration; renderer
    state that is expensive to create belongs in lazily built attributes or in the
    renderer modules' per-worker caches, never in module globals of the engine.
    """

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    description: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    # "none": procedural only; "optional": built-in defaults when no --input; "required".
    inputs: ClassVar[str] = "none"

    def __init__(self, params: dict[str, Any], seed: int, units: Sequence[Any] = ()) -> None:
        self.p = params
        self.seed = seed
        self.units = units

    # -- driver side ---------------------------------------------------------
    @classmethod
    def resolve_params(cls, given: dict[str, Any]) -> dict[str, Any]:
        """Defaults overlaid with ``given``; unknown names are an error."""
        declared = {p.name: p for p in cls.params}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            known = ", ".join(sorted(declared)) or "none"
            raise ParamError(f"engine {cls.name!r} has no parameter {unknown[0]!r} (known: {known})")
        return {name: p.parse(given[name]) if name in given else p.default for name, p in declared.items()}

    @classmethod
    def plan(cls, inputs: list[str], params: dict[str, Any]) -> list[Any]:
        """List the units of work in ``inputs`` (driver side, deterministic order)."""
        return []

    # -- worker side ---------------------------------------------------------
    def rng(self, position: int, *salt: int) -> np.random.Generator:
        """The random generator of one position: a pure function of (seed, position, salt)."""
        return np.random.default_rng([self.seed & 0xFFFFFFFF, self.seed >> 32, position, *salt])

    def unit(self, position: int) -> tuple[Any, int]:
        """The input unit for ``position`` and which pass over the units this is.

        Units are visited in a seeded order; once all have been used the next pass
        starts with a fresh order, so engines can vary the rendering per pass.
        """
        if not self.units:
            raise ValueError(f"engine {self.name} has no input units")
        epoch, offset = divmod(position, len(self.units))
        cache = self.__dict__.setdefault("_unit_orders", {})
        if epoch not in cache:
            cache.clear()  # positions of a shard are contiguous: one or two epochs live at once
            cache[epoch] = np.random.default_rng([self.seed & 0xFFFFFFFF, epoch, 0x5EED]).permutation(len(self.units))
        return self.units[int(cache[epoch][offset])], epoch

    def generate(self, positions: Sequence[int]) -> Iterable[Result]:
        """One result per position, in order. Batched engines override this.

        An exception from ``sample`` becomes a rejection, so one bad input never
        costs the rest of the shard.
        """
        for position in positions:
            try:
                yield self.sample(position)
            except Exception as exc:  # noqa: BLE001 - reported as a value in errors.jsonl
                yield Rejection("engine_error", f"{type(exc).__name__}: {exc}")

    def sample(self, position: int) -> Result:
        raise NotImplementedError(f"engine {self.name} implements neither sample() nor generate()")

    def close(self) -> None:
        """Release renderer resources (browsers, temp folders). Called when a worker retires."""


def iter_results(engine: Engine, positions: Sequence[int]) -> Iterator[tuple[int, Result]]:
    """Pair each position with its result; an engine that yields too few or too many is a bug."""
    results = iter(engine.generate(positions))
    for position in positions:
        try:
            result = next(results)
        except StopIteration:
            raise RuntimeError(f"engine {engine.name} yielded fewer results than positions") from None
        yield position, result
    if next(results, None) is not None:
        raise RuntimeError(f"engine {engine.name} yielded more results than positions")
