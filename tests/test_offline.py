"""Every engine builds with the network gone: run in a fresh network namespace (`unshare -n`),
where not even a DNS lookup can leave the machine."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import samples

from engines import registry

ROOT = Path(__file__).resolve().parents[1]
PDFS = ROOT / "examples" / "pdfs"

# Engines that need inputs get a small real one; the rest run on built-in defaults.
EXTRA = {
    "pdf": ["--input", str(PDFS / "plumber__scotus-transcript-p1.pdf")],
    "finegrained": ["--input", str(PDFS / "plumber__scotus-transcript-p1.pdf")],
}
RUNS = [(name, EXTRA.get(name, [])) for name in registry()]
if "charts" in registry():
    RUNS += [("charts", ["--param", "echarts_share=1"]), ("charts", ["--param", "echarts_share=0"])]


def _netns_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True)
    return probe.returncode == 0


pytestmark = pytest.mark.skipif(not _netns_works(), reason="needs unshare -n (root or user namespaces)")


def test_namespace_really_has_no_network():
    code = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=3)"
    result = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0 and "unreachable" in result.stderr.lower()


@pytest.mark.parametrize("engine, extra", RUNS, ids=[f"{n}{'-' + e[-1] if e and e[0] == '--param' else ''}" for n, e in RUNS])
def test_engine_builds_offline(tmp_path, engine, extra):
    out = tmp_path / "ds"
    cmd = [sys.executable, "-m", "got_data.cli", "build", engine, "--n", "3", "--workers", "0", "--quiet",
           "--out", str(out), *extra]
    result = subprocess.run(["unshare", "-n", *cmd], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert samples(out), f"{engine} built no sample offline: {(out / 'shard-000000.errors.jsonl').read_text()[:2000]}"
