"""The core pipeline: layout, determinism, resume, refusal of mismatched folders, validation."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from helpers import build_dataset, errors, folder_digest, image, samples

from manifests.validate import validate_dataset

TOY = "toy_engine:Toy"
ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "got_data.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_layout_manifest_and_tar_agree(tmp_path):
    out = tmp_path / "ds"
    summary = build_dataset(TOY, out, n=25, shard_size=10, params={"pages": 1})
    assert (summary.shards_built, summary.shards_skipped) == (3, 0)
    names = sorted(p.name for p in out.iterdir())
    assert names == ["index.json"] + [f"shard-{i:06d}.{kind}" for i in range(3) for kind in ("errors.jsonl", "jsonl", "tar")]
    records, rejected = samples(out), errors(out)
    # every position is accounted for exactly once, as a sample or an error with a reason
    assert sorted([r["position"] for r in records] + [e["position"] for e in rejected]) == list(range(25))
    assert {e["reason"] for e in rejected} == {"seven", "engine_error"}
    assert all("must not kill the shard" in e["detail"] for e in rejected if e["reason"] == "engine_error")
    for record in records:
        assert "." not in record["key"]
        assert record["target"].startswith(f"{record['position']}: ")
        assert image(out, record).size == (24, 24)
    with tarfile.open(out / "shard-000000.tar") as tar:
        for member in tar.getmembers():
            assert (member.mtime, member.uid, member.gid, member.uname, member.mode) == (0, 0, 0, "", 0o644)
    index = json.loads((out / "index.json").read_text())
    assert index["totals"]["samples"] == len(records)
    assert index["totals"]["errors_by_reason"] == {"engine_error": 2, "seven": 4}
    assert validate_dataset(str(out)).ok


def test_multi_image_samples_are_numbered(tmp_path):
    build_dataset(TOY, tmp_path / "ds", n=3, params={"pages": 3})
    record = samples(tmp_path / "ds")[0]
    assert [im["name"] for im in record["images"]] == [f"{record['key']}.{i}.png" for i in range(3)]


def test_same_command_twice_is_byte_identical(tmp_path):
    build_dataset(TOY, tmp_path / "a", n=30, shard_size=7)
    build_dataset(TOY, tmp_path / "b", n=30, shard_size=7)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")


def test_samples_do_not_depend_on_shard_size(tmp_path):
    build_dataset(TOY, tmp_path / "a", n=20, shard_size=20)
    build_dataset(TOY, tmp_path / "b", n=20, shard_size=3)
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("shard", "images")} for r in rs]  # noqa: E731
    assert strip(samples(tmp_path / "a")) == strip(samples(tmp_path / "b"))


def test_rerun_skips_complete_shards_and_growing_n_builds_only_missing(tmp_path):
    out = tmp_path / "ds"
    build_dataset(TOY, out, n=25, shard_size=10)
    first = {p.name: p.stat().st_mtime_ns for p in out.glob("shard-00000[01].*")}
    again = build_dataset(TOY, out, n=25, shard_size=10)
    assert (again.shards_built, again.shards_skipped) == (0, 3)
    grown = build_dataset(TOY, out, n=38, shard_size=10)
    # shard 2 was partial (20..25) and is rebuilt as 20..30; shard 3 is new
    assert (grown.shards_built, grown.shards_skipped) == (2, 2)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("shard-00000[01].*")} == first
    build_dataset(TOY, tmp_path / "fresh", n=38, shard_size=10)
    assert folder_digest(out) == folder_digest(tmp_path / "fresh")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"seed": 1}, "seed 0 -> 1"),
        ({"params": {"size": 5}}, "param size 24 -> 5"),
        ({"shard_size": 4}, "shard_size"),
        ({"n": 5}, "smaller --n"),
    ],
)
def test_other_settings_are_refused_unless_overwrite(tmp_path, change, message):
    from got_data.errors import UserError

    out = tmp_path / "ds"
    build_dataset(TOY, out, n=10, shard_size=10)
    before = folder_digest(out)
    kwargs = {"n": 10, "shard_size": 10, **change}
    with pytest.raises(UserError, match=message):
        build_dataset(TOY, out, **kwargs)
    assert folder_digest(out) == before
    build_dataset(TOY, out, overwrite=True, **kwargs)
    assert validate_dataset(str(out)).ok


def test_kill_at_any_moment_then_rerun_gives_the_same_bytes(tmp_path):
    reference = tmp_path / "reference"
    build_dataset(TOY, reference, n=40, shard_size=5, params={"delay": 0.01})
    out = tmp_path / "killed"
    args = ["build", TOY, "--n", "40", "--shard-size", "5", "--workers", "0", "--param", "delay=0.01",
            "--out", str(out), "--quiet"]
    for delay in (0.6, 1.0, 1.4, 1.9):
        proc = subprocess.Popen([sys.executable, "-m", "got_data.cli", *args], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    assert folder_digest(out) == folder_digest(reference)
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name or ".staging" in str(p)]


def test_partial_files_of_a_killed_shard_are_rebuilt(tmp_path):
    out = tmp_path / "ds"
    build_dataset(TOY, out, n=20, shard_size=10)
    reference = folder_digest(out)
    # a run killed after publishing shard 1's tar but before recording it in the index
    index = json.loads((out / "index.json").read_text())
    index["shards"] = index["shards"][:1]
    (out / "index.json").write_text(json.dumps(index))
    (out / "shard-000001.jsonl").unlink()
    (out / "shard-000001.tar").write_bytes(b"half a tar")
    (out / ".staging").mkdir()
    (out / "index.json.tmp-abc").write_text("{")
    build_dataset(TOY, out, n=20, shard_size=10)
    assert folder_digest(out) == reference
    assert not (out / ".staging").exists()


def test_corrupted_shard_is_reported_and_left_alone(tmp_path):
    out = tmp_path / "ds"
    build_dataset(TOY, out, n=20, shard_size=10)
    tar = out / "shard-000001.tar"
    data = bytearray(tar.read_bytes())
    data[700] ^= 0xFF
    tar.write_bytes(bytes(data))
    before = folder_digest(out)
    result = cli("build", TOY, "--n", "20", "--shard-size", "10", "--workers", "0", "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "shard 1 is corrupted" in result.stderr
    assert folder_digest(out) == before
    checked = cli("validate", str(out))
    assert checked.returncode == 1 and "shard-000001.tar" in checked.stdout


def test_validate_catches_manifest_edits(tmp_path):
    out = tmp_path / "ds"
    build_dataset(TOY, out, n=10)
    manifest = out / "shard-000000.jsonl"
    manifest.write_text(manifest.read_text().replace('"toy"', '"TOY"', 1))
    assert not validate_dataset(str(out)).ok


@pytest.mark.parametrize(
    "args, message",
    [
        (["build", "nosuchengine"], "unknown engine 'nosuchengine'"),
        (["build", TOY, "--n", "0"], "--n must be a positive"),
        (["build", TOY, "--n", "-5"], "--n must be a positive"),
        (["build", TOY, "--param", "size=big"], "expected int"),
        (["build", TOY, "--param", "colour=red"], "has no parameter 'colour'"),
        (["build", TOY, "--param", "size"], "expected KEY=VALUE"),
        (["build", TOY, "--input", "x.pdf"], "takes no --input"),
        (["build", TOY, "--address", "127.0.0.1:1"], "does not answer"),
        (["build", TOY, "--workers", "-1"], "--workers"),
        (["validate", "/nonexistent/ds"], "not a got-data dataset"),
        (["export", "/nonexistent/ds", "--to", "got", "DEST"], "not a got-data dataset"),
        (["export", "/nonexistent/ds", "--to", "csv", "DEST"], "invalid choice"),
    ],
)
def test_bad_cli_input_is_one_clear_line(tmp_path, args, message):
    args = [str(tmp_path / "dest") if a == "DEST" else a for a in args]
    if args[0] == "build":
        args = [*args, "--out", str(tmp_path / "ds"), "--workers", args[-1] if "--workers" in args else "0"]
        if "--address" in args:
            args = [a for a in args if a not in ("--workers", "0")]
    result = cli(*args)
    output = result.stderr + result.stdout
    assert result.returncode != 0
    assert message in output, output
    assert "Traceback" not in output
    if args[0] == "build":
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_foreign_or_unwritable_output_folder_is_refused(tmp_path):
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    result = cli("build", TOY, "--n", "5", "--workers", "0", "--out", str(foreign))
    assert result.returncode == 2 and "not a got-data dataset" in result.stderr
    result = cli("build", TOY, "--n", "5", "--workers", "0", "--out", str(foreign), "--overwrite")
    assert result.returncode == 2 and (foreign / "thesis.tex").read_text() == "precious"
    if os.geteuid() != 0:  # root writes anywhere; the check is meaningful for normal users only
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        result = cli("build", TOY, "--n", "5", "--workers", "0", "--out", str(locked / "ds"))
        assert result.returncode == 2 and "cannot use output folder" in result.stderr


def test_build_to_an_fsspec_url(tmp_path):
    build_dataset(TOY, f"file://{tmp_path}/url", n=12, shard_size=5)
    build_dataset(TOY, tmp_path / "plain", n=12, shard_size=5)
    assert folder_digest(tmp_path / "url") == folder_digest(tmp_path / "plain")


def test_engines_lists_parameters_and_build_help_shows_them():
    listing = cli("engines")
    assert listing.returncode == 0
    shown = cli("build", TOY, "--help")
    assert shown.returncode == 0 and "delay (float, default 0.0)" in shown.stdout


def test_copy_of_a_dataset_validates(tmp_path):
    build_dataset(TOY, tmp_path / "ds", n=9)
    shutil.copytree(tmp_path / "ds", tmp_path / "copy")
    assert validate_dataset(str(tmp_path / "copy")).ok


def test_built_in_sources_do_not_name_the_install_folder(tmp_path):
    from engines.base import BUILTIN_DATA, source_name

    assert source_name(BUILTIN_DATA / "formulas_default.txt") == "builtin:formulas_default.txt"
    assert source_name("my/own.smi") == "my/own.smi"
    build_dataset("formulas", tmp_path / "f", n=3)
    assert all(r["source"].startswith("builtin:formulas_default.txt:") for r in samples(tmp_path / "f"))
