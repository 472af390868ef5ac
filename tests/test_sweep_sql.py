"""SQL fuzz sweep: every query ends in a QueryError or an answer, in bounded time.

Queries come from a grammar-aware strategy (tensors of every htype, operators, LIKE patterns
with many % and _, literals and parameters of wrong types, SHAPE / CONTAINS / BM25 / vector
scores / RRF / WEIGHTED, ORDER BY, LIMIT / OFFSET) and from mutating their text (truncation,
insertion, deletion, random garbage). Each runs through ``ds.query`` and ``ds.explain`` (and
the builder where it has a face for the query) on a dataset whose tensors are indexed (hnsw,
ivf_flat, flat, bm25, btree, minmax) or not, at the indexed commit, at a later one with
uncommitted rows on top (stale indexes), and on an empty dataset. Conditions from a checkable
part of the grammar also carry a plain-Python reference, and their answers must equal it. A
hang fails by the per-test timeout (pytest-timeout), not by a timing assertion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _oracles import like_ref
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
from plane import QueryError

pytest.importorskip("faiss")

N = 200  # rows of the default-suite dataset
DIM = 8
CLASSES = ["cat", "dog", "bird"]
ALPHA = "ab%_ .x"  # texts and LIKE patterns share characters, so patterns do match
SWEEP = settings(deadline=None, suppress_health_check=list(HealthCheck),
                   derandomize=True, database=None)

# ---- the dataset ------------------------------------------------------------------------


@dataclass
class Data:
    """A dataset and its rows as plain Python values, at the indexed state or a later one."""

    ds: plane.Dataset
    cols: dict[str, list[Any]] = field(repr=False)
    ids: list[int] = field(repr=False)
    exact: frozenset[str] = field(default_factory=frozenset)  # vector tensors searched exactly


def _rows(rng: np.random.Generator, n: int, start: int) -> dict[str, Any]:
    def text() -> str:
        return "".join(rng.choice(list(ALPHA), int(rng.integers(0, 12))))
    return {
        "i": rng.integers(-50, 50, n).astype(np.int32),
        "u": rng.integers(0, 5, n).astype(np.uint8),
        "f": np.round(rng.standard_normal(n) * 10, 1).astype(np.float32),
        "t": [text() if k % 50 else "a" * 300 for k in range(n)],  # and a few long ones
        "t2": [text() for _ in range(n)],
        "j": [{"a": int(k % 7), "s": text(), "l": [1, 2]} if k % 5 else
              {"a": "x", "s": None} for k in range(start, start + n)],
        "lab": rng.integers(0, 3, n),
        "emb": rng.standard_normal((n, DIM)).astype(np.float32),
        "emb2": rng.standard_normal((n, DIM)).astype(np.float32),
        "emb3": rng.standard_normal((n, DIM)).astype(np.float32),
        "rag": [rng.standard_normal(1 + k % 3).astype(np.float32) for k in range(n)],
        "words": [" ".join(rng.choice(["red", "car", "blue", "dog", "the"], 4))
                  for _ in range(n)],
        "n": [None if k % 4 == 0 else int(v)  # nullable: a null every 4th row
              for k, v in zip(range(start, start + n), rng.integers(-20, 20, n))],
    }


States = tuple[Data, ...]


def _schema(ds: plane.Dataset) -> None:
    ds.create_tensor("i", dtype="int32")
    ds.create_tensor("u", dtype="uint8")
    ds.create_tensor("f", dtype="float32")
    ds.create_tensor("t", htype="text")
    ds.create_tensor("t2", htype="text")
    ds.create_tensor("j", htype="json")
    ds.create_tensor("lab", htype="class_label", class_names=CLASSES)
    ds.create_tensor("emb", htype="embedding", shape=(DIM,))
    ds.create_tensor("emb2", htype="embedding")  # no fixed shape
    ds.create_tensor("emb3", htype="embedding", shape=(DIM,))  # never indexed
    ds.create_tensor("rag", dtype="float32")  # ragged
    ds.create_tensor("words", htype="text")
    ds.create_tensor("n", dtype="int64")  # with nulls


def _build(path: Path, n: int, seed: int) -> States:
    """The dataset at its indexed commit, at a later commit with uncommitted rows on top
    (every index stale), and an empty dataset of the same schema."""
    rng = np.random.default_rng(seed)
    ds = plane.create(path / "d")
    _schema(ds)
    ds.extend(_rows(rng, n, 0))
    ds.commit("rows")
    ds.create_index("emb", kind="hnsw", metric="cosine")
    ds.create_index("emb", kind="ivf_flat", metric="ip")
    ds.create_index("emb2", kind="flat", metric="l2")
    ds.create_index("words", kind="bm25")
    ds.create_index("t", kind="bm25")
    ds.create_index("i", kind="btree")
    ds.create_index("lab", kind="btree")
    ds.create_index("t2", kind="btree")
    ds.create_index("f", kind="minmax")
    ds.create_index("n", kind="btree")  # holds the null rows' empty samples (0)
    fresh = _data(plane.open(path / "d", version=ds.commit_id, read_only=True),
                  frozenset({"emb3"}))
    ds.extend(_rows(rng, 20, n))  # a later commit: every index is stale
    ds["i"][3] = np.int32(7)
    ds.delete([5])
    ds.commit("more")
    ds.extend(_rows(rng, 5, n + 20))  # and uncommitted rows
    empty = plane.create(path / "empty")
    _schema(empty)
    return fresh, _data(ds, frozenset({"emb3"})), _data(empty, frozenset())


def _data(ds: plane.Dataset, exact: frozenset[str]) -> Data:
    cols: dict[str, list[Any]] = {}
    for name in ds.tensors:
        raw = ds[name].numpy(aslist=True)
        cols[name] = [v.item() if isinstance(v, np.ndarray) and v.ndim == 0 else v
                      for v in raw]
    return Data(ds, cols, [int(x) for x in ds.row_ids], exact)


@pytest.fixture(scope="module")
def states(tmp_path_factory: pytest.TempPathFactory) -> States:
    return _build(tmp_path_factory.mktemp("sweep"), N, 0)


# ---- the reference ----------------------------------------------------------------------


#: a row's truth (None from a ref: unknown, SQL's third value; a row passes only when True);
#: a Cond's ref None: not checked
Ref = Callable[[dict[str, Any]], bool | None] | None


@dataclass(frozen=True)
class Cond:
    sql: str
    ref: Ref = None


def _q(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<>": lambda a, b: a != b,
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b}

# ---- strategies: checked conditions -----------------------------------------------------

numbers = st.one_of(st.integers(-60, 60), st.sampled_from([0.5, -1.5, 2.25, 10.0, 1e12]))
patterns = st.text(ALPHA, max_size=10) | st.lists(
    st.sampled_from(["%", "_", "a", "b", "%a", "_b"]), min_size=15, max_size=24).map("".join)


@st.composite
def numeric_cmp(draw: st.DrawFn) -> Cond:
    col = draw(st.sampled_from(["i", "u", "f", "ROW_ID", "SHAPE(rag)[0]", "lab"]))
    op = draw(st.sampled_from(list(_OPS)))
    v = draw(numbers)
    key = {"ROW_ID": "_id", "SHAPE(rag)[0]": "_rag0"}.get(col, col)
    if col == "f":  # numpy compares a float32 tensor with the literal as float32
        fv = float(np.float32(v))
        return Cond(f"{col} {op} {v}", lambda r: _OPS[op](r[key], fv))
    if draw(st.booleans()):  # literal on the left
        flip = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}.get(op, op)
        return Cond(f"{v} {op} {col}", lambda r: _OPS[flip](r[key], v))
    return Cond(f"{col} {op} {v}", lambda r: _OPS[op](r[key], v))


@st.composite
def checked_leaf(draw: st.DrawFn, kinds: tuple[str, ...] = (
        "num", "num", "like", "text", "const", "in", "between", "label", "null", "nullable",
        "nullable")) -> Cond:
    kind = draw(st.sampled_from(kinds))
    if kind == "num":
        return draw(numeric_cmp())
    if kind == "like":
        col, p = draw(st.sampled_from(["t", "t2", "j.s"])), draw(patterns)
        neg = draw(st.booleans())
        key = "_js" if col == "j.s" else col
        return Cond(f"{col} {'NOT ' if neg else ''}LIKE {_q(p)}",
                    lambda r: neg != (isinstance(r[key], str) and like_ref(r[key], p)))
    if kind == "text":
        col, op, s = (draw(st.sampled_from(["t", "t2"])), draw(st.sampled_from(list(_OPS))),
                      draw(st.text(ALPHA, max_size=3)))
        return Cond(f"{col} {op} {_q(s)}", lambda r: _OPS[op](r[col], s))
    if kind == "const":
        a, op, b = draw(numbers), draw(st.sampled_from(list(_OPS))), draw(numbers)
        return Cond(f"{a} {op} {b}", lambda r: _OPS[op](a, b))
    if kind == "in":
        vals = draw(st.lists(st.integers(-5, 5), min_size=1, max_size=4))
        col = draw(st.sampled_from(["i", "u", "lab"]))
        neg = draw(st.booleans())
        return Cond(f"{col} {'NOT ' if neg else ''}IN ({', '.join(map(str, vals))})",
                    lambda r: neg != (r[col] in vals))
    if kind == "between":
        lo, hi = draw(st.integers(-30, 30)), draw(st.integers(-30, 30))
        col = draw(st.sampled_from(["i", "u", "ROW_ID"]))
        key = "_id" if col == "ROW_ID" else col
        return Cond(f"{col} BETWEEN {lo} AND {hi}", lambda r: lo <= r[key] <= hi)
    if kind == "nullable":  # comparisons on a null are unknown; IS NULL is not
        op, v = draw(st.sampled_from(list(_OPS))), draw(st.integers(-20, 20))
        if draw(st.booleans()):
            neg = draw(st.booleans())
            return Cond(f"n IS {'NOT ' if neg else ''}NULL", lambda r: neg != (r["n"] is None))
        return Cond(f"n {op} {v}", lambda r: None if r["n"] is None else _OPS[op](r["n"], v))
    if kind == "label":
        name, op = draw(st.sampled_from(CLASSES)), draw(st.sampled_from(["=", "!="]))
        want = CLASSES.index(name)
        return Cond(f"lab {op} {_q(name)}", lambda r: _OPS[op](r["lab"], want))
    col = draw(st.sampled_from(["t", "t2"]))
    neg = draw(st.booleans())
    # '' is a value: only a null (None) row IS NULL (README, "Missing values")
    return Cond(f"{col} IS {'NOT ' if neg else ''}NULL", lambda r: neg != (r[col] is None))


def _and3(a: bool | None, b: bool | None) -> bool | None:
    """SQL AND: false wins, then unknown (None)."""
    return False if a is False or b is False else None if a is None or b is None else True


def _or3(a: bool | None, b: bool | None) -> bool | None:
    return True if a is True or b is True else None if a is None or b is None else False


def _not3(a: bool | None) -> bool | None:
    return None if a is None else not a


def _combine(children: st.SearchStrategy[Cond]) -> st.SearchStrategy[Cond]:
    def both(op: str) -> st.SearchStrategy[Cond]:
        def make(a: Cond, b: Cond) -> Cond:
            assert a.ref is not None and b.ref is not None
            fa, fb = a.ref, b.ref
            ref: Ref = ((lambda r: _and3(fa(r), fb(r))) if op == "AND"
                        else (lambda r: _or3(fa(r), fb(r))))
            return Cond(f"({a.sql}) {op} ({b.sql})", ref)
        return st.builds(make, children, children)

    def negate(a: Cond) -> Cond:
        assert a.ref is not None
        fa = a.ref
        return Cond(f"NOT ({a.sql})", lambda r: _not3(fa(r)))
    return both("AND") | both("OR") | children.map(negate)


checked_conds = st.recursive(checked_leaf(), _combine, max_leaves=5)
#: conditions over the nullable tensor (and a numeric one): three-valued logic at work
null_conds = st.recursive(checked_leaf(("nullable", "nullable", "num")), _combine,
                          max_leaves=4)

# ---- strategies: anything goes ----------------------------------------------------------

SCALARS = ["i", "u", "f", "t", "t2", "j", "lab", "words"]
TENSORS = [*SCALARS, "emb", "emb2", "emb3", "rag"]
VECTORS = ["emb", "emb2", "emb3", "rag", "i", "t", "j"]
wild_literals = st.one_of(
    st.integers(-2**70, 2**70).map(str), st.floats(allow_nan=False, allow_infinity=False,
                                                   width=32).map(repr),
    st.text(ALPHA + "'\\é\n", max_size=6).map(_q), st.sampled_from(["TRUE", "FALSE", "NULL"]),
    st.sampled_from(["$p", ":p", "$missing", "[1, 2]", "'cat'", "'dgo'"]))
param_values = st.one_of(  # numbers and text twice: what conditions take
    st.none(), st.integers(-5, 5), st.floats(), st.text(ALPHA, max_size=5), st.booleans(),
    st.integers(-5, 5), st.text(ALPHA, max_size=5),
    st.just([1, 2, 3]), st.just({"a": 1}), st.just(np.ones(3, np.float32)),
    st.just(np.int64(3)), st.just(b"xy"), st.just(np.array(["a"])), st.just(1 + 2j))
vector_values = st.one_of(
    st.lists(st.floats(-3, 3, width=32), min_size=DIM, max_size=DIM),
    st.lists(st.floats(-3, 3, width=32), min_size=DIM, max_size=DIM),
    st.integers(0, 12).map(lambda k: np.linspace(-1, 1, k).astype(np.float32)),
    st.just(np.ones(DIM, np.float64)), st.just(np.ones(DIM, np.int8)),
    st.just(np.ones((2, DIM), np.float32)), st.just(np.ones((1, DIM), np.float32)),
    st.just([float("nan")] * DIM), st.just([float("inf")] + [0.0] * (DIM - 1)),
    st.just([1e39] * DIM), st.just(["a"] * DIM), st.just([1, None] * (DIM // 2)),
    st.just(np.ones(DIM, np.complex64)), st.just([[1, 2], [3]]), st.just("vector"),
    st.just(None), st.just({"q": 1}), st.just(list(range(DIM))))


@st.composite
def operand(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["col", "col", "col", "any", "path", "shape", "lit", "lit",
                                 "rowid"]))
    if kind == "col":
        return draw(st.sampled_from(SCALARS))
    if kind == "any":
        return draw(st.sampled_from(TENSORS))
    if kind == "path":
        return draw(st.sampled_from(["j.a", "j.s", "j.a", "j.s", "j.l", "j.nope", "t.a",
                                     "j.l.0"]))
    if kind == "shape":
        return (f"SHAPE({draw(st.sampled_from(TENSORS))})"
                f"[{draw(st.integers(0, 2))}]")
    if kind == "rowid":
        return draw(st.sampled_from(["ROW_ID", "id", "ROW_ID()"]))
    return draw(wild_literals)


@st.composite
def wild_leaf(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["cmp", "cmp", "like", "in", "between", "null", "contains"]))
    a = draw(operand())
    if kind == "cmp":
        return f"{a} {draw(st.sampled_from(list(_OPS)))} {draw(operand())}"
    if kind == "like":
        pat = draw(st.one_of(patterns.map(_q), operand()))
        return f"{a} {draw(st.sampled_from(['', 'NOT ']))}LIKE {pat}"
    if kind == "in":
        return f"{a} IN ({', '.join(draw(st.lists(operand(), min_size=1, max_size=3)))})"
    if kind == "between":
        return f"{a} BETWEEN {draw(operand())} AND {draw(operand())}"
    if kind == "null":
        return f"{a} IS {draw(st.sampled_from(['', 'NOT ']))}NULL"
    text = draw(st.one_of(st.sampled_from(["'red car'", "'\"red car\"'", "'the'", "''",
                                           "$p", "'xx'"]), wild_literals))
    return f"CONTAINS({draw(st.sampled_from([*TENSORS, 'j.s']))}, {text})"


wild_conds = st.recursive(
    wild_leaf(),
    lambda c: st.one_of(st.tuples(c, c).map(lambda x: f"({x[0]}) AND ({x[1]})"),
                        st.tuples(c, c).map(lambda x: f"{x[0]} OR {x[1]}"),
                        c.map(lambda x: f"NOT ({x})")),
    max_leaves=4)


def _vector_literal(v: list[int]) -> str:
    return "[" + ", ".join(map(str, v)) + "]"


@st.composite
def score(draw: st.DrawFn, depth: int = 0) -> str:
    kind = draw(st.sampled_from(["vec", "vec", "bm25"] + (["rrf", "weighted"] if not depth
                                                          else [])))
    if kind == "vec":
        fn = draw(st.sampled_from(["COSINE_SIMILARITY", "L2_DISTANCE", "INNER_PRODUCT"]))
        q = draw(st.one_of(st.just("$q"), st.just("$q"), st.lists(
            st.integers(-3, 3), min_size=1, max_size=10).map(_vector_literal)))
        return f"{fn}({draw(st.sampled_from(VECTORS))}, {q})"
    if kind == "bm25":
        col = draw(st.sampled_from(["words", "t", "t2", "j", "emb"]))
        text = draw(st.sampled_from(["'red car'", "'the'", "$p", "'dog'", "''"]))
        return f"BM25({col}, {text})"
    parts = draw(st.lists(score(depth + 1), min_size=1, max_size=3))
    if kind == "rrf":
        return f"RRF({', '.join(parts)}{draw(st.sampled_from(['', ', 10', ', k => 5']))})"
    return f"WEIGHTED({', '.join(f'{p}, {draw(st.sampled_from([1, 0.5, -2]))}' for p in parts)})"


@st.composite
def wild_query(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    select = draw(st.sampled_from(["*", "*", "id", "id", "i, t", "ROW_ID, score", "emb, rag",
                                   "j", "score", "*, i", "i AS x", "COSINE_SIMILARITY(emb, $q)",
                                   "BM25(words, 'red')", "nope", "SHAPE(rag)[0]"]))
    sql = f"SELECT {select}" + draw(st.sampled_from(["", " FROM d"]))
    if draw(st.booleans()):
        sql += f" WHERE {draw(wild_conds)}"
    order = draw(st.sampled_from(["", "score", "key", "keys"]))
    if order == "score":
        sql += f" ORDER BY {draw(score())}{draw(st.sampled_from(['', ' ASC', ' DESC']))}"
    elif order:
        keys = draw(st.lists(operand(), min_size=1, max_size=1 if order == "key" else 3))
        sql += " ORDER BY " + ", ".join(
            k + draw(st.sampled_from(["", " ASC", " DESC"])) for k in keys)
    if draw(st.booleans()):
        sql += f" LIMIT {draw(st.sampled_from(['0', '3', '3', '500', '$n', '-1', '1.5']))}"
    if draw(st.booleans()):
        sql += f" OFFSET {draw(st.sampled_from(['0', '2', '2', '$n', '9999']))}"
    params: dict[str, Any] = {"q": draw(vector_values), "p": draw(param_values),
                              "n": draw(st.integers(-1, 5) | param_values)}
    if draw(st.integers(0, 9)) == 0:
        params.pop(draw(st.sampled_from(list(params))))
    return sql, params


@st.composite
def mutated_query(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    sql, params = draw(wild_query())
    at = draw(st.integers(0, len(sql)))
    how = draw(st.sampled_from(["cut", "insert", "delete", "repeat"]))
    if how == "cut":
        sql = sql[:at]
    elif how == "insert":
        sql = sql[:at] + draw(st.text(max_size=4) | st.sampled_from(
            ["(", ")", "'", '"', ",", "%", "$", ";", " AND", " ORDER BY", "[", "--"])) + sql[at:]
    elif how == "delete":
        sql = sql[:at] + sql[at + draw(st.integers(1, 6)):]
    else:
        sql = sql[:at] + sql[at:at + 8] * 3 + sql[at:]
    return sql, params


garbage = st.tuples(st.text(max_size=40) | st.binary(max_size=20).map(
    lambda b: b.decode("latin-1")), st.just({}))

any_query = st.one_of(wild_query(), wild_query(), wild_query(), mutated_query(), garbage)


def attempt(fn: Callable[[], Any]) -> Any:
    """fn()'s answer, or the QueryError it raised (anything else fails the test)."""
    try:
        return fn()
    except QueryError as e:
        assert str(e).strip(), "a QueryError must say what went wrong"
        return e


