"""dag.yaml: validation, dependency order, idempotent re-runs, targeted rebuilds, mixtures, reports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from helpers import folder_digest

from got_data.dag import DagError, DagRunner, load_dag
from manifests.export import export

ROOT = Path(__file__).resolve().parents[1]

RECIPE = {
    "version": 1,
    "out": "out",
    "shard_size": 5,
    "nodes": {
        "a": {"engine": "toy_engine:Toy", "count": 12},
        "b": {"engine": "toy_engine:Toy", "count": 8, "params": {"size": 16}, "after": ["a"]},
        "c": {"engine": "toy_engine:Toy", "count": 6, "seed": 3},
    },
    "mixtures": {"mix": {"weights": {"a": 2, "b": 1}, "size": 30}},
}


def write(tmp_path: Path, recipe: dict) -> Path:
    path = tmp_path / "dag.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def run(path: Path, **kwargs) -> dict:
    runner = DagRunner(load_dag(path), workers=0, **kwargs)
    return runner.run(log=lambda _: None)


def mtimes(folder: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.glob("shard-*"))}


def test_the_repos_recipe_is_valid_and_carries_the_papers_volumes():
    dag = load_dag(ROOT / "dag.yaml")
    assert dag.nodes["charts"].count == 2_000_000 and dag.nodes["pdf_pages"].count == 1_200_000
    assert dag.nodes["finegrained"].needs == ["pdf_pages"]
    assert dag.order().index("pdf_pages") < dag.order().index("finegrained")
    assert set(dag.mixtures["stage2"].weights) == set(dag.nodes)


def test_run_builds_everything_then_rerun_skips(tmp_path):
    path = write(tmp_path, RECIPE)
    report = run(path)
    assert {n: r["shards_built"] for n, r in report["nodes"].items()} == {"a": 3, "b": 2, "c": 2}
    out = tmp_path / "out"
    assert json.loads((out / "run-report.json").read_text())["nodes"]["a"]["samples_built"] > 0
    before = {n: folder_digest(out / n) for n in "abc"}
    again = run(path)
    assert all(r["shards_built"] == 0 for r in again["nodes"].values())
    assert {n: folder_digest(out / n) for n in "abc"} == before


def test_changing_one_node_rebuilds_it_and_its_dependents_only(tmp_path):
    path = write(tmp_path, RECIPE)
    run(path)
    out = tmp_path / "out"
    c_before = mtimes(out / "c")
    changed = json.loads(json.dumps(RECIPE))
    changed["nodes"]["a"]["params"] = {"size": 20}
    path = write(tmp_path, changed)
    report = run(path)
    assert report["nodes"]["a"]["state_before"] == "rebuilt"
    assert report["nodes"]["b"]["state_before"] == "rebuilt"  # depends on a
    assert report["nodes"]["c"]["shards_built"] == 0 and mtimes(out / "c") == c_before


def test_scale_and_only(tmp_path):
    path = write(tmp_path, RECIPE)
    report = run(path, scale=0.5, only=["b"])
    assert set(report["nodes"]) == {"a", "b"}  # b needs a
    assert report["nodes"]["a"]["n"] == 6 and report["nodes"]["b"]["n"] == 4
    assert not (tmp_path / "out" / "c").exists()


def test_plan_shows_what_is_complete(tmp_path):
    path = write(tmp_path, RECIPE)
    plan = DagRunner(load_dag(path)).plan()
    assert {p.node.name: p.state for p in plan} == {"a": "empty", "b": "waits", "c": "empty"}
    run(path, only=["c"])
    shown = subprocess.run([sys.executable, "-m", "got_data.cli", "plan", str(path)], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
    assert shown.returncode == 0
    line_c = next(line for line in shown.stdout.splitlines() if line.startswith("c "))
    assert "complete" in line_c and "2/2" in line_c


def test_mixture_exports_with_weights(tmp_path):
    path = write(tmp_path, RECIPE)
    report = run(path)
    mixture = report["mixtures"]["mix"]
    takes = {c["node"]: c["take"] for c in mixture["components"]}
    assert takes == {"a": 20, "b": 10}
    count = export(str(tmp_path / "out" / "mixtures" / "mix.json"), "got", str(tmp_path / "export"))
    assert count == 30
    entries = json.loads((tmp_path / "export" / "annotations.json").read_text())
    assert sum(e["image"].startswith("toy_") for e in entries) == 30


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r["nodes"]["a"].update(engine="nope"), "unknown engine 'nope'"),
        (lambda r: r["nodes"]["a"].update(after=["b"]), "cycle"),
        (lambda r: r["nodes"]["a"].update(count=0), "'count' must be a positive integer"),
        (lambda r: r["nodes"]["a"].update(colour="red"), "unknown key 'colour'"),
        (lambda r: r["nodes"]["a"].update(after=["zzz"]), "unknown node 'zzz'"),
        (lambda r: r["mixtures"]["mix"]["weights"].update(a=-1), "must be a positive number"),
        (lambda r: r["mixtures"]["mix"]["weights"].update(q=1), "unknown node 'q'"),
        (lambda r: r["nodes"]["a"].update(params={"size": "big"}), "expected int"),
    ],
)
def test_schema_errors_are_clear(tmp_path, edit, message):
    recipe = json.loads(json.dumps(RECIPE))
    edit(recipe)
    with pytest.raises(DagError, match=message):
        load_dag(write(tmp_path, recipe))


def test_missing_input_is_reported(tmp_path):
    path = tmp_path / "dag.yaml"
    path.write_text(textwrap.dedent("""
        nodes:
          mols: {engine: molecules, count: 5, inputs: [no/such/file.smi]}
    """))
    result = subprocess.run([sys.executable, "-m", "got_data.cli", "plan", str(path)], capture_output=True,
                            text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "input 'no/such/file.smi' does not exist" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_inputs_planned_from_many_threads_match_a_plan_made_alone():
    """`got-data run` plans nodes in threads; the PDF engine's plan talks to a per-process sandbox
    child, which must never see two requests at once (it once swapped page counts between nodes)."""
    from concurrent.futures import ThreadPoolExecutor

    from got_data.build import BuildRequest, resolve_config

    pdfs = str(ROOT / "examples" / "pdfs")
    request = BuildRequest(engine="pdf", n=10, out="unused", inputs=[pdfs])
    alone = resolve_config(request)[2]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda _: resolve_config(request)[2], range(16)))
    assert all(units == alone for units in together)
