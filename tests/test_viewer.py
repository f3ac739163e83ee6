"""The viewer's server: listing, paging, filters, samples, renders, flags, safety and speed.

Datasets come from a toy engine defined here (several tasks, boxes, colour frames,
rejections); the 100k-sample speed dataset is built once per session with tiny images.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import build_dataset, folder_digest, samples
from PIL import Image, ImageDraw

from engines.base import PROMPT_FORMAT, PROMPT_OCR, Engine, Param, Rejection, Sample
from got_data.cli import main as cli_main
from got_data.cli import make_parser
from got_data.viewer.catalog import discover, prompt_group
from got_data.viewer.plots import load_tokenizer
from got_data.viewer.server import ViewerConfig, serve_in_thread
from manifests.flags import FLAGS_NAME, load_flags
from manifests.shard import read_image
from manifests.storage import Storage
from renderers.image import encode_png

KERN = "**kern\t**kern\n*clefF4\t*clefG2\n*M4/4\t*M4/4\n4C\t4c\n4D\t4d\n4E\t4e\n4F\t4f\n=\t=\n*-\t*-\n"
TIKZ = "\\begin{tikzpicture}\n\\draw (0,0) circle (1);\n\\draw (-1,-1) rectangle (1,1);\n\\end{tikzpicture}"
TASKS = ("ocr", "formula", "box", "color", "chart", "molecule", "music", "geometry")


class ViewerToy(Engine):
    """Every kind of sample the viewer must show, cheap to make. Position % 13 == 5 is rejected."""

    name = "viewertoy"
    params = (Param("size", 96, "image side in pixels", int, minimum=8), Param("text", True, "draw the target", bool))

    def sample(self, position: int) -> Sample | Rejection:
        if position % 13 == 5:
            return Rejection("toy_reject" if position % 2 else "toy_other", f"position {position}", source=f"toy:{position}")
        rng = self.rng(position)
        size = self.p["size"]
        task = TASKS[position % len(TASKS)]
        word = "".join(rng.choice(list("abcdefghij"), size=int(rng.integers(3, 9))))
        boxes = colors = None
        prompt, target = PROMPT_OCR, word
        if task == "formula":
            prompt, target = PROMPT_FORMAT, f"\\section*{{{word}}}\n\nEnergy \\(E=mc^{{2}}\\) and\n\\[\\frac{{a}}{{b}}\\]"
        elif task == "box":
            box = [size // 8, size // 4, size * 3 // 4, size * 3 // 5]
            prompt = f"{[int(v / size * 1000) for v in box]} OCR: "
            boxes = [box]
        elif task == "color":
            prompt, boxes, colors = "[red] OCR: ", [[2, 2, size - 3, size // 2]], ["red"]
        elif task == "chart":
            prompt = PROMPT_FORMAT
            target = json.dumps({"title": word, "source": "None", "x_title": "day", "y_title": "sales",
                                 "values": {"A": {"Mon": "1", "Tue": "2"}, "B": {"Mon": "3", "Tue": "4"}}})
        elif task == "molecule":
            prompt, target = PROMPT_FORMAT, "c1ccccc1O"
        elif task == "music":
            prompt, target = PROMPT_FORMAT, KERN
        elif task == "geometry":
            prompt, target = PROMPT_FORMAT, TIKZ
        image = Image.new("RGB", (size, size * 3 // 4 if position % 3 else size), (250, 250, 245))
        if self.p["text"]:
            draw = ImageDraw.Draw(image)
            draw.text((4, 4), word, fill=(0, 0, 0))
            if colors:
                draw.rectangle(boxes[0], outline=(255, 0, 0), width=2)
        images = [encode_png(image)]
        if task == "ocr" and position % 16 == 0:
            images.append(encode_png(image.rotate(90, expand=True)))
        return Sample(task=task, prompt=prompt, target=target, images=images, boxes=boxes, colors=colors,
                      source=f"toy:{position}", meta={"word": word})


TOY = "test_viewer:ViewerToy"


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of two toy datasets."""
    root = tmp_path_factory.mktemp("viewer")
    build_dataset(TOY, root / "alpha", n=60, shard_size=25)
    build_dataset(TOY, root / "beta", n=20, seed=7, params={"size": 64})
    return root


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        all_headers = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in all_headers.items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        res = conn.getresponse()
        data = res.read()
        conn.close()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data

    def json(self, path: str) -> Any:
        status, _, data = self.request("GET", path)
        assert status == 200, (path, status, data[:300])
        return json.loads(data)

    def flag(self, ds: str, key: str, flagged: bool, **headers: str) -> tuple[int, Any]:
        body = json.dumps({"ds": ds, "key": key, "flagged": flagged}).encode()
        status, _, data = self.request("POST", "/api/flag", body, {"Content-Type": "application/json", **headers})
        return status, json.loads(data)