def consume(view: Any) -> list[int]:
    """Everything a caller reads from a query's view: ids, scores, its rows' values."""
    ids = [int(x) for x in view.ids]
    assert len(ids) == len(view) and len(set(ids)) == len(ids)
    if view.scores is not None:
        assert view.scores.shape[0] == len(ids)
    view.rows()
    return ids


# ---- the sweep --------------------------------------------------------------------------


def _rows_of(d: Data) -> list[dict[str, Any]]:
    out = []
    for k, rid in enumerate(d.ids):
        r = {name: d.cols[name][k] for name in d.cols}
        r["_id"] = rid
        r["_rag0"] = int(np.shape(r["rag"])[0])
        r["_js"] = r["j"].get("s") if isinstance(r["j"], dict) else None
        out.append(r)
    return out


def _sorted_ref(rows: list[dict[str, Any]], want: list[int], key: str, desc: bool
                ) -> list[int]:
    """Row ids of `want` (ids in row order) by `key`, ties in row order (a stable sort)."""
    val = {r["_id"]: r[{"ROW_ID": "_id"}.get(key, key)] for r in rows}
    return sorted(want, key=lambda i: val[i], reverse=desc)


def check_conditions(d: Data, cond: Cond, order: tuple[str, bool] | None,
                     limit: int | None, offset: int) -> None:
    assert cond.ref is not None
    rows = _rows_of(d)
    want = [r["_id"] for r in rows if cond.ref(r) is True]
    sql = f"SELECT id WHERE {cond.sql}"
    if order is not None:
        want = _sorted_ref(rows, want, order[0], order[1])
        sql += f" ORDER BY {order[0]}{' DESC' if order[1] else ''}"
    if limit is not None:
        sql += f" LIMIT {limit}"
    if offset:
        sql += f" OFFSET {offset}"
    want = want[offset:] if limit is None else want[offset:offset + limit]
    assert consume(d.ds.query(sql)) == want, sql
    assert "rows" in d.ds.explain(sql)
    if order is None:
        built = d.ds.search().where(cond.sql).limit(limit).offset(offset).run()
        assert consume(built) == want, cond.sql


