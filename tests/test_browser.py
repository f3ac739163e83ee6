"""The headless-Chromium renderer: offline, restarts on crash and hang, never leaks a process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from renderers.browser import Browser, BrowserOptions, RenderError, chromium_path, tagged_processes, wait_gone

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(not os.access(os.environ.get("GOT_DATA_CHROMIUM", "/usr/bin/chromium"), os.X_OK),
                                reason="no system Chromium")  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    b = Browser(BrowserOptions(width=400, height=300, call_timeout=3.0))
    yield b
    tag = b.tag
    b.close()
    assert wait_gone(tagged_processes(tag)) == []


def test_chromium_is_the_system_one():
    assert chromium_path() == os.environ.get("GOT_DATA_CHROMIUM", "/usr/bin/chromium")


def test_network_is_blocked_and_counted(browser, tmp_path):
    local = tmp_path / "page.html"
    local.write_text("<p>local</p>")
    got = browser.call(
        """async (url) => {
            const out = [];
            for (const u of ['http://example.com/', 'https://127.0.0.1:9/x.js', url]) {
                try { const r = await fetch(u); out.push(r.ok ? 'ok' : 'status'); } catch (e) { out.push('blocked'); }
            }
            return out;
        }""",
        local.as_uri(),
    )
    assert got[:2] == ["blocked", "blocked"]
    assert "http://example.com/" in browser.stats.blocked_requests
    assert "https://127.0.0.1:9/x.js" in browser.stats.blocked_requests
    assert all(url.startswith(("file:", "data:", "blob:", "about:")) for url in browser.stats.allowed_requests)


def test_javascript_error_is_not_a_crash(browser):
    browser.call("() => 0")  # the browser starts lazily: count restarts from a running one
    starts = browser.stats.starts
    with pytest.raises(RenderError) as info:
        browser.call("() => { throw new Error('bad input') }")
    assert info.value.reason == "javascript_error" and "bad input" in str(info.value)
    assert browser.call("() => 6 * 7") == 42
    assert browser.stats.starts == starts  # no restart for bad input


def test_hang_kills_restarts_and_next_call_works(browser):
    before = browser.pid
    t0 = time.monotonic()
    with pytest.raises(RenderError) as info:
        browser.call("() => { while (true) {} }", timeout=1.0)
    assert info.value.reason == "browser_timeout"
    assert time.monotonic() - t0 < 30
    assert browser.call("() => 'alive'") == "alive"
    assert browser.pid != before
    # Only the live browser's processes remain: the killed ones are gone.
    live = set(tagged_processes(browser.tag))
    assert before not in live


def test_crash_is_retried_transparently(browser):
    browser.call("() => 1")
    old = browser.pid
    old_pids = tagged_processes(browser.tag)
    os.killpg(old, signal.SIGKILL)
    assert wait_gone(old_pids) == []
    restarts = browser.stats.restarts
    assert browser.call("() => 'retried'") == "retried"
    assert browser.stats.restarts == restarts + 1


def test_close_leaves_no_process():
    b = Browser(BrowserOptions(width=200, height=200))
    assert b.call("() => 1") == 1
    pids = tagged_processes(b.tag)
    assert len(pids) >= 2  # browser + its helpers (and our watchdog)
    b.close()
    assert wait_gone(pids) == []


_OWNER = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {root!r})
    from renderers.browser import Browser, BrowserOptions
    b = Browser(BrowserOptions(width=200, height=200))
    b.call("() => 1")
    print(b.tag, flush=True)
    time.sleep(600)
    """
)


@pytest.mark.parametrize("layers", [1, 2], ids=["owner", "worker-of-driver"])
def test_sigkill_of_owner_leaves_no_chromium(tmp_path, layers):
    """SIGKILL the process that owns the browser (or its parent, which then kills the child) -> Chromium dies."""
    script = tmp_path / "owner.py"
    script.write_text(_OWNER.format(root=str(ROOT)))
    if layers == 1:
        cmd = [sys.executable, str(script)]
    else:
        # A 'driver' that runs a 'worker' and is killed with it, like a Ray worker killed by its raylet.
        cmd = [sys.executable, "-c", f"import subprocess, sys; subprocess.run([sys.executable, {str(script)!r}])"]
    owner = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        tag = owner.stdout.readline().strip()
        assert tag, "the owner process did not start its browser"
        pids = tagged_processes(tag)
        assert pids
        if layers == 1:
            owner.kill()
        else:
            os.killpg(owner.pid, signal.SIGKILL)  # driver and worker, all at once
        owner.wait()
        assert wait_gone(pids, timeout=15) == [], "Chromium outlived its owner"
        assert tagged_processes(tag) == []
    finally:
        if owner.poll() is None:
            owner.kill()
