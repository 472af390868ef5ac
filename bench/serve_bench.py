"""`plane serve` page loads on big datasets: server time per request and browser load time.

Builds (once, kept under --root) datasets of 100k and 1M rows: a class label, an 8x8x3 raw
image (repeated content) and a short caption, written with `ds.extend` in 100k-row batches;
then serves each on loopback and times, 5 times per page (first = cold), the overview, grid
pages at the start / middle / end, a sample page, a thumbnail and a filter query: the
server's own time (its Server-Timing header) and the client's wall time. With Chromium
present, also the browser's navigation time (navigationStart to loadEventEnd).

    .venv/bin/python bench/serve_bench.py [--rows 100000 1000000] [--root /tmp/plane-serve-bench]
        [--screenshot docs/serve.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import plane
from plane.serve import start

CLASSES = [f"class{i}" for i in range(10)]
BATCH = 100_000


def build(path: Path, rows: int) -> float:
    """Create the dataset unless it is there with `rows` rows; seconds spent building."""
    if path.exists():
        try:
            if len(plane.open(str(path), read_only=True)) == rows:
                return 0.0
        except plane.PlaneError:
            pass
        shutil.rmtree(path)
    t0 = time.perf_counter()
    ds = plane.create(str(path))
    ds.create_tensor("labels", htype="class_label", class_names=CLASSES)
    ds.create_tensor("images", htype="image", dtype="uint8", shape=(8, 8, 3))
    ds.create_tensor("caption", htype="text")
    base = np.zeros((16, 8, 8, 3), np.uint8)
    for k in range(16):
        base[k, :, :, 0] = k * 16
        base[k, :, :, 1] = np.arange(8)[None, :] * 30
        base[k, :, :, 2] = np.arange(8)[:, None] * 30
    for s in range(0, rows, BATCH):
        n = min(BATCH, rows - s)
        idx = np.arange(s, s + n)
        ds.extend({"labels": (idx % 10).astype(np.uint32), "images": base[idx % 16],
                   "caption": [f"sample {i}" for i in idx.tolist()]})
    ds.commit(f"{rows} rows")
    return time.perf_counter() - t0


def get(url: str) -> tuple[float, float, int]:
    """(server ms from Server-Timing, client wall ms, bytes)."""
    t0 = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
        timing = r.headers.get("Server-Timing", "app;dur=nan")
    wall = (time.perf_counter() - t0) * 1e3
    return float(timing.split("dur=")[1]), wall, len(body)


def browser() -> Any:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
              "--window-size=1280,900", "--force-device-scale-factor=1"):
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)


NAV_JS = ("const n = performance.getEntriesByType('navigation')[0];"
          "return [n.responseEnd - n.startTime, n.loadEventEnd - n.startTime];")


def run(path: Path, rows: int, reps: int, drv: Any) -> list[list[str]]:
    t0 = time.perf_counter()
    server = start(str(path), read_only=True)
    open_ms = (time.perf_counter() - t0) * 1e3
    base = server.url.rstrip("/")
    mid, last = rows // 2, rows - 24
    pages = [("overview", "/"), ("grid, first page", "/grid?n=24"),
             ("grid, middle page", f"/grid?start={mid}&n=24"),
             ("grid, last page", f"/grid?start={last}&n=24"),
             ("sample page", f"/sample?row={mid}"),
             ("thumbnail", f"/media?t=images&row={mid + 1}"),
             ("query labels = 'class3' LIMIT 24",
              "/query?sql=SELECT+*+WHERE+labels+%3D+%27class3%27+LIMIT+24")]
    out = [["(server start: open the dataset)", f"{open_ms:.1f}", "", "", "", ""]]
    try:
        for name, p in pages:
            res = [get(base + p) for _ in range(reps)]
            server_ms = [r[0] for r in res]
            wall = [r[1] for r in res]
            nav = ""
            if drv is not None and name.startswith(("overview", "grid")):
                loads = []
                for _ in range(3):
                    drv.get(base + p)
                    loads.append(drv.execute_script(NAV_JS)[1])
                nav = f"{statistics.median(loads):.0f}"
            out.append([name, f"{server_ms[0]:.1f}", f"{statistics.median(server_ms[1:]):.1f}",
                        f"{statistics.median(wall[1:]):.1f}", nav, f"{res[0][2]:,}"])
    finally:
        server.stop()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--root", default="/tmp/plane-serve-bench")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--screenshot", default=None, help="save a PNG of a demo grid here")
    args = ap.parse_args()
    root = Path(args.root)
    root.mkdir(parents=True, exist_ok=True)
    drv = browser()
    try:
        if args.screenshot:
            shoot(root / "demo", Path(args.screenshot), drv)
        for rows in args.rows:
            path = root / f"rows{rows}"
            built = build(path, rows)
            print(f"\n### {rows:,} rows" + (f" (built in {built:.1f} s)" if built else ""))
            print("\n| page | server ms, cold | server ms, warm (median) | client ms, warm | "
                  "browser load ms | bytes |\n|---|---:|---:|---:|---:|---:|")
            for r in run(path, rows, args.reps, drv):
                print("| " + " | ".join(r) + " |")
    finally:
        if drv is not None:
            drv.quit()
    print(f"\npython {sys.version.split()[0]}, cpus {os.cpu_count()}, "
          f"browser {'chromium (selenium)' if drv else 'absent'}")


def shoot(path: Path, png: Path, drv: Any) -> None:
    """A small dataset with pictures, its grid page saved as `png` (the README's)."""
    if drv is None:
        raise SystemExit("--screenshot needs chromium, chromedriver and selenium")
    import io

    from PIL import Image

    shutil.rmtree(path, ignore_errors=True)
    ds = plane.create(str(path))
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("labels", htype="class_label", class_names=["circle", "square"])
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("boxes", htype="bbox")
    rng = np.random.default_rng(7)
    imgs, labels, caps, boxes = [], [], [], []
    yy, xx = np.mgrid[0:96, 0:128]
    for i in range(12):
        a = np.zeros((96, 128, 3), np.uint8)
        a[..., 0] = 40 + xx
        a[..., 1] = 60 + yy
        a[..., 2] = rng.integers(80, 200)
        cx, cy, r = int(rng.integers(30, 98)), int(rng.integers(30, 66)), int(rng.integers(12, 24))
        if i % 2 == 0:
            a[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = (250, 240, 60)
        else:
            a[cy - r:cy + r, cx - r:cx + r] = (40, 40, 200)
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="JPEG", quality=90)
        imgs.append(buf.getvalue())
        labels.append(i % 2)
        caps.append(f"a {'yellow circle' if i % 2 == 0 else 'blue square'}, shot {i}")
        boxes.append(np.array([[cx - r, cy - r, 2 * r, 2 * r]], np.float32))
    ds.extend({"images": imgs, "labels": labels, "caption": caps, "boxes": boxes})
    ds.commit("shapes")
    server = start(str(path))
    try:
        drv.set_window_size(1100, 720)
        drv.get(server.url + "grid?n=10")
        drv.execute_script("return document.fonts.ready")
        drv.save_screenshot(str(png))
    finally:
        server.stop()
        drv.set_window_size(1280, 900)
    print(f"screenshot: {png} ({png.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
