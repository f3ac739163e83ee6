"""PyMuPDF page rendering and analysis, run in a sandboxed child process.

A PDF is untrusted input: a truncated xref, a 200000 pt page, a decompression bomb or a
deeply nested form can make MuPDF spin or allocate gigabytes. Every open / render /
extract therefore happens in one persistent child per worker (``python -m
renderers.pdf_raster``) with an address-space limit (RLIMIT_AS) and a per-request time
limit. A child that dies or overruns is killed and restarted on the next request; the
caller gets a :class:`PdfError` with a stable reason and turns it into a Rejection.
The child keeps ``import pymupdf`` (~0.9 s) and an LRU of open documents. The ``page`` op does the
whole per-page job there (render, extract, filter, verdict, mask, PNG encode), so what crosses the
pipe is the PNG (~180 KB) and the text, not 3 MB of raw RGB, and a rejected page is never encoded.
"""

from __future__ import annotations

import fcntl
import io
import os
import pickle
import resource
import select
import struct
import subprocess
import sys
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engines.base import EncodedImage
from renderers import pdf_text
from renderers.image import encode_png_fast

MAX_PAGE_PT = 14400.0  # the PDF spec's largest page side (200 in); bigger is pathological
_DOC_CACHE = 32  # open documents kept by the child; 8 -> 32: +9-16% pages per CPU-s when documents recur (bench)
_FRAME = struct.Struct("<Q")
_PIPE_BYTES = 1 << 20