def _brute(d: Data, tensor: str, metric: str, q: np.ndarray) -> dict[int, float]:
    if not d.ids:
        return {}
    x = np.asarray(d.cols[tensor], np.float64)
    qq = q.astype(np.float64)
    if metric == "cosine":
        s = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (qq / np.linalg.norm(qq))
    elif metric == "ip":
        s = x @ qq
    else:
        s = ((x - qq) ** 2).sum(axis=1)
    return dict(zip(d.ids, s.tolist()))


_FN = {"cosine": "COSINE_SIMILARITY", "l2": "L2_DISTANCE", "ip": "INNER_PRODUCT"}


def check_vectors(d: Data, cond: Cond | None, tensor: str, metric: str, q: np.ndarray,
                  k: int, builder: bool) -> None:
    rows = _rows_of(d)
    cand = [r["_id"] for r in rows
            if cond is None or (cond.ref is not None and cond.ref(r) is True)]
    truth = _brute(d, tensor, metric, q)
    higher = metric != "l2"
    where = "" if cond is None else f" WHERE {cond.sql}"
    sql = (f"SELECT id, score{where} ORDER BY {_FN[metric]}({tensor}, $q) "
           f"{'DESC' if higher else 'ASC'} LIMIT {k}")
    views = [d.ds.query(sql, {"q": q})]
    if builder:
        b = d.ds.search().nearest(tensor, q, metric=metric).limit(k)
        views.append((b.where(cond.sql) if cond is not None else b).run())
    for view in views:
        got = consume(view)
        assert len(got) == min(k, len(cand)), sql
        assert set(got) <= set(cand), sql
        sc = np.asarray(view.scores, np.float64)
        np.testing.assert_allclose(sc, [truth[i] for i in got], rtol=1e-3, atol=1e-3)
        assert (np.diff(sc) <= 1e-6 if higher else np.diff(sc) >= -1e-6).all(), sql
        exact = tensor in d.exact or tensor == "emb2" or (tensor == "emb" and metric == "l2")
        if exact and got:  # no candidate left out scores better than the last one kept
            rest = [truth[i] for i in set(cand) - set(got)]
            if rest:
                edge = sc[-1]
                assert (max(rest) <= edge + 1e-4) if higher else (min(rest) >= edge - 1e-4)


