#!/usr/bin/env bash
# One command for all set-up on a fresh Debian/Ubuntu machine: system packages (apt),
# Python deps in .venv, JS assets from the npm registry; then the main job on built-in
# defaults. `install.sh --no-run` stops after set-up (the test command uses that).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
sudo_cmd=""
[ "$(id -u)" = 0 ] || sudo_cmd="sudo"

mapfile -t packages < <(grep -v '^\s*#' docker/apt-packages.txt | grep -v '^\s*$')
command -v npm >/dev/null || packages+=(nodejs npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv python3-pip)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install.sh: apt-get install ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip
fi
stamp=.venv/.got-data-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -e '.[test]'
  touch "$stamp"
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules
fi

if [ "${1:-}" != "--no-run" ]; then
  # The main job: the whole recipe (every engine, its mixture) at 1/10,000 of the paper's volume.
  .venv/bin/got-data run dag.yaml --scale 0.0001
  for dataset in data/got/*/; do
    [ -f "$dataset/index.json" ] && .venv/bin/got-data validate "$dataset"
  done
fi
