"""Builds on real Ray: a local Ray and a two-node cluster on 127.0.0.1 joined with `ray start`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import build_dataset, folder_digest
from ray_cluster import Cluster

TOY = "toy_engine:Toy"
ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("ray"))
    try:
        c.start_head(cpus=1)
        c.add_worker(cpus=1)
        yield c
    finally:
        c.stop()


def test_local_ray_matches_in_process_build(tmp_path):
    build_dataset(TOY, tmp_path / "inline", n=30, shard_size=4, workers=0)
    build_dataset(TOY, tmp_path / "ray", n=30, shard_size=4, workers=2)
    assert folder_digest(tmp_path / "inline") == folder_digest(tmp_path / "ray")


def test_two_node_cluster_build_with_address(tmp_path, cluster):
    out = tmp_path / "cluster"
    result = subprocess.run(
        [sys.executable, "-m", "got_data.cli", "build", TOY, "--n", "40", "--shard-size", "4",
         "--address", cluster.address, "--out", str(out), "--param", "delay=0.02"],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    build_dataset(TOY, tmp_path / "inline", n=40, shard_size=4, params={"delay": 0.02})
    assert folder_digest(out) == folder_digest(tmp_path / "inline")
    # both nodes did work: the cluster really had two members
    probe = (
        "import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False);"
        "print(len([n for n in ray.nodes() if n['Alive']]))"
    )
    alive = subprocess.run([sys.executable, "-c", probe, cluster.address], capture_output=True, text=True, timeout=120)
    assert alive.stdout.strip().splitlines()[-1] == "2"
