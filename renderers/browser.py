"""A reusable headless-Chromium renderer: Playwright (sync API) driving the system Chromium.

One :class:`Browser` holds one Chromium and one page. It is meant to live for the whole
life of a worker (see :func:`shared_browser`), so a render costs a JavaScript call, not a
browser start. Three guarantees:

* **Offline.** Chromium gets flags that switch off its own background traffic and a proxy
  to nowhere; every request the page makes goes through a route that lets only ``file:``,
  ``data:``, ``blob:`` and ``about:`` through and aborts (and counts) everything else.
* **Recoverable.** ``call`` runs a JS function with a deadline. A call past the deadline
  kills Chromium; a crash or kill restarts the browser and the call is retried once. A
  second failure raises :class:`RenderError` with a stable ``reason`` the engine turns
  into a Rejection. A JS exception is not retried (the input is bad, not the browser).
* **No leaked processes.** Chromium is started through a tiny launcher that sets
  ``PR_SET_PDEATHSIG`` (it dies with the Playwright driver) and forks a watchdog that
  kills Chromium's whole process group when either the owning Python process or the
  Chromium main process goes away, also after SIGKILL of the owner.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_CHROMIUM = "/usr/bin/chromium"

# Flags that keep Chromium off the network and its output reproducible.
OFFLINE_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--no-pings",
    "--metrics-recording-only",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,"
    "CertificateTransparencyComponentUpdater,InterestFeedContentSuggestions",
    # Anything that still tries to leave the machine goes to a proxy that is not there,
    # and host names resolve to nothing.
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    # Reproducible pixels: software raster, sRGB, no font hinting differences, no scrollbars.
    "--force-color-profile=srgb",
    "--font-render-hinting=none",
    "--hide-scrollbars",
    "--mute-audio",
    "--disable-dev-shm-usage",
)

ALLOWED_SCHEMES = ("file:", "data:", "blob:", "about:")

# Environment variable that tags every process of a Browser (inherited by Chromium's
# children), so tests and the watchdog can find them.
TAG_ENV = "GOT_DATA_BROWSER_TAG"

_LAUNCHER = r'''
import ctypes, os, select, signal, sys
PR_SET_PDEATHSIG = 1
libc = ctypes.CDLL(None, use_errno=True)
parent = os.getppid()
# Die with the Playwright driver that started us.
libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
if os.getppid() != parent:
    sys.exit(1)
chromium, pidfile = os.environ["GOT_DATA_CHROMIUM_BIN"], os.environ["GOT_DATA_BROWSER_PIDFILE"]
owner = int(os.environ.get("GOT_DATA_BROWSER_OWNER", "0"))
me = os.getpid()
with open(pidfile + ".tmp", "w") as f:
    f.write(str(me))
os.replace(pidfile + ".tmp", pidfile)
if os.fork() == 0:
    # Watchdog: when the owner or Chromium's main process ends, kill Chromium's process group.
    for fd in range(3, 1024):
        try:
            os.close(fd)
        except OSError:
            pass
    fds = []
    for pid in (owner, me):
        if pid:
            try:
                fds.append(os.pidfd_open(pid))
            except OSError:
                fds = None
                break
    if fds:
        select.select(fds, [], [])
    try:
        os.killpg(os.getpgid(me), signal.SIGKILL)
    except OSError:
        pass
    try:
        os.kill(me, signal.SIGKILL)
    except OSError:
        pass
    os._exit(0)
os.execv(chromium, [chromium] + sys.argv[1:])
'''


class RenderError(RuntimeError):
    """A render that failed for good; ``reason`` is a short stable code for errors.jsonl."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class JavaScriptError(RenderError):
    """The page's code threw: the input is bad, the browser is fine."""


def chromium_path() -> str:
    path = os.environ.get("GOT_DATA_CHROMIUM", DEFAULT_CHROMIUM)
    if not os.access(path, os.X_OK):
        raise RenderError("browser_missing", f"no Chromium at {path} (install Debian's chromium or set GOT_DATA_CHROMIUM)")
    return path


