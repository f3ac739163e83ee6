#!/usr/bin/env bash
# The test command: makes sure set-up is done (idempotent, quick when it is), then lint and tests.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
bash install.sh --no-run
.venv/bin/ruff check .
export MPLCONFIGDIR="${MPLCONFIGDIR:-$PWD/.cache/matplotlib}"
.venv/bin/python -m pytest -n 2 --dist loadgroup -q -p no:cacheprovider "$@"
