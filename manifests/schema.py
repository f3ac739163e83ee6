"""The versioned record schemas of a dataset: manifest lines, error lines and the index.

Bump SCHEMA_VERSION on any change a reader would notice; readers refuse versions
they do not know rather than guess.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema

SCHEMA_VERSION = 1
SAMPLE_SCHEMA_ID = f"got-data/sample/{SCHEMA_VERSION}"
ERROR_SCHEMA_ID = f"got-data/error/{SCHEMA_VERSION}"
INDEX_SCHEMA_ID = f"got-data/index/{SCHEMA_VERSION}"

_HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
_KEY = {"type": "string", "pattern": r"^[A-Za-z0-9_\-]+$"}  # no dots: WebDataset splits keys at the first dot

IMAGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["name", "offset", "size", "width", "height", "sha256"],
    "properties": {
        "name": {"type": "string"},
        "offset": {"type": "integer", "minimum": 0},
        "size": {"type": "integer", "minimum": 1},
        "width": {"type": "integer", "minimum": 1},
        "height": {"type": "integer", "minimum": 1},
        "sha256": _HEX64,
    },
    "additionalProperties": False,
}

SAMPLE_SCHEMA: dict[str, Any] = {
    "$id": SAMPLE_SCHEMA_ID,
    "type": "object",
    "required": ["schema", "key", "engine", "engine_version", "shard", "position", "task", "prompt", "target", "images"],
    "properties": {
        "schema": {"const": SAMPLE_SCHEMA_ID},
        "key": _KEY,
        "engine": {"type": "string"},
        "engine_version": {"type": "string"},
        "shard": {"type": "integer", "minimum": 0},
        "position": {"type": "integer", "minimum": 0},
        "task": {"type": "string", "minLength": 1},
        "prompt": {"type": "string"},
        "target": {"type": "string", "minLength": 1},
        "images": {"type": "array", "minItems": 1, "items": IMAGE_SCHEMA},
        "boxes": {
            "type": ["array", "null"],
            "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4},
        },
        "colors": {"type": ["array", "null"], "items": {"type": "string"}},
        "source": {"type": ["string", "null"]},
        "meta": {"type": "object"},
    },
    "additionalProperties": False,
}

ERROR_SCHEMA: dict[str, Any] = {
    "$id": ERROR_SCHEMA_ID,
    "type": "object",
    "required": ["schema", "engine", "shard", "position", "reason", "detail"],
    "properties": {
        "schema": {"const": ERROR_SCHEMA_ID},
        "engine": {"type": "string"},
        "shard": {"type": "integer", "minimum": 0},
        "position": {"type": "integer", "minimum": 0},
        "reason": {"type": "string", "minLength": 1},
        "detail": {"type": "string"},
        "source": {"type": ["string", "null"]},
    },
    "additionalProperties": False,
}

_FILE = {
    "type": "object",
    "required": ["name", "bytes", "sha256"],
    "properties": {"name": {"type": "string"}, "bytes": {"type": "integer"}, "sha256": _HEX64},
}

INDEX_SCHEMA: dict[str, Any] = {
    "$id": INDEX_SCHEMA_ID,
    "type": "object",
    "required": ["schema", "engine", "engine_version", "params", "seed", "shard_size", "n", "inputs", "shards", "totals"],
    "properties": {
        "schema": {"const": INDEX_SCHEMA_ID},
        "engine": {"type": "string"},
        "engine_version": {"type": "string"},
        "params": {"type": "object"},
        "seed": {"type": "integer"},
        "shard_size": {"type": "integer", "minimum": 1},
        "n": {"type": "integer", "minimum": 1},
        "inputs": {"type": "array", "items": {"type": "string"}},
        "inputs_sha256": _HEX64,
        "config_sha256": _HEX64,
        "shards": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["index", "start", "stop", "samples", "errors", "files"],
                "properties": {
                    "index": {"type": "integer"},
                    "start": {"type": "integer"},
                    "stop": {"type": "integer"},
                    "samples": {"type": "integer"},
                    "errors": {"type": "integer"},
                    "files": {
                        "type": "object",
                        "required": ["tar", "manifest", "errors"],
                        "properties": {"tar": _FILE, "manifest": _FILE, "errors": _FILE},
                    },
                },
            },
        },
        "totals": {"type": "object"},
    },
}


@cache
def _validator(schema_id: str) -> jsonschema.protocols.Validator:
    schema = {SAMPLE_SCHEMA_ID: SAMPLE_SCHEMA, ERROR_SCHEMA_ID: ERROR_SCHEMA, INDEX_SCHEMA_ID: INDEX_SCHEMA}[schema_id]
    return jsonschema.Draft202012Validator(schema)


def schema_errors(record: dict[str, Any], schema_id: str) -> list[str]:
    """Human-readable schema violations of ``record`` (empty when valid)."""
    found = _validator(schema_id).iter_errors(record)
    return [f"{'/'.join(map(str, e.absolute_path)) or '<record>'}: {e.message}" for e in found]
