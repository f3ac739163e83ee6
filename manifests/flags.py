"""The viewer's flags file: DATASET/flags.jsonl, one ``{"key": ..., "flagged": true|false}`` per line.

Append-only so a crash never loses earlier flags; the last record of a key wins, which
is how a sample is unflagged. Exports read it with :func:`load_flags`.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

from manifests.storage import Storage

FLAGS_NAME = "flags.jsonl"
_WRITE_LOCK = threading.Lock()


def _records(storage: Storage) -> list[dict[str, Any]]:
    if not storage.exists(FLAGS_NAME):
        return []
    out = []
    for line in storage.read_text(FLAGS_NAME).splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from a killed process: ignore it, keep the rest
        if isinstance(record, dict) and isinstance(record.get("key"), str):
            out.append(record)
    return out


def flag_state(dataset_dir: str) -> dict[str, bool]:
    """Every key ever flagged or unflagged, with its current state (last record wins)."""
    state: dict[str, bool] = {}
    for record in _records(Storage(str(dataset_dir))):
        state[record["key"]] = bool(record.get("flagged", True))
    return state


def load_flags(dataset_dir: str) -> set[str]:
    """Keys of the samples currently flagged in ``dataset_dir`` (empty when there is no flags file)."""
    return {key for key, flagged in flag_state(dataset_dir).items() if flagged}


def append_flag(dataset_dir: str, key: str, flagged: bool) -> None:
    """Record one flag change. Local folders only: one O_APPEND write per line keeps lines whole."""
    storage = Storage(str(dataset_dir))
    if not storage.is_local:
        raise ValueError("flags can only be written to a local dataset folder")
    line = (json.dumps({"key": key, "flagged": bool(flagged)}, sort_keys=True, separators=(",", ":")) + "\n").encode()
    with _WRITE_LOCK:
        fd = os.open(storage.path(FLAGS_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
