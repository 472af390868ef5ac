# ruff: noqa: RUF001, RUF003  (×, ≥ in printed tables are intended)
"""Scalar-index benchmark (issue #6): filters with and without a btree index, vs Lance BTREE.

Data (fixed seed): N rows with `width` int32 uniform 0..999 and `tag` text ("tag0".."tag499",
uniform). Filters: `width < 10` (1%), `width = 500` (0.1%), `tag = 'tag17'` (0.2%). Each is
timed as a full query returning the matching row ids, one after another on one thread:
tensorplane `ds.query("SELECT id WHERE ...")` scanning the column, then with
`ds.create_index(col, kind="btree")`; Lance `to_table(filter=..., columns=[], with_row_id=True)`
without and with `create_scalar_index(col, "BTREE")`.

    .venv/bin/python bench/scalar_index_bench.py            # 1M rows
    .venv/bin/python bench/scalar_index_bench.py --rows 100000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

os.environ.setdefault("LANCE_LOG", "error")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import command_line, env_line, md_table, rmtree, timed

FILTERS = {"width < 10": ("width", "<", 10), "width = 500": ("width", "=", 500),
           "tag = 'tag17'": ("tag", "=", "tag17")}


def median_ms(fn: Callable[[], int], budget_s: float = 2.0) -> tuple[float, int]:
    """(median ms per call, rows returned), after a warm-up call: at least 3 calls, more up
    to `budget_s` (at most 50)."""
    rows = fn()
    lat: list[float] = []
    while len(lat) < 3 or (sum(lat) < budget_s and len(lat) < 50):
        dt, rows = timed(fn)
        lat.append(dt)
    return float(np.median(lat) * 1e3), rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    args = ap.parse_args()
    n = args.rows
    rng = np.random.default_rng(0)
    width = rng.integers(0, 1000, n).astype(np.int32)
    tag = [f"tag{i}" for i in rng.integers(0, 500, n)]
    truth = {"width < 10": int((width < 10).sum()), "width = 500": int((width == 500).sum()),
             "tag = 'tag17'": tag.count("tag17")}
    root = tempfile.mkdtemp(prefix="scalar-bench-")
    res: dict[tuple[str, str], tuple[float, int]] = {}
    build: dict[str, str] = {}
    try:
        import plane

        ds = plane.create(os.path.join(root, "plane"))
        ds.create_tensor("width", dtype="int32")
        ds.create_tensor("tag", htype="text")
        ds.extend({"width": width, "tag": tag})
        ds.commit("data")
        for f in FILTERS:
            res[("tensorplane scan", f)] = median_ms(
                lambda f=f: len(ds.query(f"SELECT id WHERE {f}")))
        t0 = time.perf_counter()
        for col in ("width", "tag"):
            ds.create_index(col, kind="btree")
        build["tensorplane btree (width + tag)"] = f"{time.perf_counter() - t0:.2f} s"
        for f in FILTERS:
            res[("tensorplane btree", f)] = median_ms(
                lambda f=f: len(ds.query(f"SELECT id WHERE {f}")))
        try:
            import lance
            import pyarrow as pa

            path = os.path.join(root, "lance")
            lance.write_dataset(pa.table({"width": width, "tag": tag}), path)
            lds = lance.dataset(path)

            def lq(f: str) -> int:
                return int(lds.to_table(filter=f, columns=[], with_row_id=True).num_rows)
            for f in FILTERS:
                res[("Lance scan", f)] = median_ms(lambda f=f: lq(f))
            t0 = time.perf_counter()
            for col in ("width", "tag"):
                lds.create_scalar_index(col, "BTREE")
            lds = lance.dataset(path)
            build["Lance BTREE (width + tag)"] = f"{time.perf_counter() - t0:.2f} s"
            for f in FILTERS:
                res[("Lance BTREE", f)] = median_ms(lambda f=f: lq(f))
        except ImportError as e:
            print(f"Lance not installed ({e}); tensorplane only", file=sys.stderr)
    finally:
        rmtree(root)

    systems = sorted({s for s, _ in res}, key=lambda s: ("Lance" in s, "btree" not in s.lower()))
    for (s, f), (_, rows) in res.items():
        assert rows == truth[f], (s, f, rows, truth[f])  # every system returns the truth
    print("## Scalar index: tensorplane btree vs scan vs Lance BTREE (issue #6)\n")
    print(f"`{command_line()}`\n")
    print(f"{n:,} rows; median ms per query returning the matching row ids. {env_line()}\n")
    head = ["system", *FILTERS]
    rows_: list[list[str]] = []
    for s in systems:
        rows_.append([s, *[f"{res[(s, f)][0]:.2f}" if (s, f) in res else "–" for f in FILTERS]])
    print(md_table(head, rows_))
    print("\nRows matched: " + ", ".join(f"{f}: {truth[f]:,}" for f in FILTERS) + ". Build: "
          + "; ".join(f"{k} {v}" for k, v in build.items()) + ".\n")
    ratios: list[list[str]] = []
    for f in FILTERS:
        scan, bt = res[("tensorplane scan", f)][0], res[("tensorplane btree", f)][0]
        line = [f, f"{scan / bt:.1f}×"]
        if ("Lance BTREE", f) in res:
            line.append(f"{res[('Lance BTREE', f)][0] / bt:.1f}×")
        ratios.append(line)
    extra = ["vs Lance BTREE (>1: tensorplane faster)"] if ("Lance BTREE", "tag = 'tag17'") \
        in res else []
    print(md_table(["filter", "btree speed-up over scan", *extra], ratios))


if __name__ == "__main__":
    main()
