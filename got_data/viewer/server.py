"""The viewer's HTTP server: stdlib ``http.server``, GET for reading, POST only for flags.

Safe by default: binds 127.0.0.1, answers only to Host headers naming this machine
(DNS rebinding), serves static files only from its own static/ folder and KaTeX's dist
folder (resolved and checked, so ``..``, encoded dots, absolute paths and symlinks fail),
reads datasets only through their index and manifests, and writes only flags files.
"""

from __future__ import annotations

import json
import mimetypes
import os
import socket
import threading
import webbrowser
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from got_data.viewer.browse import Browser, Query
from got_data.viewer.catalog import Dataset, ViewerError, discover
from got_data.viewer.plots import Overview, load_tokenizer
from got_data.viewer.render import RENDERERS, RenderCache, kind_of
from got_data.viewer.thumbs import ThumbCache

REPO_ROOT = Path(__file__).resolve().parents[2]
STATIC_DIR = Path(__file__).resolve().parent / "static"
KATEX_DIR = REPO_ROOT / "node_modules" / "katex" / "dist"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
MAX_POST = 4096
_IMAGE_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; font-src 'self' data:; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


@dataclass
class ViewerConfig:
    path: str
    host: str = "127.0.0.1"
    port: int = 8765
    seed: int = 0
    tokenizer: str | None = None
    allowed_hosts: tuple[str, ...] = ()  # extra Host names to accept (besides this machine's)
    static_dir: Path = STATIC_DIR
    katex_dir: Path = KATEX_DIR


class ViewerApp:
    """Everything a request needs: datasets, caches and the routing table."""

    def __init__(self, config: ViewerConfig) -> None:
        self.config = config
        self.datasets: list[Dataset] = discover(config.path)
        if not self.datasets:
            raise ViewerError(404, f"{config.path}: no dataset folders (index.json) found")
        self.browser = Browser(self.datasets)
        self.overview = Overview(load_tokenizer(config.tokenizer))
        self.thumbs = ThumbCache()
        self.renders = RenderCache()
        self.static_roots = {"static": config.static_dir.resolve(), "katex": config.katex_dir.resolve()}

    # -- safety -------------------------------------------------------------------
    def host_allowed(self, host_header: str | None, bound_host: str) -> bool:
        if not host_header:
            return False
        host = host_header.strip().lower()
        if host.startswith("["):
            name = host[: host.find("]") + 1] if "]" in host else host
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        allowed = set(LOCAL_HOSTS) | {h.lower() for h in self.config.allowed_hosts}
        if bound_host not in ("0.0.0.0", "::", ""):
            allowed.add(bound_host.lower())
        else:
            # Bound to every interface on purpose: accept this machine's names and literal IPs only.
            allowed |= {socket.gethostname().lower(), socket.getfqdn().lower()}
            if _is_ip(name.strip("[]")):
                return True
        return name in allowed

    def static_file(self, root_name: str, rel: str) -> Path:
        root = self.static_roots[root_name]
        rel = unquote(rel)
        if not rel or "\x00" in rel or rel.startswith(("/", "\\")) or ".." in rel.replace("\\", "/").split("/"):
            raise ViewerError(404, "not found")
        path = (root / rel).resolve()
        if os.path.commonpath([str(path), str(root)]) != str(root) or not path.is_file():
            raise ViewerError(404, "not found")
        return path

    # -- API --------------------------------------------------------------------
    def api_datasets(self) -> dict[str, Any]:
        return {"datasets": [d.summary() for d in self.datasets], "seed": self.config.seed,
                "tokenizer": bool(self.overview.tokenizer)}

    def api_overview(self, params: dict[str, str]) -> dict[str, Any]:
        dataset = self.browser.dataset(params.get("ds", ""))
        return {**dataset.summary(), **self.overview.of(dataset)}

    def api_list(self, params: dict[str, str]) -> dict[str, Any]:
        query = Query.from_params(params, self.config.seed)
        page = self.browser.page(query, _int(params, "offset", 0), _int(params, "limit", 60))
        page["facets"] = self.browser.facets(query.ds)
        return page

    def api_sample(self, params: dict[str, str]) -> dict[str, Any]:
        dataset = self.browser.dataset(params.get("ds", ""))
        record = dataset.record(params.get("key", ""))
        record["flagged"] = dataset.is_flagged(record["key"])
        record["render"] = kind_of(record)
        record["ds"] = dataset.id
        return record

    def image(self, params: dict[str, str], thumb: bool) -> tuple[bytes, str]:
        dataset = self.browser.dataset(params.get("ds", ""))
        key = params.get("key", "")
        index = _int(params, "i", 0)
        if thumb:
            cached = self.thumbs.lookup((dataset.id, f"{key}#{index}"))
            if cached is not None:
                return cached, "image/jpeg"
        data, ext = dataset.image(dataset.record(key), index)
        if thumb:
            return self.thumbs.get((dataset.id, f"{key}#{index}"), data), "image/jpeg"
        return data, _IMAGE_TYPES.get(ext, "application/octet-stream")

    def render(self, kind: str, params: dict[str, str]) -> tuple[bool, str, bytes]:
        if kind not in RENDERERS:
            raise ViewerError(404, "no such renderer")
        dataset = self.browser.dataset(params.get("ds", ""))
        return self.renders.render(kind, dataset.record(params.get("key", ""))["target"])

    def flag(self, body: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("key"), str) or not isinstance(body.get("flagged"), bool):
            raise ViewerError(400, "expected {ds, key, flagged: bool}")
        dataset = self.browser.dataset(str(body.get("ds", "")))
        dataset.set_flag(body["key"], body["flagged"])
        self.browser.forget()  # "flagged only" listings are stale now
        return {"ds": dataset.id, "key": body["key"], "flagged": body["flagged"], "total_flagged": len(dataset.flagged())}


