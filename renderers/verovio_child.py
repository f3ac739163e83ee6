"""The Verovio child process: engraves **kern requests from its worker, one at a time.

Run as ``python -S verovio_child.py SITE ROOT`` by ``renderers.verovio_render.Engraver``: no site
processing (the venv's .pth finders cost ~15 ms), ``SITE`` holds verovio (and the venv's other
packages), ``ROOT`` holds this project. Requests are JSON lines on stdin; per request the child
writes one JSON header line, then the SVG or PNG bytes it announces.

With ``"png": true`` the child also rasterises and encodes page 1 when it is one system on one
page (the music engine's case), so the page never crosses the pipe as SVG and Verovio, librsvg
and the PNG encoder run back to back in one process, as in a plain renderer loop (an engine A/B
gave ~0.9 ms less CPU per sample than rasterising in the worker, within this machine's noise).
numpy, libvips and PIL are imported on the first such request only, so a child that only answers
SVG (the viewer) starts in ~50 ms.

Verovio runs with its log off (formatting warnings costs ~1.5 % of an engraving); when a load
fails, it is loaded again with warnings on and stderr captured, so the error carries Verovio's words.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from typing import Any, BinaryIO


def _load(tk: Any, request: dict[str, Any]) -> tuple[bool, int]:
    tk.resetOptions()
    tk.setOptions(request["options"])
    ok = tk.loadData(request["kern"])
    return bool(ok), tk.getPageCount() if ok else 0


def _explain(tk: Any, verovio: Any, request: dict[str, Any]) -> str:
    """Load a failed request again with warnings on and return what Verovio wrote.

    Verovio (and its Humdrum reader) write warnings and errors to file descriptor 2, not to
    ``getLog()``, so stderr is pointed at a temporary file for this one load.
    """
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(capture.fileno(), 2)
        verovio.enableLog(verovio.LOG_WARNING)
        try:
            _load(tk, request)
        finally:
            verovio.enableLog(verovio.LOG_OFF)
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        return capture.read(4000).decode("utf-8", "replace")


def answer(tk: Any, verovio: Any, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """The reply header and payload for one request."""
    from renderers.verovio_render import system_layout

    ok, pages = _load(tk, request)
    head: dict[str, Any] = {"ok": ok, "log": "", "pages": pages, "systems": 0, "first": 0}
    if not (ok and pages):
        head["log"] = _explain(tk, verovio, request)
        return head, b""
    svg = tk.renderToSVG(1).encode("utf-8")
    head["systems"], head["first"] = system_layout(svg)
    if not request.get("png"):
        head["svg_bytes"] = len(svg)
        return head, svg
    if pages != 1 or head["systems"] != 1:
        return head, b""  # the worker shrinks the excerpt and asks again: no image needed
    from renderers.image import encode_png
    from renderers.verovio_render import rasterize

    try:
        png = encode_png(rasterize(svg))
    except Exception as exc:  # a page librsvg cannot draw is this request's error, not the child's end
        return {**head, "ok": False, "reason": "raster_error", "log": f"{type(exc).__name__}: {exc}"}, b""
    head.update(png_bytes=len(png.data), width=png.width, height=png.height)
    return head, png.data


def serve(requests: BinaryIO, replies: BinaryIO) -> None:
    import verovio

    verovio.enableLog(verovio.LOG_OFF)
    tk = verovio.toolkit()
    for raw in requests:
        head, payload = answer(tk, verovio, json.loads(raw))
        replies.write(json.dumps(head).encode() + b"\n")
        replies.write(payload)
        replies.flush()


if __name__ == "__main__":
    # sys.path[0] is this file's folder: replace it, so no module here shadows a top-level one.
    sys.path[0:1] = [sys.argv[2], sys.argv[1]]
    serve(sys.stdin.buffer, sys.stdout.buffer)