@pytest.fixture(scope="module")
def client(datasets: Path):
    server, thread = serve_in_thread(ViewerConfig(str(datasets), port=0, seed=3))
    yield Client(server.server_address[1])
    server.shutdown()
    server.server_close()


# ---------------------------------------------------------------- discovery
def test_discovers_one_dataset_or_a_folder_of_them(datasets: Path) -> None:
    assert [d.id for d in discover(str(datasets))] == ["alpha", "beta"]
    assert [d.id for d in discover(str(datasets / "beta"))] == ["beta"]


def test_cli_registers_view_with_safe_defaults(tmp_path: Path) -> None:
    args = make_parser().parse_args(["view", "somewhere"])
    assert (args.host, args.port, args.seed, args.no_open) == ("127.0.0.1", 8765, 0, False)
    assert cli_main(["view", str(tmp_path), "--no-open", "--port", "0"]) == 2  # no datasets: one-line error


def test_prompt_groups_merge_box_coordinates() -> None:
    assert prompt_group("[12, 40, 500, 999] OCR: ") == prompt_group("[1, 2, 3, 4] OCR: ") == "[x1, y1, x2, y2] OCR: "
    assert prompt_group("[red] OCR: ") == "[red] OCR: "


# ------------------------------------------------------------------ overview
def test_overview_counts_errors_params_and_plots(client: Client, datasets: Path) -> None:
    listed = {d["id"]: d for d in client.json("/api/datasets")["datasets"]}
    alpha = listed["alpha"]
    truth = samples(datasets / "alpha")
    assert alpha["samples"] == len(truth) and alpha["errors"] == 60 - len(truth) > 0
    assert set(alpha["errors_by_reason"]) == {"toy_reject", "toy_other"}
    assert listed["beta"]["params"] == {"size": 64, "text": True} and listed["beta"]["seed"] == 7
    over = client.json("/api/overview?ds=alpha")
    for name in ("chars", "tasks", "prompts", "sizes", "images"):
        assert over["plots"][name].startswith("<svg"), name
    assert "molecule" in over["plots"]["tasks"] and "[x1, y1, x2, y2] OCR: " in over["plots"]["prompts"]
    assert over["errors"] and {e["reason"] for e in over["errors"]} <= {"toy_reject", "toy_other"}
    assert "tokens" not in over["plots"]  # no tokenizer configured


