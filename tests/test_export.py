"""Exports and third-party readers: GOT's conversation JSON, ms-swift, Parquet, webdataset, datasets."""

from __future__ import annotations

import glob
import json
import os

import pytest
from helpers import build_dataset, samples
from natsort import natsorted
from PIL import Image

from got_data.errors import UserError
from manifests.export import export

TOY = "toy_engine:Toy"


@pytest.fixture(scope="module")
def datasets_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    build_dataset(TOY, root / "single", n=12, shard_size=5)
    build_dataset(TOY, root / "multi", n=6, shard_size=6, params={"pages": 3})
    return root


def got_conversation_loader(annotation: str, image_root: str) -> list[tuple[list[Image.Image], str, str]]:
    """What GOT-OCR2.0's conversation dataset does with an annotation file (got-formats.md)."""
    entries = json.load(open(annotation, encoding="utf-8"))
    assert isinstance(entries, list)
    out = []
    for entry in entries:
        conv = entry["conversations"]
        assert [c["from"] for c in conv] == ["human", "gpt"]
        assert "<image>" in conv[0]["value"]
        path = image_root + entry["image"]
        if not any(ext in path for ext in (".png", ".jpg", ".jpeg")):
            paths = natsorted(glob.glob(path + "*.png"))
        else:
            paths = [path]
        assert paths, f"no image for {entry['image']}"
        out.append(([Image.open(p) for p in paths], conv[0]["value"], conv[1]["value"]))
    return out


def test_got_export_loads_like_gots_dataset(datasets_dir, tmp_path):
    for name in ("single", "multi"):
        dest = tmp_path / name
        count = export(str(datasets_dir / name), "got", str(dest))
        records = samples(datasets_dir / name)
        loaded = got_conversation_loader(str(dest / "annotations.json"), str(dest / "images") + "/")
        assert count == len(records) == len(loaded)
        for record, (images, human, gpt) in zip(records, loaded, strict=True):
            assert human == "<image>\n" + record["prompt"]
            assert gpt == record["target"]
            assert len(images) == len(record["images"])


def test_multi_image_files_sort_in_page_order(datasets_dir, tmp_path):
    export(str(datasets_dir / "multi"), "got", str(tmp_path / "g"))
    first = samples(datasets_dir / "multi")[0]
    names = natsorted(os.listdir(tmp_path / "g" / "images" / first["key"]))
    assert names == ["0.png", "1.png", "2.png"]


def test_swift_export(datasets_dir, tmp_path):
    export(str(datasets_dir / "multi"), "swift", str(tmp_path / "s"))
    lines = [json.loads(line) for line in (tmp_path / "s" / "train.jsonl").read_text().splitlines()]
    assert lines and all(line["query"].count("<image>") == len(line["images"]) == 3 for line in lines)
    assert all(os.path.isfile(p) for line in lines for p in line["images"])


def test_parquet_export_loads_with_datasets_as_images(datasets_dir, tmp_path):
    datasets = pytest.importorskip("datasets")
    export(str(datasets_dir / "single"), "parquet", str(tmp_path / "p"))
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "p" / "*.parquet"), split="train")
    assert isinstance(ds.features["image"], datasets.Image)
    row = ds[0]
    assert row["image"].size == (24, 24) and row["target"] == samples(datasets_dir / "single")[0]["target"]


def test_tars_load_with_webdataset_and_datasets(datasets_dir):
    wds = pytest.importorskip("webdataset")
    datasets = pytest.importorskip("datasets")
    tars = sorted(glob.glob(str(datasets_dir / "single" / "*.tar")))
    loaded = list(wds.WebDataset(tars, shardshuffle=False).decode("pil"))
    assert [s["json"]["target"] for s in loaded] == [r["target"] for r in samples(datasets_dir / "single")]
    assert loaded[0]["png"].size == (24, 24)
    ds = datasets.load_dataset("webdataset", data_files={"train": tars}, split="train")
    assert len(ds) == len(loaded) and isinstance(ds.features["png"], datasets.Image)


def test_export_refuses_a_non_empty_destination(datasets_dir, tmp_path):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        export(str(datasets_dir / "single"), "got", str(tmp_path / "busy"))