class PdfError(Exception):
    """A document or page that cannot be used; ``reason`` is the stable code for errors.jsonl."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class PageRender:
    image: np.ndarray | None  # H x W x 3 uint8, the page at ``scale`` pixels per point (None: not sent)
    scale: float
    text: pdf_text.PageText
    png: EncodedImage | None = None  # the same pixels encoded in the child (``page`` op, image="png")
    size: tuple[int, int] = (0, 0)  # (width, height) of the page image in pixels


def pixel_box(box: pdf_text.Box, scale: float, width: int, height: int, pad: float = 0.0) -> list[int]:
    return [max(0, int(np.floor(box[0] * scale - pad))), max(0, int(np.floor(box[1] * scale - pad))),
            min(width, int(np.ceil(box[2] * scale + pad))), min(height, int(np.ceil(box[3] * scale + pad)))]


def mask_boxes(image: np.ndarray, boxes: list[pdf_text.Box], scale: float) -> np.ndarray:
    """Paint unlabelable text over with the colour around it, so the image shows only labelled text."""
    out = image.copy()
    h, w = out.shape[:2]
    for b in boxes:
        x0, y0, x1, y1 = pixel_box(b, scale, w, h, pad=1.0)
        if x1 <= x0 or y1 <= y0:
            continue
        ring = np.concatenate([out[max(0, y0 - 1), x0:x1], out[min(h - 1, y1), x0:x1]])
        out[y0:y1, x0:x1] = np.median(ring, axis=0).astype(np.uint8) if len(ring) else 255
    return out


# -- child side: the real work ---------------------------------------------------------

_docs: OrderedDict[str, Any] = OrderedDict()


def _read_source(src: str) -> bytes | None:
    """Bytes of a non-local source (fsspec URL); None for a local path (opened by MuPDF directly)."""
    if "://" not in src or src.startswith("file://"):
        return None
    import fsspec

    with fsspec.open(src, "rb") as f:
        return f.read()


def open_doc(src: str) -> Any:
    import pymupdf

    doc = _docs.get(src)
    if doc is not None:
        _docs.move_to_end(src)
        return doc
    local = src[len("file://"):] if src.startswith("file://") else src
    data = _read_source(src)
    try:
        doc = pymupdf.open(stream=data, filetype="pdf") if data is not None else pymupdf.open(local, filetype="pdf")
    except Exception as exc:  # noqa: BLE001 - MuPDF raises many types for bad files
        raise PdfError("unreadable_pdf", f"{type(exc).__name__}: {exc}") from None
    if doc.needs_pass:
        raise PdfError("encrypted_pdf", "the document needs a password")
    if doc.page_count == 0:
        if doc.is_repaired:
            raise PdfError("broken_pdf", "damaged file (bad xref / truncated): repair recovered no pages")
        raise PdfError("zero_pages", "the document has no pages")
    doc._got_data_bytes = data
    _docs[src] = doc
    while len(_docs) > _DOC_CACHE:
        _docs.popitem(last=False)[1].close()
    return doc


def count_pages(src: str) -> int:
    return open_doc(src).page_count


def _page(src: str, pno: int) -> Any:
    doc = open_doc(src)
    try:
        page = doc[pno]
    except Exception as exc:  # noqa: BLE001
        raise PdfError("broken_page", f"page {pno + 1}: {type(exc).__name__}: {exc}") from None
    r = page.rect
    if r.width <= 1 or r.height <= 1 or max(r.width, r.height) > MAX_PAGE_PT:
        raise PdfError("page_size", f"page {pno + 1} is {r.width:.0f} x {r.height:.0f} pt (limit {MAX_PAGE_PT:.0f})")
    return page


def _pixmap_array(pix: Any, copy: bool = True) -> np.ndarray:
    """The pixmap's RGB pixels. Without ``copy`` a view: valid only while ``pix`` is alive (the
    memoryview does not keep the pixmap alive)."""
    arr = np.frombuffer(pix.samples_mv, dtype=np.uint8).reshape(pix.height, pix.stride)
    view = arr[:, : pix.width * 3].reshape(pix.height, pix.width, 3)
    return view.copy() if copy else view


def _bboxlog(dl: Any) -> list[tuple[str, pdf_text.Box]]:
    """Page.get_bboxlog() replayed from a display list: the same (kind, box) entries in painting order,
    except items the list culls (empty boxes, e.g. space glyphs, and unbounded shadings), which the
    filters ignore anyway (checked equal on every non-rotated page of shared/data/pdfs)."""
    import pymupdf
    from pymupdf import mupdf

    log: list[tuple[str, Any]] = []
    dev = pymupdf.JM_new_bbox_device(log, False)
    mupdf.fz_run_display_list(dl.this, dev, mupdf.FzMatrix(), mupdf.FzRect(mupdf.FzRect.Fixed_INFINITE),
                              mupdf.FzCookie())
    mupdf.fz_close_device(dev)
    return [(kind, tuple(b)) for kind, b in log]


_probe_class: Any = None


def _paints_images(dl: Any) -> bool:
    """Whether a display list paints any raster image (the bbox log's "fill-image" entries). Only the
    fill_image callback reaches Python; MuPDF walks the other items in C (~0.04 ms vs ~1 ms)."""
    global _probe_class
    from pymupdf import mupdf

    if _probe_class is None:
        class Probe(mupdf.FzDevice2):  # type: ignore[misc, name-defined]
            def __init__(self) -> None:
                super().__init__()
                self.found = False
                self.use_virtual_fill_image()

            def fill_image(self, ctx: Any, image: Any, ctm: Any, alpha: Any, color_params: Any) -> None:
                self.found = True

        _probe_class = Probe
    dev = _probe_class()
    mupdf.fz_run_display_list(dl.this, dev, mupdf.FzMatrix(), mupdf.FzRect(mupdf.FzRect.Fixed_INFINITE),
                              mupdf.FzCookie())
    mupdf.fz_close_device(dev)
    return bool(dev.found)


def analyze_page(src: str, pno: int, long_side: int, parser: str) -> PageRender:
    """Render a page with its long side at ``long_side`` px and extract its readable text."""
    render, pix = _analyze(src, pno, long_side, parser)
    render.image = render.image.copy()  # type: ignore[union-attr]
    del pix
    return render


def _analyze(src: str, pno: int, long_side: int, parser: str) -> tuple[PageRender, Any]:
    """analyze_page with the image as a view into the returned pixmap (keep it alive while used)."""
    import pymupdf

    page = _page(src, pno)
    w, h = page.rect.width, page.rect.height
    scale = long_side / max(w, h)
    try:
        matrix = pymupdf.Matrix(scale, scale)
        rot = page.rotation_matrix
        if tuple(rot) == (1.0, 0.0, 0.0, 1.0, 0.0, 0.0) and hasattr(pymupdf, "JM_new_bbox_device"):
            # One interpretation of the page for both the pixels and the painting log (get_pixmap
            # builds this display list anyway; get_bboxlog would run the page a second time).
            dl = page.get_displaylist()
            pix = dl.get_pixmap(matrix=matrix, alpha=False, colorspace=pymupdf.csRGB)
            # The painting log only matters when a raster image is painted (occlusion, scan cover):
            # probe for one without a Python call per text item, then log in full.
            log = _bboxlog(dl) if _paints_images(dl) else []
            del dl
        else:  # rotated page (the log is in unrotated space) or a PyMuPDF without the bbox device
            pix = page.get_pixmap(matrix=matrix, alpha=False, colorspace=pymupdf.csRGB)
            log = [(kind, tuple(pymupdf.Rect(b) * rot)) for kind, b in page.get_bboxlog()]
        image = _pixmap_array(pix, copy=False)
        if parser == "pdfminer":
            doc = open_doc(src)
            data = doc._got_data_bytes
            local = src[len("file://"):] if src.startswith("file://") else src
            stream = io.BytesIO(data) if data is not None else open(local, "rb")  # noqa: SIM115
            with stream:
                raw = pdf_text.pdfminer_lines(stream, pno, page)
        else:
            raw = pdf_text.pymupdf_lines(page)
    except PdfError:
        raise
    except MemoryError:
        raise PdfError("out_of_memory", f"page {pno + 1} needs more than the memory limit") from None
    except ValueError as exc:
        if str(exc).startswith("rotated_page"):
            raise PdfError("rotated_page", str(exc)) from None
        raise PdfError("broken_page", f"page {pno + 1}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # noqa: BLE001
        raise PdfError("broken_page", f"page {pno + 1}: {type(exc).__name__}: {exc}") from None
    page_box = (0.0, 0.0, w, h)
    cover = min(1.0, sum(pdf_text.overlap(b, page_box) for kind, b in log if kind == "fill-image") / (w * h))
    text = pdf_text.filter_lines(raw, w, h, pdf_text.occluded_text(log), image, scale, cover)
    return PageRender(image, scale, text, size=(image.shape[1], image.shape[0])), pix


def page_sample(src: str, pno: int, long_side: int, parser: str, min_chars: int, max_masked: float,
                image: str = "png", png_level: int = 2) -> PageRender:
    """A usable page, ready to ship: analysed, judged (PdfError with the rejection reason), unlabelable
    text masked, and the image as ``image`` says: "png" (encoded here), "raw" (the array) or "none"."""
    render, pix = _analyze(src, pno, long_side, parser)
    why = pdf_text.verdict(render.text, min_chars, max_masked)
    if why is not None:
        raise PdfError(*why)
    pixels = render.image
    assert pixels is not None
    if render.text.masked:
        pixels = mask_boxes(pixels, render.text.masked, render.scale)  # a copy
    elif image == "raw":
        pixels = pixels.copy()  # the view dies with ``pix``
    render.image = pixels if image == "raw" else None
    if image == "png":
        render.png = encode_png_fast(pixels, png_level, "sub")  # from the pixmap's memory: no 3 MB copy
    del pix
    return render


def render_clip(src: str, pno: int, box: tuple[float, float, float, float], zoom: float,
                png_level: int | None = None) -> np.ndarray | EncodedImage:
    """The region ``box`` (points) of a page at ``zoom`` pixels per point; PNG-encoded when ``png_level``."""
    import pymupdf

    page = _page(src, pno)
    pix = page.get_pixmap(matrix=pymupdf.Matrix(zoom, zoom), clip=pymupdf.Rect(box), alpha=False,
                          colorspace=pymupdf.csRGB)
    pixels = _pixmap_array(pix)
    return pixels if png_level is None else encode_png_fast(pixels, png_level, "sub")


_OPS = {"count": count_pages, "analyze": analyze_page, "page": page_sample, "clip": render_clip}


def _serve(mem_mb: int) -> None:
    """Child main loop: length-prefixed pickles on stdin/stdout."""
    if mem_mb > 0:
        limit = mem_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # stray prints (MuPDF warnings) must not corrupt the protocol
    inp = os.fdopen(0, "rb")
    import gc

    # pymupdf 2.x imports its ONNX layout analyser (pymupdf.layout, onnxruntime) when it is importable;
    # nothing here uses it (same text and pixels without it): the child starts in ~0.3 s instead of
    # ~0.9 s with ~55 MB less. An ImportError there is expected by pymupdf (its optional package).
    sys.modules.setdefault("pymupdf.layout", None)  # type: ignore[arg-type]
    import pymupdf

    pymupdf.TOOLS.mupdf_display_errors(False)
    pymupdf.TOOLS.mupdf_display_warnings(False)
    # The ~65K objects the imports made live as long as the child: out of the collector's sight, a full
    # collection (~30 ms, one every ~100 pages: the text dicts allocate many containers) skips them.
    gc.freeze()
    while True:
        head = inp.read(_FRAME.size)
        if len(head) < _FRAME.size:
            return
        op, args = pickle.loads(inp.read(_FRAME.unpack(head)[0]))
        try:
            reply = ("ok", _OPS[op](*args))
        except PdfError as exc:
            reply = ("err", (exc.reason, exc.detail))
        except MemoryError:
            reply = ("err", ("out_of_memory", f"over the {mem_mb} MB limit"))
        except Exception as exc:  # noqa: BLE001 - the parent turns it into a rejection
            reply = ("err", ("broken_pdf", f"{type(exc).__name__}: {exc}"))
        blob = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_FRAME.pack(len(blob)) + blob)
        out.flush()


# -- parent side ------------------------------------------------------------------------


class Sandbox:
    """One persistent child; ``call`` raises PdfError for bad input, timeouts and crashes."""

    def __init__(self, mem_mb: int = 2048, timeout: float = 30.0) -> None:
        self.mem_mb = mem_mb
        self.timeout = timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self._pending: deque[tuple[str, subprocess.Popen[bytes]]] = deque()  # sent, reply not read yet

    def _start(self) -> subprocess.Popen[bytes]:
        root = str(Path(__file__).resolve().parents[1])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
                   OMP_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from renderers.pdf_raster import _serve; _serve({int(self.mem_mb)})"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=root,
        )
        # A reply (PNG ~180 KB + text) fits one pipe buffer: one wake-up per page instead of one
        # per 64 KB (the default), each of which waits for a CPU on a loaded machine.
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)  # type: ignore[union-attr]
            except (OSError, AttributeError):
                pass  # not Linux, or above /proc/sys/fs/pipe-max-size: the default still works
        return self.proc

    def send(self, op: str, *args: Any) -> None:
        """Start a request without waiting: the child works on it while the caller does other
        things; ``receive`` returns the replies in the order they were sent."""
        proc = self.proc if self.proc is not None and self.proc.poll() is None else self._start()
        assert proc.stdin is not None
        blob = pickle.dumps((op, args), protocol=pickle.HIGHEST_PROTOCOL)
        self._pending.append((op, proc))
        try:
            proc.stdin.write(_FRAME.pack(len(blob)) + blob)
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the child died: receive() reports it for this request

    def receive(self) -> Any:
        """The reply to the oldest request sent; PdfError for bad input, a timeout or a crash."""
        op, proc = self._pending.popleft()
        try:
            if proc is not self.proc:
                raise EOFError  # the child this request went to was killed (timeout of an earlier one)
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], self.timeout)
            if not ready:
                self.close()
                raise PdfError("timeout", f"{op} took longer than {self.timeout:g} s")
            head = proc.stdout.read(_FRAME.size)
            if len(head) < _FRAME.size:
                raise EOFError
            status, value = pickle.loads(proc.stdout.read(_FRAME.unpack(head)[0]))
        except (EOFError, BrokenPipeError, OSError, pickle.UnpicklingError, ValueError):
            code = self.close() if proc is self.proc else proc.returncode
            raise PdfError("renderer_crashed", f"{op}: the renderer process died (exit {code}; "
                                               f"memory limit {self.mem_mb} MB)") from None
        if status == "err":
            raise PdfError(*value)
        return value

    def discard(self) -> None:
        """Read and drop the replies to requests sent and never received (an abandoned prefetch)."""
        while self._pending:
            try:
                self.receive()
            except PdfError:
                pass

    def call(self, op: str, *args: Any) -> Any:
        """One request and its reply. Replies to requests sent earlier and never received (an
        abandoned prefetch) are read and dropped first, so the reply is this request's."""
        self.discard()
        self.send(op, *args)
        return self.receive()

    def close(self) -> int | None:
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        self.restarts += 1
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        return proc.returncode


class InProcess:
    """Same interface as Sandbox without the child (benchmarks: measures the isolation cost)."""

    def call(self, op: str, *args: Any) -> Any:
        return _OPS[op](*args)

    def close(self) -> None:
        while _docs:
            _docs.popitem()[1].close()


import atexit  # noqa: E402

_sandboxes: dict[tuple[int, float], Sandbox] = {}


def sandbox(mem_mb: int = 2048, timeout: float = 30.0) -> Sandbox:
    """The per-worker sandbox for these limits (created lazily, shared by engine instances)."""
    key = (int(mem_mb), float(timeout))
    if key not in _sandboxes:
        _sandboxes[key] = Sandbox(*key)
    return _sandboxes[key]


def close_all() -> None:
    for box in _sandboxes.values():
        box.close()


atexit.register(close_all)
