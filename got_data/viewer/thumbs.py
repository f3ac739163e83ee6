"""Thumbnails made with Pillow on first request and kept in a byte-bounded LRU."""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image

THUMB_PX = 320


class ThumbCache:
    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], data: bytes) -> bytes:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        thumb = make_thumb(data)
        with self._lock:
            if key not in self._items:
                self._items[key] = thumb
                self._bytes += len(thumb)
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, old = self._items.popitem(last=False)
                self._bytes -= len(old)
        return thumb

    def lookup(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            return self._items.get(key)

    @property
    def size(self) -> int:
        return self._bytes


def make_thumb(data: bytes, px: int = THUMB_PX) -> bytes:
    """A JPEG no larger than px×px; transparency flattened on white."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (px, px))  # JPEG sources decode at a reduced scale: much faster
        image.thumbnail((px, px), Image.Resampling.LANCZOS if max(image.size) < 4 * px else Image.Resampling.BILINEAR)
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            image = Image.new("RGB", rgba.size, "white")
            image.paste(rgba, mask=rgba.getchannel("A"))
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=82)
        return out.getvalue()