@dataclass
class BrowserOptions:
    width: int = 1024
    height: int = 1024
    device_scale_factor: float = 1.0
    call_timeout: float = 20.0  # seconds for one JS call before Chromium is killed
    launch_timeout: float = 60.0
    setup: Callable[[Any], None] | None = None  # called with the page after every (re)start
    extra_flags: tuple[str, ...] = ()


@dataclass
class BrowserStats:
    starts: int = 0
    restarts: int = 0
    calls: int = 0
    blocked_requests: list[str] = field(default_factory=list)
    allowed_requests: list[str] = field(default_factory=list)


class Browser:
    """One Chromium process and one page, started lazily, restarted on crash or hang."""

    def __init__(self, options: BrowserOptions | None = None) -> None:
        self.options = options or BrowserOptions()
        self.stats = BrowserStats()
        self.tag = f"{os.getpid()}-{id(self):x}"
        self._pw: Any = None
        self._browser: Any = None
        self._page: Any = None
        self._pid: int | None = None
        self._dir: tempfile.TemporaryDirectory | None = None

    # -- lifecycle -------------------------------------------------------------
    @property
    def page(self) -> Any:
        if self._page is None:
            self._start()
        return self._page

    @property
    def pid(self) -> int | None:
        """The Chromium main process id (also its process group id)."""
        return self._pid

    def _start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="got-data-browser-")
        folder = Path(self._dir.name)
        launcher = folder / "chromium-launcher"
        launcher.write_text(f"#!{sys.executable}\n{_LAUNCHER}")
        launcher.chmod(0o700)
        pidfile = folder / "chromium.pid"
        env = {
            **os.environ,
            "GOT_DATA_CHROMIUM_BIN": chromium_path(),
            "GOT_DATA_BROWSER_PIDFILE": str(pidfile),
            "GOT_DATA_BROWSER_OWNER": str(os.getpid()),
            TAG_ENV: self.tag,
        }
        if self._pw is None:
            self._pw = _playwright_acquire()
        try:
            self._browser = self._pw.chromium.launch(
                executable_path=str(launcher),
                args=[*OFFLINE_FLAGS, *self.options.extra_flags],
                env=env,
                headless=True,
                timeout=self.options.launch_timeout * 1000,
                handle_sigint=False,
                handle_sigterm=False,
                handle_sighup=False,
            )
            self._pid = int(pidfile.read_text())
            context = self._browser.new_context(
                viewport={"width": self.options.width, "height": self.options.height},
                device_scale_factor=self.options.device_scale_factor,
                service_workers="block",
                offline=True,
            )
            context.route("**/*", self._route)
            self._page = context.new_page()
            self._page.set_default_timeout(self.options.call_timeout * 1000)
            if self.options.setup is not None:
                self.options.setup(self._page)
        except Exception:
            self._kill()
            raise
        self.stats.starts += 1

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(ALLOWED_SCHEMES):
            self.stats.allowed_requests.append(url)
            route.continue_()
        else:
            self.stats.blocked_requests.append(url)
            route.abort("blockedbyclient")

    def _kill(self) -> None:
        """Kill Chromium hard (its whole process group) and forget the page."""
        if self._pid is not None:
            try:
                os.killpg(self._pid, signal.SIGKILL)
            except OSError:
                pass
        if self._browser is not None:
            try:
                self._browser.close()
            except Exception:  # noqa: BLE001 - the process is already gone
                pass
        self._browser = self._page = None
        self._pid = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def restart(self) -> None:
        self._kill()
        self.stats.restarts += 1
        self._start()

    def close(self) -> None:
        if self._browser is not None:
            try:
                self._browser.close()
            except Exception:  # noqa: BLE001 - closing a dead browser
                pass
        self._kill()
        if self._pw is not None:
            _playwright_release()
            self._pw = None

    # -- calls -----------------------------------------------------------------
    def call(self, function: str, arg: Any = None, timeout: float | None = None) -> Any:
        """``page.evaluate(function, arg)`` with a deadline; restart and retry once on crash or hang."""
        last: RenderError | None = None
        for _attempt in range(2):
            try:
                return self._call_once(function, arg, timeout)
            except JavaScriptError:
                raise
            except RenderError as exc:
                last = exc
                self._kill()
                self.stats.restarts += 1
        assert last is not None
        raise last

    def _call_once(self, function: str, arg: Any, timeout: float | None) -> Any:
        from playwright.sync_api import Error as PlaywrightError

        page = self.page
        pid = self._pid
        limit = self.options.call_timeout if timeout is None else timeout
        fired = threading.Event()

        def on_deadline() -> None:
            # Only kill: the sync Playwright API must not be used from another thread.
            fired.set()
            if pid is not None:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass

        timer = threading.Timer(limit, on_deadline)
        timer.daemon = True
        timer.start()
        self.stats.calls += 1
        try:
            return page.evaluate(function, arg)
        except PlaywrightError as exc:
            message = str(exc).split("\n")[0]
            if fired.is_set():
                raise RenderError("browser_timeout", f"page did not finish within {limit:g} s") from None
            if not self._alive():
                raise RenderError("browser_crash", message) from None
            raise JavaScriptError("javascript_error", message) from None
        finally:
            timer.cancel()

    def _alive(self) -> bool:
        if self._pid is None or self._browser is None or not self._browser.is_connected():
            return False
        try:
            os.kill(self._pid, 0)
        except OSError:
            return False
        return self._page is not None and not self._page.is_closed()


