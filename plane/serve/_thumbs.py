"""Thumbnails: decode a sample server-side, shrink it, encode JPEG; cached by content.

The cache key is a hash of the stored bytes (plus size), so it is right at every version and
on every branch without knowing which: a relabel does not touch it, a new image misses it.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from typing import Any

import numpy as np
import xxhash

__all__ = ["THUMB_PX", "ThumbCache", "first_frame", "to_rgb", "encode_jpeg", "shrink"]

THUMB_PX = 160


def to_rgb(arr: Any) -> np.ndarray:
    """An image-like array as HxWx3 uint8 (gray and alpha handled; other dtypes scaled)."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"cannot show an array of shape {a.shape} as an image")
    if a.dtype != np.uint8:
        f = a.astype(np.float64)
        lo, hi = float(np.nanmin(f)) if f.size else 0.0, float(np.nanmax(f)) if f.size else 1.0
        a = np.clip((f - lo) / ((hi - lo) or 1.0) * 255.0, 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] >= 3:
        a = a[:, :, :3]
    else:
        a = np.concatenate([a, a[:, :, :1]], axis=2)
    return np.ascontiguousarray(a)


def shrink(rgb: np.ndarray, px: int) -> np.ndarray:
    """Scale so the longer side is at most `px` (never enlarge); bilinear."""
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = min(1.0, px / max(h, w, 1))
    if scale >= 1.0:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR))


def encode_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def first_frame(video: bytes) -> np.ndarray:
    """The first frame of an encoded video (PyAV), HxWx3 uint8."""
    import av

    container: Any = av.open(io.BytesIO(video))
    with container:
        for frame in container.decode(video=0):
            out: np.ndarray = frame.to_ndarray(format="rgb24")
            return out
    raise ValueError("the video has no frames")


class ThumbCache:
    """An LRU of encoded thumbnails bounded in bytes; thread-safe."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(stored: bytes, kind: str, px: int) -> str:
        return f"{xxhash.xxh3_128_hexdigest(stored)}:{kind}:{px}"

    def get(self, key: str) -> bytes | None:
        with self._lock:
            out = self._items.get(key)
            if out is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return out

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._items or len(data) > self.max_bytes:
                return
            self._items[key] = data
            self._size += len(data)
            while self._size > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)
