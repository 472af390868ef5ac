# ruff: noqa: RUF001, RUF002, RUF003  (×, –, µ in printed tables are intended)
"""Small shared helpers for the benchmarks in bench/ (timing, stats, data, disk, tables)."""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["timed", "spread", "pct", "tree_stats", "rmtree", "synthetic_images",
           "encode_jpegs", "md_table", "env_line", "command_line", "fmt"]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result) of one call, wall clock."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and min–max of repeated measurements."""
    v = [float(x) for x in values]
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, np.float64), q))


def tree_stats(path: str, sub: str | None = None) -> tuple[int, int]:
    """(apparent bytes, file count) of every file under `path` (or `path/sub`)."""
    root = os.path.join(path, sub) if sub else path
    if os.path.isfile(root):
        return os.path.getsize(root), 1
    nbytes = nfiles = 0
    for d, _, files in os.walk(root):
        for f in files:
            nbytes += os.path.getsize(os.path.join(d, f))
            nfiles += 1
    return nbytes, nfiles


def rmtree(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def synthetic_images(n: int, h: int = 64, w: int = 64, c: int = 3, seed: int = 0,
                     low: int = 8, noise: float = 6.0, batch: int = 1000) -> np.ndarray:
    """Smooth-ish uint8 images: low-res noise bilinearly upsampled + a little pixel noise.

    Photo-like enough that JPEG sizes are realistic (unlike white noise, which JPEG can't
    compress, or flat colour, which it compresses absurdly well). Deterministic for a seed.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n, h, w, c), np.uint8)

    def axis(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = np.linspace(0, low - 1, size)
        i0 = np.floor(x).astype(np.int64).clip(0, low - 2)
        return i0, i0 + 1, (x - i0).astype(np.float32)

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    fy, fx = fy[None, :, None, None], fx[None, None, :, None]
    for a in range(0, n, batch):
        b = min(n, a + batch)
        g = rng.uniform(0, 255, (b - a, low, low, c)).astype(np.float32)
        top = g[:, y0][:, :, x0] * (1 - fx) + g[:, y0][:, :, x1] * fx
        bot = g[:, y1][:, :, x0] * (1 - fx) + g[:, y1][:, :, x1] * fx
        img = top * (1 - fy) + bot * fy
        img += rng.normal(0, noise, img.shape).astype(np.float32)
        out[a:b] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def encode_jpegs(images: np.ndarray, quality: int = 90) -> list[bytes]:
    import simplejpeg

    return [simplejpeg.encode_jpeg(np.ascontiguousarray(im), quality=quality,
                                   colorspace="RGB") for im in images]


def fmt(x: float | None, digits: int = 3) -> str:
    """Compact number: 3 significant digits, thousands separators for big values."""
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax == 0:
        return "0"
    return f"{x:.{max(0, digits - 1 - int(np.floor(np.log10(ax))))}f}"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(headers) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def command_line() -> str:
    exe = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) \
        else sys.executable
    return " ".join(shlex.quote(a) for a in [exe, *sys.argv])


def env_line(extra: dict[str, str] | None = None) -> str:
    parts = {"python": platform.python_version(), "numpy": np.__version__,
             "cpus": str(os.cpu_count()), "machine": platform.machine(),
             "os": platform.system()}
    parts.update(extra or {})
    return ", ".join(f"{k} {v}" for k, v in parts.items())