orders = st.none() | st.tuples(st.sampled_from(["i", "u", "f", "t", "lab", "ROW_ID"]),
                               st.booleans())
limits = st.none() | st.integers(0, 30)


@settings(SWEEP, max_examples=60)
@given(cond=checked_conds, order=orders, limit=limits, offset=st.integers(0, 5))
@pytest.mark.timeout(120)
def test_checked_conditions_equal_a_plain_python_reference(
        states: States, cond: Cond, order: tuple[str, bool] | None,
        limit: int | None, offset: int) -> None:
    for d in states:
        check_conditions(d, cond, order, limit, offset)


@settings(SWEEP, max_examples=40)
@given(cond=null_conds, order=orders, limit=limits, offset=st.integers(0, 5))
@pytest.mark.timeout(120)
def test_conditions_on_nulls_follow_three_valued_logic(
        states: States, cond: Cond, order: tuple[str, bool] | None,
        limit: int | None, offset: int) -> None:
    for d in states:
        check_conditions(d, cond, order, limit, offset)


good_vectors = st.lists(st.integers(-4, 4), min_size=DIM, max_size=DIM).filter(any).map(
    lambda v: np.asarray(v, np.float32))


@settings(SWEEP, max_examples=25)
@given(cond=st.none() | checked_conds, tensor=st.sampled_from(["emb", "emb2", "emb3"]),
       metric=st.sampled_from(["cosine", "l2", "ip"]), q=good_vectors,
       k=st.integers(1, 40))
