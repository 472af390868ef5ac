"""Unfiltered top-10 through an hnsw index before and after one edit (issue #13 follow-up).

`.venv/bin/python bench/stale_index_topk.py`: 200k x 32-d float32 in mem://, an hnsw index at
the first commit, then one row updated (to the query vector) and committed; median of 7
queries each. Before the fix the edited version built a selector of every other row per query.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

import plane

SQL = "SELECT w ORDER BY COSINE_SIMILARITY(e, $q) DESC LIMIT 10"


def timed(ds: plane.Dataset, q: np.ndarray) -> tuple[float, Any]:
    ds.query(SQL, {"q": q})  # warm: index partition loaded, changed rows found
    ts, res = [], None
    for _ in range(7):
        t0 = time.perf_counter()
        res = ds.query(SQL, {"q": q})
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e3, res


def main() -> None:
    rng = np.random.default_rng(0)
    n = 200_000
    ds = plane.create("mem://stale-index-topk")
    ds.create_tensor("e", htype="embedding", dtype="float32")
    ds.create_tensor("w", dtype="int32")
    ds.extend({"e": rng.random((n, 32), dtype=np.float32),
               "w": rng.integers(0, 10000, n).astype(np.int32)})
    ds.commit("c")
    ds.create_index("e", kind="hnsw")
    q = rng.random(32, dtype=np.float32)
    clean, _ = timed(ds, q)
    ds["e"][5] = q  # the updated row is the best match now
    ds.commit("edit")
    edited, res = timed(ds, q)
    assert res is not None and int(res["w"][0]) == int(ds["w"][5].numpy())
    print(f"unfiltered top-10 via hnsw, {n:,} x 32-d: clean {clean:.1f} ms, after one edit "
          f"{edited:.1f} ms ({edited / clean:.1f}x)")
    print(ds.explain(SQL, {"q": q}))


if __name__ == "__main__":
    main()
