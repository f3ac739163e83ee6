"""`got-data run` on a real two-node Ray cluster (127.0.0.1): submitted with `ray job submit`,
and with the worker node stopped in the middle of the run."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import folder_digest
from ray_cluster import RAY, Cluster

from got_data.dag import DagRunner, load_dag

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


def recipe(tmp_path: Path, out: str, delay: float) -> Path:
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump({
        "out": out,
        "shard_size": 4,
        "nodes": {
            "a": {"engine": "toy_engine:Toy", "count": 40, "params": {"delay": delay}},
            "b": {"engine": "toy_engine:Toy", "count": 24, "params": {"delay": delay, "size": 12}, "after": ["a"]},
        },
        "mixtures": {"mix": {"weights": {"a": 1, "b": 1}, "size": 20}},
    }))
    return path


def reference(tmp_path: Path, delay: float) -> Path:
    path = recipe(tmp_path, "reference", delay)
    DagRunner(load_dag(path), workers=0).run(log=lambda _: None)
    return tmp_path / "reference"


def digests(out: Path) -> dict[str, dict[str, str]]:
    return {node: folder_digest(out / node) for node in ("a", "b")}


def test_ray_job_submit_runs_the_dag(tmp_path):
    cluster = Cluster(tmp_path / "ray")
    try:
        cluster.start_head(cpus=1, dashboard=True)
        cluster.add_worker(cpus=1)
        dag = recipe(tmp_path, "submitted", 0.0)
        result = subprocess.run(
            [RAY, "job", "submit", "--address", cluster.dashboard, "--",
             sys.executable, "-m", "got_data.cli", "run", str(dag)],
            capture_output=True, text=True, timeout=600, cwd=ROOT,
        )
        assert result.returncode == 0 and "succeeded" in (result.stdout + result.stderr).lower(), result.stdout[-3000:]
    finally:
        cluster.stop()
    assert digests(tmp_path / "submitted") == digests(reference(tmp_path, 0.0))
    assert (tmp_path / "submitted" / "mixtures" / "mix.json").is_file()


def test_worker_node_stopped_mid_run_then_rerun_is_identical(tmp_path):
    cluster = Cluster(tmp_path / "ray")
    dag = recipe(tmp_path, "disturbed", 0.15)
    cmd = [sys.executable, "-m", "got_data.cli", "run", str(dag)]
    try:
        cluster.start_head(cpus=1)
        worker = cluster.add_worker(cpus=1)
        run = subprocess.Popen([*cmd, "--address", cluster.address], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        index = tmp_path / "disturbed" / "a" / "index.json"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # wait until some shards are recorded, then pull the node
            if index.is_file() and len(json.loads(index.read_text()).get("shards", [])) >= 2:
                break
            time.sleep(0.2)
        worker.stop()
        run.communicate(timeout=600)  # it may finish on the head (retries) or fail: both are fine here
        rerun = subprocess.run([*cmd, "--address", cluster.address], cwd=ROOT, capture_output=True,
                               text=True, timeout=600)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
    finally:
        cluster.stop()
    assert digests(tmp_path / "disturbed") == digests(reference(tmp_path, 0.0 + 0.15))
