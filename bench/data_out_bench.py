# ruff: noqa: RUF001, RUF002, RUF003  (×, –, µ in printed tables are intended)
"""Data out and aggregates (issue #15): tensorplane vs Lance vs pyarrow/Parquet vs DuckDB.

Data (fixed seed), N rows of: `labels` (class_label, 10 classes), `width` (int32 uniform
0..999, so `width < 100` keeps 10%), `score` (float32), `caption` (text, 5–12 words) and
`embedding` (128-d float32); on local disk. The same rows, with the Arrow types tensorplane
exports (dictionary<int32, string> labels, fixed_size_list<float>[128] embedding), go into
a Lance dataset and a Parquet file (zstd row groups of 64k rows), all in one process run.

Cases, each the best of R warm runs plus the first (cold: first call on a freshly opened
dataset; the OS page cache is warm for every engine alike):
  to_arrow (all columns / scalar columns), to_pandas (scalar columns), to_hf (all columns),
  write Parquet (the `plane export` path: `to_batches` + `write_parquet`, streaming; Lance
  `to_table` + `pq.write_table`; pyarrow read + write: the floor; DuckDB `COPY`), COUNT(*) WHERE
  width < 100 (scan, then with a btree index on `width` in tensorplane and in Lance), and
  `SELECT labels, COUNT(*) ... WHERE width < 100 GROUP BY labels`.
tensorplane runs twice: with its default decoded-chunk cache and with `cache_bytes=0`.
Peers: pylance (`to_table`, `count_rows(filter=)`, group-by through `to_table(columns=,
filter=)` + `pyarrow.Table.group_by`), pyarrow reading the Parquet file (`pq.read_table` +
`pyarrow.compute`), DuckDB over the Parquet file. Every answer is checked: counts and
groups against numpy, tables against the source table (`Table.equals`).

    .venv/bin/python bench/data_out_bench.py               # 200k rows, best of 5
    .venv/bin/python bench/data_out_bench.py --quick       # 20k rows, best of 3
    .venv/bin/python bench/data_out_bench.py --json bench/_out/data_out.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

os.environ.setdefault("LANCE_LOG", "error")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import command_line, env_line, fmt, md_table, rmtree

DIM = 128
CLASSES = [f"c{i}" for i in range(10)]
SCALARS = ["labels", "width", "score"]
COUNT_SQL = "SELECT COUNT(*) WHERE width < 100"
GROUP_SQL = ("SELECT labels, COUNT(*) AS n WHERE width < 100 GROUP BY labels "
             "ORDER BY n DESC")
NO_CACHE = "tensorplane, cache_bytes=0"
ENGINES = ("tensorplane", NO_CACHE, "lance", "pyarrow", "duckdb")


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


# ---- data ---------------------------------------------------------------------------------
def make_data(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    vocab = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), int(rng.integers(3, 9))))
             for _ in range(2000)]
    lens = rng.integers(5, 13, n)
    words = rng.integers(0, len(vocab), int(lens.sum()))
    ends = np.cumsum(lens)
    captions = [" ".join(vocab[w] for w in d) for d in np.split(words, ends[:-1])]
    return {"n": n,
            "labels": rng.integers(0, 10, n).astype(np.int64),
            "width": rng.integers(0, 1000, n).astype(np.int32),
            "score": rng.random(n, dtype=np.float32),
            "caption": captions,
            "embedding": rng.standard_normal((n, DIM)).astype(np.float32)}


def source_table(data: dict[str, Any], schema: Any) -> Any:
    """The data as a pyarrow Table in `schema` (tensorplane's export schema)."""
    import pyarrow as pa

    emb = pa.FixedSizeListArray.from_arrays(pa.array(data["embedding"].reshape(-1)), DIM)
    labels = pa.DictionaryArray.from_arrays(pa.array(data["labels"].astype(np.int32)),
                                            pa.array(CLASSES))
    arrays = {"labels": labels, "width": pa.array(data["width"]),
              "score": pa.array(data["score"]), "caption": pa.array(data["caption"]),
              "embedding": emb}
    return pa.Table.from_arrays([arrays[f.name] for f in schema], schema=schema)


# ---- timing --------------------------------------------------------------------------------
def bench(fn: Callable[[], Any], reps: int, check: Callable[[Any], None]) -> dict[str, float]:
    """First (cold) call, then the best of `reps` more; `check` validates every answer."""
    t0 = time.perf_counter()
    out = fn()
    cold = time.perf_counter() - t0
    check(out)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
        check(out)
    return {"cold": cold, "best": best}


def check_count(want: int) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        assert int(got) == want, f"COUNT(*): got {int(got)}, want {want}"
    return check


def check_groups(want: dict[str, int]) -> Callable[[Any], None]:
    def check(got: Any) -> None:
        assert got == want, f"GROUP BY: got {got}, want {want}"
    return check


def check_table(src: Any, columns: list[str] | None = None) -> Callable[[Any], None]:
    want = src if columns is None else src.select(columns)

    def check(got: Any) -> None:
        got = got.select(want.column_names).combine_chunks()
        for name in want.column_names:  # types may differ in metadata only
            a, b = got.column(name), want.column(name)
            assert a.type == b.type, f"{name}: type {a.type} != {b.type}"
            assert a.equals(b), f"column {name} differs from the source"
    return check


def check_pandas(src: Any, columns: list[str]) -> Callable[[Any], None]:
    want = src.select(columns).to_pandas()

    def check(got: Any) -> None:
        assert list(got.columns) == columns and len(got) == len(want)
        for c in columns:
            assert (got[c].astype(str).to_numpy() == want[c].astype(str).to_numpy()).all() \
                if str(got[c].dtype) == "category" else (got[c].to_numpy()
                                                         == want[c].to_numpy()).all(), c
    return check


def groups_of(table: Any, key: str = "labels", count: str = "n") -> dict[str, int]:
    keys, counts = table.column(key).to_pylist(), table.column(count).to_pylist()
    return {str(k): int(c) for k, c in zip(keys, counts)}


# ---- the engines ----------------------------------------------------------------------------
def run_plane(data: dict[str, Any], root: str, args: argparse.Namespace, res: dict[str, Any],
              truth: dict[str, Any]) -> Any:
    import plane

    n = data["n"]
    path = os.path.join(root, "plane")
    t0 = time.perf_counter()
    ds = plane.create(path)
    ds.create_tensor("labels", htype="class_label", class_names=CLASSES)
    ds.create_tensor("width", dtype="int32")
    ds.create_tensor("score", dtype="float32")
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("embedding", htype="embedding", shape=(DIM,))
    step = 20_000
    for a in range(0, n, step):
        ds.extend({k: data[k][a:a + step] for k in
                   ("labels", "width", "score", "caption", "embedding")})
    ds.commit("data")
    res["build"]["tensorplane ingest + commit"] = time.perf_counter() - t0
    src = source_table(data, ds.to_arrow(rows=slice(0, 1)).schema)
    tiny = plane.create(os.path.join(root, "tiny"))  # process-wide first use (imports, the
    tiny.create_tensor("width", dtype="int32")          # SQL parser) out of the cold runs
    tiny.create_tensor("labels", htype="class_label", class_names=CLASSES)
    tiny.extend({"width": data["width"][:10], "labels": data["labels"][:10]})
    tiny.commit("tiny")
    tiny.query(COUNT_SQL)
    tiny.query(GROUP_SQL)
    passes = (("tensorplane", None), (NO_CACHE, 0))
    for name, cache in passes:
        measure_plane(path, name, cache, src, root, args, res, truth)
    ds = plane.open(path)
    t0 = time.perf_counter()
    ds.create_index("width", kind="btree")
    res["build"]["tensorplane btree index"] = time.perf_counter() - t0
    for name, cache in passes:
        measure_btree(path, name, cache, res, truth, args.reps)
    return src


def measure_plane(path: str, name: str, cache: int | None, src: Any, root: str,
                  args: argparse.Namespace, res: dict[str, Any], truth: dict[str, Any]
                  ) -> None:
    """Every tensorplane case but the btree ones on the dataset at `path` (`cache`: chunk
    cache bytes, None: the default)."""
    import plane
    from plane.export._arrow import to_batches, write_parquet

    opts = {} if cache is None else {"cache_bytes": cache}
    log(f"{name}: pass")
    ds = plane.open(path, read_only=True, **opts)
    out = res["results"]
    reps = args.reps
    n = name

    out[("to_arrow, all columns", n)] = bench(ds.to_arrow, reps, check_table(src))
    out[("to_arrow, scalar columns", n)] = bench(
        lambda: ds.to_arrow(SCALARS), reps, check_table(src, SCALARS))
    out[("to_pandas, scalar columns", n)] = bench(
        lambda: ds.to_pandas(SCALARS), reps, check_pandas(src, SCALARS))
    hf = hf_check(src)
    if hf is not None:
        out[("to_hf, all columns", n)] = bench(ds.to_hf, reps, hf)

    pq_out = os.path.join(root, "plane_export.parquet")

    def export() -> Any:  # what `plane export URL OUT.parquet` runs (minus the tmp rename)
        batches = to_batches(ds.snapshot())
        first = next(batches)
        write_parquet(itertools.chain([first], batches), first.schema, pq_out)
        return pq_out
    out[("write Parquet, all columns", n)] = bench(export, reps, check_parquet(src))
    if cache is None:
        cli_out = os.path.join(root, "plane_cli.parquet")
        from plane.cli import main as cli_main

        t0 = time.perf_counter()
        assert cli_main(["export", path, cli_out]) == 0
        res["build"]["`plane export` CLI, once"] = time.perf_counter() - t0
        check_parquet(src)(cli_out)

    want_c, want_g = truth["count"], truth["groups"]
    ds = plane.open(path, read_only=True, **opts)  # cold: nothing cached yet
    out[("COUNT(*) WHERE width < 100, scan", n)] = bench(
        lambda: ds.query(COUNT_SQL).count, reps, check_count(want_c))
    out[("GROUP BY labels, COUNT, width < 100, scan", n)] = bench(
        lambda: plane_groups(ds), reps, check_groups(want_g))
    res["plans"]["scan"] = ds.explain(COUNT_SQL)
    assert "btree" not in res["plans"]["scan"], res["plans"]["scan"]


def measure_btree(path: str, n: str, cache: int | None, res: dict[str, Any],
                  truth: dict[str, Any], reps: int) -> None:
    """The aggregates again, now that `width` has a btree index."""
    import plane

    opts = {} if cache is None else {"cache_bytes": cache}
    out = res["results"]
    want_c, want_g = truth["count"], truth["groups"]
    ds = plane.open(path, read_only=True, **opts)
    out[("COUNT(*) WHERE width < 100, btree", n)] = bench(
        lambda: ds.query(COUNT_SQL).count, reps, check_count(want_c))
    out[("GROUP BY labels, COUNT, width < 100, btree", n)] = bench(
        lambda: plane_groups(ds), reps, check_groups(want_g))
    res["plans"]["btree"] = ds.explain(COUNT_SQL)
    assert "btree" in res["plans"]["btree"].lower(), res["plans"]["btree"]


def plane_groups(ds: Any) -> dict[str, int]:
    r = ds.query(GROUP_SQL)
    return {str(row["labels"]): int(row["n"]) for row in r.rows()}


def check_parquet(src: Any) -> Callable[[Any], None]:
    inner = check_table(src)

    def check(path: Any) -> None:
        import pyarrow.parquet as pq

        inner(pq.read_table(path))
    return check


def hf_check(src: Any) -> Callable[[Any], None] | None:
    try:
        import datasets  # noqa: F401
    except ImportError:
        return None
    n = src.num_rows
    labels = src.column("labels").combine_chunks().indices
    widths = src.column("width")

    def check(got: Any) -> None:
        assert len(got) == n, f"to_hf: {len(got)} rows, want {n}"
        t = got.data.table
        assert t.column("labels").combine_chunks().cast("int32").equals(labels)
        assert t.column("width").equals(widths)
    return check


def hf_from_arrow(table: Any) -> Any:
    """A HuggingFace Dataset over an Arrow table with the same features to_hf gives."""
    import datasets

    labels = table.column("labels").combine_chunks()
    t = table.set_column(table.schema.get_field_index("labels"), "labels",
                         labels.indices.cast("int64"))
    f = datasets.Features.from_arrow_schema(t.schema)
    f["labels"] = datasets.ClassLabel(names=CLASSES)
    return datasets.Dataset(t.cast(f.arrow_schema), info=datasets.DatasetInfo(features=f))


def run_lance(root: str, src: Any, args: argparse.Namespace, res: dict[str, Any],
              truth: dict[str, Any]) -> None:
    try:
        import lance
    except ImportError:
        res["missing"]["lance"] = "not installed (pip install pylance)"
        log("lance: not installed")
        return
    import pyarrow.parquet as pq

    res["versions"]["pylance"] = lance.__version__
    path = os.path.join(root, "data.lance")
    t0 = time.perf_counter()
    lance.write_dataset(src, path)
    res["build"]["lance write_dataset"] = time.perf_counter() - t0
    out = res["results"]
    reps = args.reps
    want_c, want_g = truth["count"], truth["groups"]
    log("lance: reads")
    ld = lance.dataset(path)
    out[("to_arrow, all columns", "lance")] = bench(ld.to_table, reps, check_table(src))
    out[("to_arrow, scalar columns", "lance")] = bench(
        lambda: ld.to_table(columns=SCALARS), reps, check_table(src, SCALARS))
    out[("to_pandas, scalar columns", "lance")] = bench(
        lambda: ld.to_table(columns=SCALARS).to_pandas(), reps, check_pandas(src, SCALARS))
    hf = hf_check(src)
    if hf is not None:
        out[("to_hf, all columns", "lance")] = bench(
            lambda: hf_from_arrow(ld.to_table()), reps, hf)
    pq_out = os.path.join(root, "lance_export.parquet")

    def export() -> Any:  # the whole table in memory, one write: Lance's fastest way
        pq.write_table(ld.to_table(), pq_out)
        return pq_out
    out[("write Parquet, all columns", "lance")] = bench(export, reps, check_parquet(src))

    def groups() -> dict[str, int]:
        t = ld.to_table(columns=["labels"], filter="width < 100")
        g = t.group_by("labels").aggregate([("labels", "count")])
        return groups_of(g, count="labels_count")
    log("lance: aggregates")
    ld = lance.dataset(path)
    out[("COUNT(*) WHERE width < 100, scan", "lance")] = bench(
        lambda: ld.count_rows(filter="width < 100"), reps, check_count(want_c))
    out[("GROUP BY labels, COUNT, width < 100, scan", "lance")] = bench(
        groups, reps, check_groups(want_g))
    ld = lance.dataset(path)
    t0 = time.perf_counter()
    ld.create_scalar_index("width", index_type="BTREE")
    res["build"]["lance btree index"] = time.perf_counter() - t0
    ld = lance.dataset(path)
    out[("COUNT(*) WHERE width < 100, btree", "lance")] = bench(
        lambda: ld.count_rows(filter="width < 100"), reps, check_count(want_c))
    out[("GROUP BY labels, COUNT, width < 100, btree", "lance")] = bench(
        groups, reps, check_groups(want_g))


def run_pyarrow(root: str, src: Any, args: argparse.Namespace, res: dict[str, Any],
                truth: dict[str, Any]) -> str:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = os.path.join(root, "data.parquet")
    t0 = time.perf_counter()
    pq.write_table(src, path, row_group_size=65536, compression="zstd")
    res["build"]["pyarrow write Parquet (zstd)"] = time.perf_counter() - t0
    out = res["results"]
    reps = args.reps
    want_c, want_g = truth["count"], truth["groups"]
    log("pyarrow: reads")
    out[("to_arrow, all columns", "pyarrow")] = bench(
        lambda: pq.read_table(path), reps, check_table(src))
    out[("to_arrow, scalar columns", "pyarrow")] = bench(
        lambda: pq.read_table(path, columns=SCALARS), reps, check_table(src, SCALARS))
    out[("to_pandas, scalar columns", "pyarrow")] = bench(
        lambda: pq.read_table(path, columns=SCALARS).to_pandas(), reps,
        check_pandas(src, SCALARS))
    hf = hf_check(src)
    if hf is not None:
        out[("to_hf, all columns", "pyarrow")] = bench(
            lambda: hf_from_arrow(pq.read_table(path)), reps, hf)
    pq_out = os.path.join(root, "pyarrow_copy.parquet")

    def export() -> Any:
        pq.write_table(pq.read_table(path), pq_out)
        return pq_out
    out[("write Parquet, all columns", "pyarrow")] = bench(export, reps, check_parquet(src))

    def count() -> int:
        w = pq.read_table(path, columns=["width"]).column("width")
        return int(pc.sum(pc.less(w, 100)).as_py())

    def groups() -> dict[str, int]:
        t = pq.read_table(path, columns=["labels", "width"])
        t = t.filter(pc.less(t.column("width"), 100))
        g = t.group_by("labels").aggregate([("labels", "count")])
        return groups_of(g, count="labels_count")
    log("pyarrow: aggregates")
    out[("COUNT(*) WHERE width < 100, scan", "pyarrow")] = bench(count, reps,
                                                                 check_count(want_c))
    out[("GROUP BY labels, COUNT, width < 100, scan", "pyarrow")] = bench(
        groups, reps, check_groups(want_g))
    return path


def run_duckdb(root: str, parquet: str, src: Any, args: argparse.Namespace,
               res: dict[str, Any], truth: dict[str, Any]) -> None:
    try:
        import duckdb
    except ImportError:
        res["missing"]["duckdb"] = "not installed (pip install duckdb)"
        log("duckdb: not installed")
        return
    res["versions"]["duckdb"] = duckdb.__version__
    con = duckdb.connect()
    con.execute(f"SET threads = {os.cpu_count() or 1}")
    out = res["results"]
    reps = args.reps
    want_c, want_g = truth["count"], truth["groups"]
    rp = f"read_parquet('{parquet}')"
    log("duckdb")
    cols = ", ".join(SCALARS)

    def as_table(sql: str) -> Any:
        r = con.sql(sql)
        return r.to_arrow_table() if hasattr(r, "to_arrow_table") else r.arrow()
    # DuckDB returns the dictionary column as plain strings and the list as a list: compare
    # the values, not the types
    out[("to_arrow, all columns", "duckdb")] = bench(
        lambda: as_table(f"SELECT * FROM {rp}"), reps, check_values(src))
    out[("to_arrow, scalar columns", "duckdb")] = bench(
        lambda: as_table(f"SELECT {cols} FROM {rp}"), reps, check_values(src, SCALARS))
    out[("to_pandas, scalar columns", "duckdb")] = bench(
        lambda: con.execute(f"SELECT {cols} FROM {rp}").df(), reps,
        check_pandas(src, SCALARS))
    pq_out = os.path.join(root, "duckdb_copy.parquet")
    out[("write Parquet, all columns", "duckdb")] = bench(
        lambda: con.execute(f"COPY (SELECT * FROM {rp}) TO '{pq_out}' (FORMAT parquet)")
        and pq_out, reps, check_values_file(src))
    out[("COUNT(*) WHERE width < 100, scan", "duckdb")] = bench(
        lambda: con.execute(f"SELECT COUNT(*) FROM {rp} WHERE width < 100").fetchone()[0],
        reps, check_count(want_c))
    out[("GROUP BY labels, COUNT, width < 100, scan", "duckdb")] = bench(
        lambda: {str(k): int(c) for k, c in con.execute(
            f"SELECT labels, COUNT(*) AS n FROM {rp} WHERE width < 100 GROUP BY labels "
            "ORDER BY n DESC").fetchall()}, reps, check_groups(want_g))


def check_values(src: Any, columns: list[str] | None = None) -> Callable[[Any], None]:
    want = src if columns is None else src.select(columns)
    labels = want.column("labels").to_pylist()
    others = [c for c in want.column_names if c != "labels"]

    def check(got: Any) -> None:
        assert got.num_rows == want.num_rows
        assert got.column("labels").to_pylist() == labels, "labels differ"
        for c in others:
            a = got.column(c).combine_chunks()
            b = want.column(c).combine_chunks()
            if a.type != b.type:
                a = a.cast(b.type)
            assert a.equals(b), f"column {c} differs from the source"
    return check


def check_values_file(src: Any) -> Callable[[Any], None]:
    inner = check_values(src)

    def check(path: Any) -> None:
        import pyarrow.parquet as pq

        inner(pq.read_table(path))
    return check


# ---- report ---------------------------------------------------------------------------------
def cell(r: dict[str, float] | None) -> str:
    if r is None:
        return "–"
    return f"{fmt(r['best'] * 1e3)} ({fmt(r['cold'] * 1e3)})"


def ratio(p: dict[str, float] | None, q: dict[str, float] | None) -> str:
    if p is None or q is None:
        return "–"
    return f"{fmt(p['best'] / q['best'])}×"


def report(res: dict[str, Any]) -> str:
    out = res["results"]
    cases = list(dict.fromkeys(c for c, _ in out))
    peers = [e for e in ENGINES[1:] if any(k[1] == e for k in out)]
    headers = ["case (ms: best of R warm, first run in brackets)", "tensorplane"]
    for p in peers:
        headers += [p] if p == NO_CACHE else [p, f"tp/{p}"]
    rows = []
    for c in cases:
        tp = out.get((c, "tensorplane"))
        row = [c, cell(tp)]
        for p in peers:
            row += [cell(out.get((c, p)))]
            if p != NO_CACHE:
                row.append(ratio(tp, out.get((c, p))))
        rows.append(row)
    lines = [md_table(headers, rows), ""]
    lines.append("setup: " + ", ".join(f"{k} {fmt(v)} s" for k, v in res["build"].items()))
    for k, v in res["missing"].items():
        lines.append(f"{k}: {v}")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=None, help="rows (default 200k; --quick 20k)")
    ap.add_argument("--reps", type=int, default=None, help="warm runs (default 5; quick 3)")
    ap.add_argument("--quick", action="store_true", help="small and fast (smoke)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    ap.add_argument("--json", default=None, help="also write the results to this file")
    args = ap.parse_args()
    args.rows = args.rows or (20_000 if args.quick else 200_000)
    args.reps = args.reps or (3 if args.quick else 5)
    import pyarrow as pa

    root = args.dir or tempfile.mkdtemp(prefix="data_out_bench_")
    rmtree(root)
    os.makedirs(root)
    res: dict[str, Any] = {"results": {}, "build": {}, "plans": {}, "missing": {},
                           "versions": {"pyarrow": pa.__version__}}
    try:
        log(f"data: {args.rows:,} rows")
        data = make_data(args.rows, args.seed)
        keep = data["width"] < 100
        truth = {"count": int(keep.sum()),
                 "groups": {CLASSES[i]: int(c) for i, c in
                            enumerate(np.bincount(data["labels"][keep], minlength=10))}}
        src = run_plane(data, root, args, res, truth)
        parquet = run_pyarrow(root, src, args, res, truth)
        run_lance(root, src, args, res, truth)
        run_duckdb(root, parquet, src, args, res, truth)
    finally:
        if args.dir is None:
            rmtree(root)
    print(f"command: {command_line()}")
    print(f"rows {args.rows:,}, warm runs {args.reps}; "
          + env_line({k: v for k, v in res["versions"].items()}))
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    print(report(res))
    print()
    for k, v in res["plans"].items():
        print(f"plan ({k}): {v}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "build": res["build"], "plans": res["plans"],
                       "missing": res["missing"], "versions": res["versions"],
                       "results": [{"case": c, "engine": e, **v}
                                   for (c, e), v in res["results"].items()]}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