@pytest.mark.timeout(120)
def test_vector_scores_equal_brute_force_on_every_path(
        states: States, cond: Cond | None, tensor: str, metric: str,
        q: np.ndarray, k: int) -> None:
    for d in states:
        check_vectors(d, cond, tensor, metric, q, k, builder=True)


def run_wild(d: Data, sql: str, params: dict[str, Any]) -> None:
    attempt(lambda: consume(d.ds.query(sql, params)))
    attempt(lambda: d.ds.explain(sql, params))


@settings(SWEEP, max_examples=150)
@given(q=any_query)
@pytest.mark.timeout(120)
def test_any_query_text_gives_an_answer_or_a_query_error(
        states: States, q: tuple[str, dict[str, Any]]) -> None:
    for d in states:
        run_wild(d, *q)


@st.composite
def builder_calls(draw: st.DrawFn) -> list[tuple[str, tuple[Any, ...]]]:
    calls: list[tuple[str, tuple[Any, ...]]] = []
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["where", "nearest", "match", "contains", "limit",
                                    "offset", "fuse", "select"]))
        if how == "where":
            calls.append((how, (draw(wild_conds),)))
        elif how == "nearest":
            calls.append((how, (draw(st.sampled_from([*VECTORS, "nope"])),
                                draw(vector_values | good_vectors),
                                draw(st.sampled_from(["cosine", "l2", "ip", "dot"])))))
        elif how in ("match", "contains"):
            calls.append((how, (draw(st.sampled_from(["words", "t", "j", "emb", "nope"])),
                                draw(st.sampled_from(["red car", "", "the", 3, None])))))
        elif how in ("limit", "offset"):
            calls.append((how, (draw(st.one_of(st.integers(-2, 50), st.none(),
                                               st.just("3"), st.just(1.5))),)))
        elif how == "fuse":
            calls.append((how, (draw(st.sampled_from(["rrf", "weighted", "max"])),
                                draw(st.integers(-1, 100)))))
        else:
            calls.append((how, tuple(draw(st.lists(st.sampled_from([*TENSORS, "nope"]),
                                                   max_size=2)))))
    return calls


