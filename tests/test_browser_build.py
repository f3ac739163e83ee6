"""No Chromium outlives a build: not when the build is SIGKILLed, not when a Ray worker is.

Every process of a test build carries a unique environment marker (Ray workers and Chromium
inherit the environment), so the test counts only its own processes even with other tests
running browsers at the same time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from helpers import build_dataset, folder_digest

ROOT = Path(__file__).resolve().parents[1]
MARK = "GOT_DATA_TEST_BUILD"
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


def marked(run: str, name: str | None = None) -> list[int]:
    """Pids of live processes with our marker (and ``name`` in their command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and f"{MARK}={run}".encode() in environ.split(b"\0"):
            if name is None or name.encode() in cmdline:
                found.append(int(entry.name))
    return found


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.3)
    return False


def start_build(out: Path, run: str) -> subprocess.Popen:
    env = {**os.environ, MARK: run}
    cmd = [sys.executable, "-m", "got_data.cli", "build", "charts", "--n", "60", "--shard-size", "6",
           "--workers", "2", "--param", "echarts_share=1", "--out", str(out), "--quiet"]
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigkill_of_the_build_leaves_no_chromium(tmp_path):
    run = uuid.uuid4().hex
    build = start_build(tmp_path / "ds", run)
    try:
        assert wait_for(lambda: marked(run, "chrom"), 180), "no browser started"
        build.send_signal(signal.SIGKILL)
        build.wait()
        assert wait_for(lambda: not marked(run, "chrom"), 60), f"Chromium outlived the build: {marked(run, 'chrom')}"
        # Ray's own processes for this build go too, so nothing keeps a browser alive later
        assert wait_for(lambda: not marked(run), 90), f"processes outlived the build: {marked(run)}"
    finally:
        for pid in marked(run):
            os.kill(pid, signal.SIGKILL)


def test_killed_ray_worker_takes_its_chromium_and_the_build_still_completes(tmp_path):
    run = uuid.uuid4().hex
    out = tmp_path / "ds"
    build = start_build(out, run)
    try:
        assert wait_for(lambda: marked(run, "chrom"), 180), "no browser started"
        workers = marked(run, "ray::_remote_build")  # a Ray worker running a shard task
        assert workers, "no Ray worker found"
        victim = next((w for w in workers if descendants(w) & set(marked(run, "chrom"))), workers[0])
        its_browser = descendants(victim) & set(marked(run, "chrom"))
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: not its_browser & set(marked(run, "chrom")), 30), "Chromium outlived its worker"
        output, _ = build.communicate(timeout=600)
        assert build.returncode == 0, output[-3000:]
        assert wait_for(lambda: not marked(run, "chrom"), 60), "Chromium outlived the finished build"
    finally:
        if build.poll() is None:
            build.kill()
        for pid in marked(run):
            os.kill(pid, signal.SIGKILL)
    build_dataset("charts", tmp_path / "inline", n=60, shard_size=6, params={"echarts_share": 1})
    assert folder_digest(out) == folder_digest(tmp_path / "inline")