def _is_ip(text: str) -> bool:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
            return True
        except OSError:
            continue
    return False


def _int(params: dict[str, str], name: str, default: int) -> int:
    try:
        return int(params.get(name, default))
    except ValueError:
        raise ViewerError(400, f"{name} must be an integer") from None


class Handler(BaseHTTPRequestHandler):
    server_version = "got-data-view"
    sys_version = ""
    app: ViewerApp  # set on the subclass made by make_server
    quiet = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if not self.quiet:
            super().log_message(format, *args)

    # Only GET, HEAD (by GET) and POST exist; everything else is refused outright.
    def _refuse(self) -> None:
        self._send(405, b"method not allowed\n", "text/plain; charset=utf-8", {"Allow": "GET, POST"})

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Content-Security-Policy", _CSP)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: int = 200) -> None:
        body = json.dumps(data, ensure_ascii=False).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", {"Cache-Control": "no-store"})

    def _checked(self) -> tuple[str, dict[str, str]] | None:
        if not self.app.host_allowed(self.headers.get("Host"), self.server.server_address[0]):
            self._send(403, b"forbidden host\n", "text/plain; charset=utf-8")
            return None
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        return parts.path, params

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        checked = self._checked()
        if checked is None:
            return
        path, params = checked
        app = self.app
        try:
            if path in ("/", "/index.html"):
                self._file(app.static_file("static", "index.html"))
            elif path.startswith("/static/"):
                self._file(app.static_file("static", path[len("/static/"):]))
            elif path.startswith("/katex/"):
                self._file(app.static_file("katex", path[len("/katex/"):]))
            elif path == "/api/datasets":
                self._json(app.api_datasets())
            elif path == "/api/overview":
                self._json(app.api_overview(params))
            elif path == "/api/list":
                self._json(app.api_list(params))
            elif path == "/api/sample":
                self._json(app.api_sample(params))
            elif path in ("/api/image", "/api/thumb"):
                data, ctype = app.image(params, thumb=path == "/api/thumb")
                self._send(200, data, ctype, {"Cache-Control": "private, max-age=3600"})
            elif path.startswith("/api/render/"):
                ok, ctype, data = app.render(path[len("/api/render/"):], params)
                # Shown through an <img>: scripts inside an SVG never run there; the CSP blocks them anyway.
                self._send(200 if ok else 422, data, ctype,
                           {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                            "Cache-Control": "private, max-age=3600"})
            else:
                raise ViewerError(404, "not found")
        except ViewerError as exc:
            self._json({"error": str(exc)}, exc.status)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self) -> None:
        checked = self._checked()
        if checked is None:
            return
        path, _ = checked
        try:
            if path != "/api/flag":
                raise ViewerError(405, "POST is only for /api/flag")
            # A JSON content type cannot be sent cross-origin without a preflight, which we refuse.
            if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
                raise ViewerError(415, "expected application/json")
            origin = self.headers.get("Origin")
            if origin and urlsplit(origin).netloc.lower() != (self.headers.get("Host") or "").lower():
                raise ViewerError(403, "cross-origin request")
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_POST:
                raise ViewerError(413, "bad body size")
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError:
                raise ViewerError(400, "body is not JSON") from None
            self._json(self.app.flag(body))
        except ViewerError as exc:
            self._json({"error": str(exc)}, exc.status)

    def _file(self, path: Path) -> None:
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if ctype.startswith("text/") or ctype in ("application/javascript",):
            ctype += "; charset=utf-8"
        self._send(200, path.read_bytes(), ctype, {"Cache-Control": "no-cache"})


class ViewerServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(config: ViewerConfig, quiet: bool = True) -> ViewerServer:
    app = ViewerApp(config)
    handler = type("BoundHandler", (Handler,), {"app": app, "quiet": quiet})
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    server_class = type("Server", (ViewerServer,), {"address_family": family})
    server = server_class((config.host, config.port), handler)
    server.app = app  # type: ignore[attr-defined]
    return server


def url_of(server: ViewerServer) -> str:
    host, port = server.server_address[:2]
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def serve_in_thread(config: ViewerConfig) -> tuple[ViewerServer, threading.Thread]:
    """Start a server on a daemon thread (tests, notebooks); stop it with ``server.shutdown()``."""
    server = make_server(config)
    thread = threading.Thread(target=server.serve_forever, name="got-data-view", daemon=True)
    thread.start()
    return server, thread


def run(config: ViewerConfig, open_browser: bool = True) -> int:
    server = make_server(config, quiet=True)
    url = url_of(server)
    names = ", ".join(d.id for d in server.app.datasets)  # type: ignore[attr-defined]
    print(f"got-data view: serving {names} at {url} (Ctrl-C to stop)")
    if config.host not in ("127.0.0.1", "localhost", "::1"):
        print("got-data view: warning: listening beyond this machine; anyone who can reach it can read these datasets")
    if open_browser:
        threading.Timer(0.3, lambda: webbrowser.open(url)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