# One Playwright driver per process (its sync API allows only one per thread), shared by every
# Browser and kept for the life of the process: stopping and restarting it, or stopping it from a
# watchdog thread, can leave Playwright's event loop marked running, and the next start then fails.
_PW: dict[str, Any] = {"driver": None}


def _playwright_acquire() -> Any:
    from playwright.sync_api import sync_playwright

    if _PW["driver"] is None:
        _PW["driver"] = sync_playwright().start()
        atexit.register(_playwright_stop)
    return _PW["driver"]


@contextlib.contextmanager
def shared_playwright() -> Iterator[Any]:
    """This process's Playwright driver, for code that drives its own pages (the viewer's tests):
    a second ``sync_playwright()`` in a thread that already has one is refused by Playwright."""
    yield _playwright_acquire()


def _playwright_release() -> None:
    """A Browser is done with the driver; it stays up for the next one (see above)."""


def _playwright_stop() -> None:
    driver, _PW["driver"] = _PW["driver"], None
    if driver is not None:
        try:
            driver.stop()
        except Exception:  # noqa: BLE001 - at exit the driver may already be gone
            pass


def tagged_processes(tag: str | None = None) -> list[int]:
    """Pids of live Chromium processes started by a Browser (with ``tag``, only that one's)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if ") Z " in stat:  # zombies hold no resources; their parent reaps them
            continue
        marker = f"{TAG_ENV}={tag}".encode() if tag else f"{TAG_ENV}=".encode()
        if any(item.startswith(marker) and (tag is None or item == marker) for item in environ.split(b"\0")):
            pids.append(int(entry.name))
    return pids


def wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    """Wait until none of ``pids`` is alive (zombies count as gone); return those still alive."""
    deadline = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _is_live(pid)]
        if alive:
            time.sleep(0.05)
    return alive


def _is_live(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return ") Z " not in stat


# -- per-worker cache ------------------------------------------------------------
_SHARED: dict[str, Browser] = {}


def shared_browser(key: str, options_factory: Callable[[], BrowserOptions]) -> Browser:
    """The worker's Browser for ``key`` (one per renderer), created on first use."""
    browser = _SHARED.get(key)
    if browser is None:
        browser = _SHARED[key] = Browser(options_factory())
    return browser


def close_shared(key: str | None = None) -> None:
    for name in [key] if key else list(_SHARED):
        browser = _SHARED.pop(name, None) if name else None
        if browser is not None:
            browser.close()


atexit.register(close_shared)
