"""Engine registry: every module in this package that defines an Engine subclass.

A new engine is one file here; nothing else needs editing. Engines outside the
tree are named ``package.module:ClassName``.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from engines.base import Engine

_SKIP = {"base"}


class UnknownEngine(LookupError):
    pass


@cache
def registry() -> dict[str, type[Engine]]:
    found: dict[str, type[Engine]] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name in _SKIP or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Engine) and obj.__module__ == module.__name__:
                if getattr(obj, "name", None):
                    found[obj.name] = obj
    return dict(sorted(found.items()))


def get_engine(name: str) -> type[Engine]:
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise UnknownEngine(f"cannot load engine {name!r}: {exc}") from None
        if not (isinstance(cls, type) and issubclass(cls, Engine)):
            raise UnknownEngine(f"{name!r} is not an Engine subclass")
        return cls
    engines = registry()
    if name not in engines:
        raise UnknownEngine(f"unknown engine {name!r} (known: {', '.join(engines) or 'none'})")
    return engines[name]
