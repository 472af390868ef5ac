"""JPEG decode throughput: simplejpeg vs Pillow, 1 and 2 threads (picks tensorplane's decoder).

Run: .venv/bin/python bench/media_decode_bench.py
"""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import simplejpeg
from PIL import Image


def images(n: int, hw: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = rng.integers(0, 255, (hw // 8, hw // 8, 3), dtype=np.uint8)
        img = np.kron(small, np.ones((8, 8, 1), np.uint8))
        img = np.clip(img.astype(int) + rng.integers(-8, 8, img.shape), 0, 255).astype(np.uint8)
        out.append(simplejpeg.encode_jpeg(img, quality=90))
    return out


def pil_decode(b: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(b)) as im:
        return np.asarray(im.convert("RGB"))


def sj_decode(b: bytes) -> np.ndarray:
    return simplejpeg.decode_jpeg(b, colorspace="RGB")


def rate(fn, data: list[bytes], threads: int) -> float:
    best = 0.0
    for _ in range(3):
        t = time.perf_counter()
        if threads == 1:
            for b in data:
                fn(b)
        else:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(fn, data, chunksize=64))
        best = max(best, len(data) / (time.perf_counter() - t))
    return best


def main() -> None:
    print("| image | threads | Pillow img/s | simplejpeg img/s | simplejpeg / Pillow |")
    print("|---|---:|---:|---:|---:|")
    for hw, n in ((64, 4000), (256, 800), (512, 200)):
        data = images(n, hw)
        for threads in (1, 2):
            p, s = rate(pil_decode, data, threads), rate(sj_decode, data, threads)
            print(f"| {hw}x{hw}x3 q90 | {threads} | {p:,.0f} | {s:,.0f} | {s / p:.2f}x |")


if __name__ == "__main__":
    main()