def test_token_plot_from_a_local_tokenizer(datasets: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    # A word-level tokenizer made here (nothing downloaded): one token per word or run of punctuation.
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    server, _ = serve_in_thread(ViewerConfig(str(datasets), port=0, tokenizer=str(path)))
    try:
        over = Client(server.server_address[1]).json("/api/overview?ds=alpha")
    finally:
        server.shutdown()
        server.server_close()
    expected = [len(re.findall(r"\w+|[^\w\s]+", r["target"])) for r in samples(datasets / "alpha")]
    assert over["plots"]["tokens"].startswith("<svg") and "tokens" in over["plots"]["tokens"]
    assert over["stats"]["tokens_median"] == float(np.median(expected))
    assert over["stats"]["tokens_max"] == max(expected) and over["stats"]["tokenizer"] == str(path)
    # A file that is not a tokenizer costs only the plot, with a message.
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert load_tokenizer(str(bad)) is None
    assert "token plots are omitted" in capsys.readouterr().out


# -------------------------------------------------------------------- browse
def test_sequential_paging_covers_every_sample_once(client: Client, datasets: Path) -> None:
    keys = []
    for offset in range(0, 100, 7):
        page = client.json(f"/api/list?ds=alpha&offset={offset}&limit=7")
        keys += [item["key"] for item in page["items"]]
    assert keys == [r["key"] for r in samples(datasets / "alpha")]
    assert page["total"] == len(keys)
    both = client.json("/api/list?limit=500")
    assert both["total"] == len(keys) + len(samples(datasets / "beta"))


def test_random_order_is_seeded(client: Client) -> None:
    seq = [i["key"] for i in client.json("/api/list?ds=alpha&limit=500")["items"]]
    r1 = [i["key"] for i in client.json("/api/list?ds=alpha&order=random&seed=5&limit=500")["items"]]
    r2 = [i["key"] for i in client.json("/api/list?ds=alpha&order=random&seed=5&limit=500")["items"]]
    r3 = [i["key"] for i in client.json("/api/list?ds=alpha&order=random&seed=6&limit=500")["items"]]
    assert r1 == r2 and sorted(r1) == sorted(seq) and r1 != seq and r1 != r3
    default = [i["key"] for i in client.json("/api/list?ds=alpha&order=random&limit=500")["items"]]
    assert default == [i["key"] for i in client.json("/api/list?ds=alpha&order=random&seed=3&limit=500")["items"]]


def test_filters_by_task_prompt_and_target_text(client: Client, datasets: Path) -> None:
    truth = samples(datasets / "alpha")
    page = client.json("/api/list?ds=alpha&task=box&limit=500")
    assert page["total"] == sum(r["task"] == "box" for r in truth) > 0
    assert {i["task"] for i in page["items"]} == {"box"}
    assert client.json("/api/list?ds=alpha&prompt=%5Bx1%2C+y1%2C+x2%2C+y2%5D+OCR%3A+&limit=500")["total"] == page["total"]
    word = truth[0]["meta"]["word"]
    found = client.json(f"/api/list?ds=alpha&q={word.upper()}&limit=500")
    assert found["total"] == sum(word in r["target"] for r in truth) >= 1
    facets = client.json("/api/list?ds=alpha&limit=1")["facets"]
    assert set(facets["tasks"]) == set(TASKS) and sum(facets["tasks"].values()) == len(truth)
    assert client.json("/api/list?ds=alpha&q=no-such-text-anywhere")["total"] == 0


# -------------------------------------------------------------------- sample
def test_sample_image_and_thumbnail_are_read_in_place(client: Client, datasets: Path) -> None:
    truth = samples(datasets / "alpha")
    multi = next(r for r in truth if len(r["images"]) > 1)
    got = client.json(f"/api/sample?ds=alpha&key={multi['key']}")
    assert got["target"] == multi["target"] and got["images"] == multi["images"] and got["flagged"] is False
    for i in range(2):
        status, headers, data = client.request("GET", f"/api/image?ds=alpha&key={multi['key']}&i={i}")
        assert status == 200 and headers["content-type"] == "image/png"
        assert data == read_image(Storage(str(datasets / "alpha")), multi, i)
    status, headers, data = client.request("GET", f"/api/thumb?ds=alpha&key={multi['key']}")
    assert status == 200 and headers["content-type"] == "image/jpeg" and data[:2] == b"\xff\xd8"
    assert client.request("GET", f"/api/image?ds=alpha&key={multi['key']}&i=2")[0] == 404
    assert client.request("GET", "/api/sample?ds=alpha&key=viewertoy_0000000005")[0] == 404  # rejected position
    assert client.request("GET", "/api/sample?ds=nope&key=x")[0] == 404


@pytest.mark.parametrize(
    ("task", "kind", "marker"),
    [("molecule", "smiles", b"<svg"), ("music", "kern", b"<svg"), ("geometry", "tikz", b"\x89PNG")],
)
def test_targets_rendered_back_on_the_server(client: Client, datasets: Path, task: str, kind: str, marker: bytes) -> None:
    record = next(r for r in samples(datasets / "alpha") if r["task"] == task)
    assert client.json(f"/api/sample?ds=alpha&key={record['key']}")["render"] == kind
    status, headers, data = client.request("GET", f"/api/render/{kind}?ds=alpha&key={record['key']}")
    assert status == 200, data[:500]
    assert headers["content-type"].startswith("image/") and marker in data[:400]
    if kind == "kern":
        assert data.count(b'class="note"') >= 8  # eight notes engraved
    if kind == "tikz":  # the circle and the square are drawn: dark ink on a white page
        import io

        from PIL import Image as PILImage
        picture = PILImage.open(io.BytesIO(data)).convert("L")
        assert picture.width > 100 and picture.getextrema()[0] < 100


def test_tikz_fallback_compile_is_locked_down(tmp_path: Path) -> None:
    from got_data.viewer.render import RenderError, tikz_svg

    assert "<svg" in tikz_svg(TIKZ)[:300]
    outside = tmp_path / "outside.tex"
    outside.write_text("\\node {HELLO};\n")  # valid TeX: only the lock-down can stop reading it
    with pytest.raises(RenderError, match="input file|not found|pdflatex failed"):
        tikz_svg(f"\\begin{{tikzpicture}}\\input{{{outside}}}\\end{{tikzpicture}}")


def test_render_kinds_for_markdown_and_chart(client: Client, datasets: Path) -> None:
    truth = samples(datasets / "alpha")
    kinds = {r["task"]: client.json(f"/api/sample?ds=alpha&key={r['key']}")["render"] for r in truth}
    assert kinds["formula"] == kinds["ocr"] == "markdown" and kinds["chart"] == "chart"
    record = next(r for r in truth if r["task"] == "ocr")
    assert client.request("GET", f"/api/render/smiles?ds=alpha&key={record['key']}")[0] == 422  # shown as an error
    assert client.request("GET", f"/api/render/shell?ds=alpha&key={record['key']}")[0] == 404


# --------------------------------------------------------------------- flags
def test_flag_and_unflag_write_only_the_flags_file(client: Client, datasets: Path) -> None:
    folder = datasets / "beta"
    before = folder_digest(folder)
    keys = [r["key"] for r in samples(folder)]
    assert client.flag("beta", keys[0], True) == (200, {"ds": "beta", "key": keys[0], "flagged": True, "total_flagged": 1})
    assert client.flag("beta", keys[1], True)[0] == 200
    assert client.flag("beta", keys[0], False)[0] == 200
    assert load_flags(str(folder)) == {keys[1]}
    lines = [json.loads(line) for line in (folder / FLAGS_NAME).read_text().splitlines()]
    assert lines == [{"flagged": True, "key": keys[0]}, {"flagged": True, "key": keys[1]}, {"flagged": False, "key": keys[0]}]
    assert client.json(f"/api/sample?ds=beta&key={keys[1]}")["flagged"] is True
    assert [i["key"] for i in client.json("/api/list?ds=beta&flagged=1")["items"]] == [keys[1]]
    after = folder_digest(folder)
    assert {k: v for k, v in after.items() if k != FLAGS_NAME} == before
    # Reloading the server reads the flags back.
    assert discover(str(folder))[0].flagged() == {keys[1]}


def test_flag_requests_are_checked(client: Client) -> None:
    key = client.json("/api/list?ds=beta&limit=1")["items"][0]["key"]
    assert client.flag("beta", "viewertoy_0000099999", True)[0] == 404  # not a sample
    assert client.flag("nope", key, True)[0] == 404
    assert client.flag("beta", key, True, Origin="http://evil.example")[0] == 403
    body = json.dumps({"ds": "beta", "key": key, "flagged": True}).encode()
    assert client.request("POST", "/api/flag", body, {"Content-Type": "text/plain"})[0] == 415  # no CORS simple requests
    assert client.request("POST", "/api/flag", b"x" * 10_000, {"Content-Type": "application/json"})[0] == 413
    assert client.request("POST", "/api/list", body, {"Content-Type": "application/json"})[0] == 405


# -------------------------------------------------------------------- safety
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_are_refused(client: Client, method: str) -> None:
    assert client.request(method, "/api/flag", b"")[0] == 405


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.evil.example", ""])
def test_foreign_host_headers_are_refused(client: Client, host: str) -> None:
    status, _, data = client.request("GET", "/api/datasets", headers={"Host": host})
    assert status == 403 and b"alpha" not in data


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "localhost:1234"])
def test_local_host_headers_are_served(client: Client, host: str) -> None:
    assert client.request("GET", "/api/datasets", headers={"Host": host})[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/static/%2E%2E%2F%2E%2E%2Fcli.py",
        "/static/..%2f..%2fcli.py",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/katex/../package.json",
        "/katex/%2e%2e/%2e%2e/%2e%2e/package.json",
        "/static/%00index.html",
        "/etc/passwd",
        "/alpha/index.json",
        "/alpha/shard-000000.tar",
        "/api/image?ds=..&key=index",
        "/api/sample?ds=alpha&key=../index",
    ],
)
def test_path_traversal_is_refused(client: Client, path: str) -> None:
    status, _, data = client.request("GET", path)
    assert status in (400, 403, 404), (path, status)
    assert b"root:" not in data and b"[project]" not in data and b"dependencies" not in data and b"shards" not in data


