"""Filtering, ordering and paging the listings of one or all datasets."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from got_data.viewer.catalog import PREVIEW_CHARS, Dataset, ViewerError


@dataclass(frozen=True)
class Query:
    ds: str = ""  # "" = every dataset
    task: str = ""
    prompt: str = ""  # a prompt group (see catalog.prompt_group)
    q: str = ""  # case-insensitive substring of the target
    order: str = "seq"  # "seq" | "random"
    seed: int = 0
    flagged: bool = False  # only flagged samples

    @classmethod
    def from_params(cls, params: dict[str, str], default_seed: int = 0) -> Query:
        order = params.get("order", "seq")
        if order not in ("seq", "random"):
            raise ViewerError(400, "order must be seq or random")
        try:
            seed = int(params.get("seed") or default_seed)
        except ValueError:
            raise ViewerError(400, "seed must be an integer") from None
        return cls(
            ds=params.get("ds", ""),
            task=params.get("task", ""),
            prompt=params.get("prompt", ""),
            q=params.get("q", "")[:200],
            order=order,
            seed=seed,
            flagged=params.get("flagged", "") in ("1", "true"),
        )


class Browser:
    """Answers list queries; the last results are cached as (dataset, row) arrays so paging is O(page)."""

    def __init__(self, datasets: list[Dataset], cache_size: int = 32) -> None:
        self.datasets = datasets
        self.by_id = {d.id: d for d in datasets}
        self._cache: OrderedDict[Query, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def dataset(self, ident: str) -> Dataset:
        try:
            return self.by_id[ident]
        except KeyError:
            raise ViewerError(404, f"no dataset {ident!r}") from None

    def _selected(self, query: Query) -> list[tuple[int, Dataset]]:
        if query.ds:
            self.dataset(query.ds)
            return [(i, d) for i, d in enumerate(self.datasets) if d.id == query.ds]
        return list(enumerate(self.datasets))

    def _rows(self, query: Query) -> np.ndarray:
        """(dataset number, row) pairs matching the query, in its order."""
        with self._lock:
            if query in self._cache:
                self._cache.move_to_end(query)
                return self._cache[query]
        parts = []
        needle = query.q.casefold()
        for number, dataset in self._selected(query):
            listing = dataset.listing()
            rows = range(len(listing.keys))
            if query.task:
                rows = [r for r in rows if listing.tasks[r] == query.task]
            if query.prompt:
                rows = [r for r in rows if listing.groups[r] == query.prompt]
            if needle:
                rows = [r for r in rows if needle in listing.targets[r].casefold()]
            if query.flagged:
                flagged = dataset.flagged()
                rows = [r for r in rows if listing.keys[r] in flagged]
            found = np.fromiter(rows, dtype=np.int64)
            parts.append(np.stack([np.full(len(found), number, dtype=np.int64), found], axis=1))
        result = np.concatenate(parts) if parts else np.zeros((0, 2), dtype=np.int64)
        if query.order == "random" and len(result):
            result = result[np.random.default_rng(query.seed).permutation(len(result))]
        with self._lock:
            self._cache[query] = result
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def page(self, query: Query, offset: int, limit: int) -> dict[str, Any]:
        rows = self._rows(query)
        offset = max(0, offset)
        limit = max(1, min(limit, 500))
        items = []
        for number, row in rows[offset : offset + limit]:
            dataset = self.datasets[int(number)]
            listing = dataset.listing()
            row = int(row)
            key = listing.keys[row]
            width, height = listing.sizes[row]
            target = listing.targets[row]
            items.append(
                {
                    "ds": dataset.id,
                    "key": key,
                    "task": listing.tasks[row],
                    "prompt": listing.prompts[row],
                    "target": target[:PREVIEW_CHARS],
                    "target_chars": len(target),
                    "width": width,
                    "height": height,
                    "images": listing.n_images[row],
                    "flagged": dataset.is_flagged(key),
                }
            )
        return {"total": int(len(rows)), "offset": offset, "items": items}

    def facets(self, ds: str) -> dict[str, Any]:
        """The tasks and prompt groups present, with counts, for the filter menus."""
        tasks: dict[str, int] = {}
        prompts: dict[str, int] = {}
        for _, dataset in self._selected(Query(ds=ds)):
            listing = dataset.listing()
            for task in listing.tasks:
                tasks[task] = tasks.get(task, 0) + 1
            for group in listing.groups:
                prompts[group] = prompts.get(group, 0) + 1
        return {"tasks": dict(sorted(tasks.items())), "prompts": dict(sorted(prompts.items()))}
