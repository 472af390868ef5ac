"""Versioning costs: tensorplane vs a full copy vs Lance, on the same 1M-row table.

Run: .venv/bin/python bench/versioning_bench.py [--rows 1000000] [--reps 3]
Rows are an int64 label + a 32-d float32 vector (136 B/row). Bytes and objects written are
measured by listing the dataset directory before and after each operation.

"Read after edits" (issue #13, `--reads-only` runs just it, `--quick` stops at 100 edits): a
full-tensor read, a 1% filter and a filtered vector query on 1M rows, on the clean commit and
after 1, 100 and 10,000 one-row commits (each commit updates the same random row of all three
tensors), every version opened read-only and read once before the timed reps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import plane
from plane.storage import LocalStore


def listing(path: str) -> dict[str, int]:
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            p = os.path.join(root, f)
            out[p] = os.path.getsize(p)
    return out


def written(before: dict[str, int], after: dict[str, int]) -> tuple[int, int]:
    new = {k: v for k, v in after.items() if before.get(k) != v}
    return sum(new.values()), len(new)


def timed(fn: Callable[[], Any], path: str) -> tuple[float, int, int, Any]:
    before = listing(path)
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    b, n = written(before, listing(path))
    return dt, b, n, out


def med(xs: list[float]) -> float:
    return statistics.median(xs)


def fmt_t(s: float) -> str:
    return f"{s * 1e3:,.1f} ms" if s < 10 else f"{s:,.1f} s"


def fmt_b(b: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if b < 1024 or unit == "GB":
            return f"{b:,.0f} {unit}" if unit == "B" else f"{b:,.1f} {unit}"
        b /= 1024
    return f"{b} B"


#: 1-row commits made before the "(a'')" measurement
LATE = 300


def bench_plane(root: str, labels: np.ndarray, vecs: np.ndarray, reps: int,
                durable: bool = True) -> dict[str, Any]:
    path = os.path.join(root, "plane")
    ds = plane.create(LocalStore(path, durable=durable))
    ds.create_tensor("label", dtype="int64")
    ds.create_tensor("vec", dtype="float32", shape=(32,))
    t = time.perf_counter()
    for s in range(0, labels.shape[0], 100_000):
        ds.extend({"label": labels[s:s + 100_000], "vec": vecs[s:s + 100_000]})
    base = ds.commit("base")
    res: dict[str, Any] = {"write_s": time.perf_counter() - t,
                           "size": sum(listing(path).values())}
    rng = np.random.default_rng(1)

    def updates(message: str) -> list[Any]:
        """`reps` timed commits, each of one random row."""
        out = []
        for i in range(reps):
            row = int(rng.integers(0, labels.shape[0]))

            def one(row: int = row, i: int = i) -> str:
                ds["label"][row] = -1 - i
                return ds.commit(f"{message} {row}")
            out.append(timed(one, path))
        return out

    res["a"] = updates("update row")
    for i in range(LATE):  # a long-lived dataset: many small commits before the timed ones
        ds["label"][int(rng.integers(0, labels.shape[0]))] = i
        ds.commit(f"earlier {i}")
    res["a_late"] = updates("late update row")
    res["b"] = [timed(lambda i=i: ds.branch(f"b{i}"), path) for i in range(reps)]
    # (c) two commits differing in 1,000 rows
    idx = np.sort(rng.choice(labels.shape[0], 1000, replace=False))
    c1 = ds.commit_id
    ds["label"][idx] = np.arange(1000) + 10**9
    c2 = ds.commit("update 1,000 rows")
    c = []
    for _ in range(reps):
        d = timed(lambda: ds.diff(c1, c2), path)
        assert d[3].tensors["label"].updated.shape[0] == 1000
        c.append(d)
    res["c"] = c
    # (d) checkout of the oldest commit: open at it and read the label column
    d_ = []
    for _ in range(reps):
        def checkout() -> int:
            old = plane.open(path, version=base, read_only=True)
            return int(old["label"].numpy().sum())
        d_.append(timed(checkout, path))
    assert d_[0][3] == int(labels.sum())
    res["d"] = d_
    res["path"] = path
    return res


def bench_copy(path: str, root: str, reps: int) -> dict[str, Any]:
    out = []
    for i in range(reps):
        dst = os.path.join(root, f"copy{i}")
        t = time.perf_counter()
        shutil.copytree(path, dst)
        out.append((time.perf_counter() - t, sum(listing(dst).values()), len(listing(dst))))
        shutil.rmtree(dst)
    return {"copy": out}


def bench_lance(root: str, labels: np.ndarray, vecs: np.ndarray, reps: int
                ) -> dict[str, Any] | None:
    try:
        import lance
        import pyarrow as pa
    except ImportError:
        return None
    path = os.path.join(root, "lance")
    n = labels.shape[0]
    table = pa.table({"id": np.arange(n), "label": labels,
                      "vec": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1)), 32)})
    t = time.perf_counter()
    ds = lance.write_dataset(table, path)
    res: dict[str, Any] = {"write_s": time.perf_counter() - t,
                           "size": sum(listing(path).values())}
    base_v = ds.version
    rng = np.random.default_rng(1)
    a = []
    for i in range(reps):
        row = int(rng.integers(0, n))
        a.append(timed(lambda row=row, i=i, ds=ds: ds.update({"label": str(-1 - i)},
                                                             where=f"id = {row}"), path))
        ds = lance.dataset(path)
    res["a"] = a
    res["b_tag"] = [timed(lambda i=i: ds.tags.create(f"t{i}", ds.version), path)
                    for i in range(reps)]
    if hasattr(ds, "create_branch"):
        try:
            res["b_branch"] = [timed(lambda i=i: ds.create_branch(f"br{i}"), path)
                               for i in range(reps)]
        except Exception as e:  # API differences across pylance versions
            res["b_branch_error"] = repr(e)
    d_ = []
    for _ in range(reps):
        def checkout() -> int:
            old = lance.dataset(path, version=base_v)
            return int(np.asarray(old.to_table(columns=["label"])["label"]).sum())
        d_.append(timed(checkout, path))
    res["d"] = d_
    return res


#: one-row commits after which "read after edits" is measured
EDIT_COUNTS = (1, 100, 10_000)
_FILTER = "SELECT * WHERE w < {cut}"
_VQUERY = "SELECT * WHERE w < {cut} ORDER BY COSINE_SIMILARITY(e, $q) LIMIT 10"
_TOPK = "SELECT * ORDER BY COSINE_SIMILARITY(e, $q) LIMIT 10"  # through the (stale) index


def bench_reads(root: str, rows: int, reps: int, counts: tuple[int, ...]) -> dict[str, Any]:
    """Clean vs after-edits read times: {"clean" | count: {"read" | "filter" | "vector": s}}.
    The edit commits go to a LocalStore without fsync (reads do not depend on it)."""
    path = os.path.join(root, "reads")
    rng = np.random.default_rng(2)
    ds = plane.create(LocalStore(path, durable=False))
    ds.create_tensor("y", dtype="float32")
    ds.create_tensor("w", dtype="int32")
    ds.create_tensor("e", dtype="float32", shape=(32,))
    for s in range(0, rows, 100_000):
        k = min(100_000, rows - s)
        ds.extend({"y": rng.random(k, dtype=np.float32),
                   "w": rng.integers(0, rows, k).astype(np.int32),
                   "e": rng.random((k, 32), dtype=np.float32)})
    versions = {"clean": ds.commit("base")}
    ds.create_index("e", kind="ivf_flat")  # bound to the clean commit: stale after edits
    cut = rows // 100  # w is uniform in [0, rows): a 1% filter
    setup: dict[int, float] = {}
    done, t0 = 0, time.perf_counter()
    for target in counts:
        while done < target:
            r = int(rng.integers(0, rows))
            ds["y"][r] = np.float32(rng.random())
            ds["w"][r] = int(rng.integers(0, rows))
            ds["e"][r] = rng.random(32, dtype=np.float32)
            ds.commit(f"edit {done}")
            done += 1
        versions[target] = ds.commit_id  # type: ignore[assignment]
        setup[target] = time.perf_counter() - t0
    q = rng.random(32, dtype=np.float32)
    out: dict[Any, Any] = {"setup": setup}
    for name, cid in versions.items():
        v = plane.open(LocalStore(path, durable=False), version=cid, read_only=True)
        ops = {"read": lambda v=v: v["y"].numpy(),
               "filter": lambda v=v: v.query(_FILTER.format(cut=cut)),
               "vector": lambda v=v: v.query(_VQUERY.format(cut=cut), params={"q": q}),
               "topk": lambda v=v: v.query(_TOPK, params={"q": q})}
        res = {}
        for op, fn in ops.items():
            fn()  # warm: chunks cached, patch map built
            ts = []
            for _ in range(reps):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            res[op] = med(ts)
        out[name] = res
    return out


def print_reads(res: dict[Any, Any], rows: int, reps: int) -> None:
    counts = [k for k in res if isinstance(k, int)]
    print(f"\n### Read after edits ({rows:,} rows: y float32, w int32, e 32-d float32; "
          f"{reps} reps, median)\n")
    print("| after N one-row commits | full read `y` | 1% filter `w` | filtered vector query "
          "| top-10 via ivf_flat index (unfiltered) |")
    print("|---|---:|---:|---:|---:|")
    clean = res["clean"]
    ops = ("read", "filter", "vector", "topk")
    print("| 0 (clean) | " + " | ".join(fmt_t(clean[o]) for o in ops) + " |")
    worst = 0.0
    for k in counts:
        cells = []
        for o in ops:
            r = res[k][o] / clean[o]
            worst = max(worst, r)
            cells.append(f"{fmt_t(res[k][o])} ({r:.2f}x)")
        print(f"| {k:,} | " + " | ".join(cells) + " |")
    setup = ", ".join(f"{k:,} commits after {s:.1f} s" for k, s in res["setup"].items())
    print(f"\nEdits made in one process (LocalStore, no fsync): {setup}.")
    print(f"* after edits <= 1.5x the clean time at every count: worst {worst:.2f}x — "
          f"{'PASS' if worst <= 1.5 else 'FAIL'}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--reps", type=int, default=15)
    p.add_argument("--no-fsync", action="store_true",
                   help="tensorplane without fsync (LocalStore(durable=False)): what it costs")
    p.add_argument("--reads-only", action="store_true",
                   help="run only the read-after-edits section")
    p.add_argument("--quick", action="store_true",
                   help="read after edits: 1 and 100 one-row commits only (not 10,000)")
    args = p.parse_args(argv)
    print(f"`{' '.join([os.path.relpath(sys.executable), *sys.argv])}`\n")
    counts = EDIT_COUNTS[:2] if args.quick else EDIT_COUNTS
    if args.reads_only:
        root = tempfile.mkdtemp(prefix="plane-vbench-")
        try:
            print_reads(bench_reads(root, args.rows, args.reps, counts), args.rows, args.reps)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 1000, args.rows).astype(np.int64)
    vecs = rng.random((args.rows, 32), dtype=np.float32)
    root = tempfile.mkdtemp(prefix="plane-vbench-")
    try:
        tp = bench_plane(root, labels, vecs, args.reps, durable=not args.no_fsync)
        cp = bench_copy(tp["path"], root, args.reps)
        ln = bench_lance(root, labels, vecs, args.reps)
        reads = bench_reads(root, args.rows, args.reps, counts)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    copy_t = med([x[0] for x in cp["copy"]])
    copy_b = cp["copy"][0][1]

    def row(op: str, runs: list[tuple[float, int, int, Any]], lance_runs: Any = None,
            note: str = "") -> str:
        t = med([r[0] for r in runs])
        b = med([r[1] for r in runs])
        n = med([r[2] for r in runs])
        lt = lb = "n/a"
        if lance_runs:
            lt = fmt_t(med([r[0] for r in lance_runs]))
            lobj = med([r[2] for r in lance_runs])
            lb = f"{fmt_b(med([r[1] for r in lance_runs]))} in {lobj:.0f}"
        return (f"| {op} | {fmt_t(t)} | {fmt_b(b)} in {n:.0f} objects | {t / copy_t:.4%} | "
                f"{lt} | {lb} |{note}")

    print(f"{args.rows:,} rows x (int64 label + 32-d float32), {args.reps} reps (median); "
          f"dataset {fmt_b(tp['size'])} on disk (Lance {fmt_b(ln['size']) if ln else 'n/a'}). "
          f"Full copy (`shutil.copytree`, the snapshot-by-copying baseline): "
          f"{fmt_t(copy_t)}, {fmt_b(copy_b)}.\n")
    print("| operation | tensorplane time | tensorplane writes | time vs full copy | "
          "Lance time | Lance writes (objects) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(row("(a) update 1 row + commit", tp["a"], ln and ln["a"]))
    print(row(f"(a'') the same after {LATE} earlier 1-row commits", tp["a_late"], None,
              " patches fold into one every 32, so the part stays small"))
    print(row("(b) create a branch", tp["b"], ln and ln.get("b_branch"),
              "" if ln and ln.get("b_branch") else " Lance column: n/a"))
    if ln:
        print(row("(b') tag (Lance: tags.create)", tp["b"], ln["b_tag"]))
    print(row("(c) diff of 2 commits, 1,000 rows apart", tp["c"], None,
              " Lance has no row-level diff between two versions' values"))
    print(row("(d) checkout old commit + read label column", tp["d"], ln and ln["d"]))
    a_t = med([r[0] for r in tp["a"]])
    a_n = med([r[2] for r in tp["a"]])
    a_chunks = "≤ 2 chunks + manifest parts"
    print("\nTargets:")
    print(f"* (a) writes {a_chunks}: {a_n:.0f} objects (1 part holding the ~100-byte patch, "
          f"state, commit, ref) — {'PASS' if a_n <= 6 else 'FAIL'}; < 1% of the full-copy time: "
          f"{a_t / copy_t:.3%} — {'PASS' if a_t < 0.01 * copy_t else 'FAIL'}")
    b_b = med([r[1] for r in tp["b"]])
    b_n = med([r[2] for r in tp["b"]])
    print(f"* (b) a branch writes one small object: {b_n:.0f} object, {fmt_b(b_b)} — "
          f"{'PASS' if b_n == 1 and b_b < 1024 else 'FAIL'}")
    if ln and "b_branch_error" in ln:
        print(f"* Lance create_branch failed here: {ln['b_branch_error']}")
    print_reads(reads, args.rows, args.reps)


if __name__ == "__main__":
    main()