def test_static_and_katex_assets_are_served(client: Client) -> None:
    for path, ctype in [("/", "text/html"), ("/static/app.js", "javascript"), ("/katex/katex.min.js", "javascript"),
                        ("/katex/katex.min.css", "text/css"), ("/static/mathpix.js", "javascript")]:
        status, headers, _ = client.request("GET", path)
        assert status == 200 and ctype in headers["content-type"], path
        assert "default-src 'self'" in headers["content-security-policy"]


def test_symlinks_out_of_the_served_folders_are_not_followed(tmp_path: Path, datasets: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    static = tmp_path / "static"
    static.mkdir()
    (static / "index.html").write_text("<p>hi</p>")
    (static / "leak.txt").symlink_to(secret)
    # A folder of datasets with one real dataset, one symlinked in from outside, and a shard tar
    # replaced by a symlink to a file outside its dataset.
    root = tmp_path / "root"
    root.mkdir()
    build_dataset(TOY, root / "real", n=6)
    outside = tmp_path / "outside"
    build_dataset(TOY, outside, n=6)
    (root / "linked").symlink_to(outside)
    tar = root / "real" / "shard-000000.tar"
    tar.rename(tmp_path / "moved.tar")
    tar.symlink_to(tmp_path / "moved.tar")
    server, _ = serve_in_thread(ViewerConfig(str(root), port=0, static_dir=static))
    try:
        c = Client(server.server_address[1])
        assert c.request("GET", "/")[0] == 200
        status, _, data = c.request("GET", "/static/leak.txt")
        assert status == 404 and b"SECRET" not in data
        assert [d["id"] for d in c.json("/api/datasets")["datasets"]] == ["real"]
        key = samples(root / "real")[0]["key"]
        assert c.request("GET", f"/api/image?ds=real&key={key}")[0] == 403
    finally:
        server.shutdown()
        server.server_close()


def test_browsing_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    build_dataset(TOY, out, n=20)
    before = folder_digest(out)
    names = sorted(os.listdir(out))
    server, _ = serve_in_thread(ViewerConfig(str(out), port=0))
    try:
        c = Client(server.server_address[1])
        c.json("/api/overview?ds=ds")
        for item in c.json("/api/list?limit=50&order=random")["items"]:
            c.request("GET", f"/api/thumb?ds=ds&key={item['key']}")
            c.request("GET", f"/api/image?ds=ds&key={item['key']}")
    finally:
        server.shutdown()
        server.server_close()
    assert folder_digest(out) == before and sorted(os.listdir(out)) == names


def test_toy_builds_are_deterministic(tmp_path: Path) -> None:
    build_dataset(TOY, tmp_path / "a", n=26, shard_size=10)
    build_dataset(TOY, tmp_path / "b", n=26, shard_size=10)
    assert folder_digest(tmp_path / "a") == folder_digest(tmp_path / "b")


# --------------------------------------------------------------------- speed
BIG_N = int(os.environ.get("GOT_VIEW_BIG_N", "100000"))


@pytest.fixture(scope="session")
def big_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("big") / "big"
    build_dataset("test_viewer:ViewerBulk", out, n=BIG_N, shard_size=1000)
    return out


def test_any_sample_of_a_big_dataset_opens_well_under_a_second(big_dataset: Path) -> None:
    server, _ = serve_in_thread(ViewerConfig(str(big_dataset), port=0))
    try:
        c = Client(server.server_address[1])
        timings = []
        for position in (BIG_N - 1, 0, BIG_N // 2 + 1, 77_777 % BIG_N):
            key = f"viewerbulk_{position:010d}"
            if position % 13 == 5:
                continue
            start = time.perf_counter()
            record = c.json(f"/api/sample?ds=big&key={key}")
            status, _, data = c.request("GET", f"/api/image?ds=big&key={key}")
            timings.append(time.perf_counter() - start)
            assert status == 200 and record["key"] == key and data[:4] == b"\x89PNG"
        assert max(timings) < 0.5, timings  # cold: the listing is not loaded yet
        start = time.perf_counter()
        page = c.json(f"/api/list?order=random&offset={BIG_N // 2}&limit=60")
        first_listing = time.perf_counter() - start
        assert page["total"] == BIG_N - sum(1 for p in range(BIG_N) if p % 13 == 5)
        start = time.perf_counter()
        key = c.json(f"/api/list?order=random&offset={BIG_N * 9 // 10}&limit=60")["items"][-1]["key"]
        c.json(f"/api/sample?ds=big&key={key}")
        c.request("GET", f"/api/thumb?ds=big&key={key}")
        warm = time.perf_counter() - start
        assert warm < 0.5, warm
        assert first_listing < 20, first_listing  # one-off parse of 100 manifests
        print(f"\ncold opens {[round(t * 1000) for t in timings]} ms; first listing {first_listing:.2f}s; warm page+open {warm * 1000:.0f} ms")
    finally:
        server.shutdown()
        server.server_close()


class ViewerBulk(Engine):
    """Many tiny samples fast: one shared 8x8 PNG, so a big build costs only the pipeline."""

    name = "viewerbulk"
    _png = encode_png(Image.new("RGB", (8, 6), (200, 200, 200)))

    def sample(self, position: int) -> Sample | Rejection:
        if position % 13 == 5:
            return Rejection("toy_reject", f"position {position}")
        task = TASKS[position % len(TASKS)]
        return Sample(task=task, prompt=PROMPT_OCR, target=f"word {position} " + task * (position % 7), images=[self._png])