@settings(SWEEP, max_examples=60)
@given(calls=builder_calls())
@pytest.mark.timeout(120)
def test_any_builder_chain_gives_an_answer_or_a_query_error(
        states: States, calls: list[tuple[str, tuple[Any, ...]]]) -> None:
    for d in states:
        def chain(d: Data = d) -> Any:
            s = d.ds.search()
            for how, args in calls:
                s = getattr(s, how)(*args)
            return s
        s = attempt(chain)
        if not isinstance(s, QueryError):
            attempt(lambda s=s: consume(s.run()))
            attempt(lambda d=d, s=s: d.ds.explain(s))


# ---- the named cases of the sweep, and LIKE at scale ------------------------------------


@settings(SWEEP, max_examples=400)
@given(text=st.text("ab%_\n.é", max_size=30), pattern=st.text("ab%_\n.é", max_size=12))
def test_like_matcher_equals_dynamic_programming(text: str, pattern: str) -> None:
    from plane.query._like import like_matcher

    assert like_matcher(pattern)(text) == like_ref(text, pattern)


@pytest.mark.timeout(60)
def test_like_with_many_percent_signs_is_fast_and_right(states: States) -> None:
    d = states[0]
    for pat in ("%a" * 20 + "%b", "%_" * 20 + "%", "%a%" * 16, "_%" * 16 + "x"):
        want = [i for i, t in zip(d.ids, d.cols["t"]) if like_ref(t, pat)]
        assert consume(d.ds.query(f"SELECT id WHERE t LIKE {_q(pat)}")) == want
        assert "rows" in d.ds.explain(f"SELECT id WHERE t LIKE {_q(pat)}")


