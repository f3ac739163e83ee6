"""The viewer in a real browser (system Chromium via Playwright): browse, open, overlay, render, flag.

A screenshot of each page is saved under the test's tmp_path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import build_dataset, samples
from test_viewer import TOY

from got_data.viewer.server import ViewerConfig, serve_in_thread
from manifests.flags import FLAGS_NAME, load_flags

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists(), reason="no system Chromium")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("viewer-browser")
    build_dataset(TOY, root / "toy", n=40, shard_size=20, params={"size": 240})
    server, _ = serve_in_thread(ViewerConfig(str(root), port=0, seed=1))
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def page(site):
    from renderers.browser import shared_playwright

    with shared_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        tab = context.new_page()
        problems: list[str] = []
        tab.on("pageerror", lambda exc: problems.append(str(exc)))
        tab.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
        tab.problems = problems  # type: ignore[attr-defined]
        yield tab
        context.close()
        browser.close()


def test_overview_shows_counts_and_plots(site, page, tmp_path: Path) -> None:
    root, url = site
    page.goto(url)
    page.wait_for_selector("#ds-toy svg.plot")
    text = page.inner_text("#ds-toy")
    assert str(len(samples(root / "toy"))) in text and "toy_reject" in text
    assert page.locator("#ds-toy svg.plot").count() >= 4
    page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)
    assert not page.problems, page.problems  # type: ignore[attr-defined]


def test_browse_open_overlay_render_and_flag(site, page, tmp_path: Path) -> None:
    root, url = site
    truth = {r["key"]: r for r in samples(root / "toy")}
    page.goto(url + "#browse?ds=toy")
    page.wait_for_selector(".tile img")
    assert page.locator(".tile").count() == len(truth)
    page.wait_for_function("() => [...document.querySelectorAll('.tile img')].slice(0, 8).every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(tmp_path / "browse.png"))

    # Filter to box-guided samples and open the first: the overlay draws its box.
    page.select_option("select[name=task]", "box")
    page.wait_for_function("() => document.querySelectorAll('.tile').length > 0 && [...document.querySelectorAll('.tile .chip')].every(c => c.textContent === 'box' || c.textContent.includes('images'))")
    page.locator(".tile").first.click()
    page.wait_for_selector(".overlay rect")
    key = page.inner_text(".sample-bar .where b")
    box = truth[key]["boxes"][0]
    rect = page.locator(".overlay rect").first
    assert [int(float(rect.get_attribute(a))) for a in ("x", "y")] == box[:2]
    assert page.locator(".stage img").evaluate("i => i.complete && i.naturalWidth") == truth[key]["images"][0]["width"]

    # j moves to the next box sample; k comes back.
    page.keyboard.press("j")
    page.wait_for_function(f"() => document.querySelector('.sample-bar .where b')?.textContent !== '{key}'")
    assert truth[page.inner_text(".sample-bar .where b")]["task"] == "box"
    page.keyboard.press("k")
    page.wait_for_function(f"() => document.querySelector('.sample-bar .where b')?.textContent === '{key}'")

    # f flags it: the button changes and the flags file holds the key.
    page.wait_for_selector(".overlay rect")
    page.keyboard.press("f")
    page.wait_for_selector("button.flag.on")
    assert load_flags(str(root / "toy")) == {key}
    page.screenshot(path=str(tmp_path / "sample-box.png"))
    page.click("button.flag")  # unflag
    page.wait_for_selector("button.flag:not(.on)")
    assert load_flags(str(root / "toy")) == set()
    lines = [json.loads(line) for line in (root / "toy" / FLAGS_NAME).read_text().splitlines()]
    assert lines == [{"flagged": True, "key": key}, {"flagged": False, "key": key}]
    assert not page.problems, page.problems  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("task", "selector"),
    [
        ("formula", ".rendered .katex"),
        ("chart", ".rendered table.data td"),
        ("molecule", ".rendered img.svg-render"),
        ("music", ".rendered img.svg-render"),
        ("geometry", ".rendered img.svg-render"),
        ("color", ".overlay rect[stroke='#e02424']"),
    ],
)
def test_targets_are_rendered_back(site, page, tmp_path: Path, task: str, selector: str) -> None:
    root, url = site
    record = next(r for r in samples(root / "toy") if r["task"] == task)
    page.goto(url + f"#sample?ds=toy&key={record['key']}&i=0")
    page.wait_for_selector(selector, timeout=30_000)
    if selector.endswith("svg-render"):
        assert page.locator(selector).evaluate("i => i.naturalWidth") > 50
    if task == "formula":
        assert page.locator(".rendered .katex-display").count() == 1 and page.locator(".rendered h3").count() == 1
        assert page.locator(".math-error").count() == 0
    page.screenshot(path=str(tmp_path / f"sample-{task}.png"))
    assert not page.problems, page.problems  # type: ignore[attr-defined]