# ---- the slow part: a bigger dataset, many more examples --------------------------------


@pytest.fixture(scope="module")
def big_states(tmp_path_factory: pytest.TempPathFactory) -> States:
    return _build(tmp_path_factory.mktemp("sweep_big"), 600, 1)


@pytest.mark.slow
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=600,
          database=None)
@given(cond=checked_conds, order=orders, limit=limits, offset=st.integers(0, 5))
@pytest.mark.timeout(1800)
def test_slow_checked_conditions(big_states: States, cond: Cond,
                                 order: tuple[str, bool] | None, limit: int | None,
                                 offset: int) -> None:
    for d in big_states:
        check_conditions(d, cond, order, limit, offset)


@pytest.mark.slow
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=200,
          database=None)
@given(cond=st.none() | checked_conds, tensor=st.sampled_from(["emb", "emb2", "emb3"]),
       metric=st.sampled_from(["cosine", "l2", "ip"]), q=good_vectors, k=st.integers(1, 80))
@pytest.mark.timeout(1800)
def test_slow_vector_scores(big_states: States, cond: Cond | None, tensor: str,
                            metric: str, q: np.ndarray, k: int) -> None:
    for d in big_states:
        check_vectors(d, cond, tensor, metric, q, k, builder=True)


@pytest.mark.slow
@settings(deadline=None, suppress_health_check=list(HealthCheck), max_examples=1500,
          database=None)
@given(q=any_query)
@pytest.mark.timeout(1800)
def test_slow_any_query_text(big_states: States,
                             q: tuple[str, dict[str, Any]]) -> None:
    for d in big_states:
        run_wild(d, *q)
