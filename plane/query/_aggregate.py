"""Grouped queries: COUNT / SUM / AVG / MIN / MAX over the rows WHERE keeps, per GROUP BY key.

The filter is the row planner's (indexes, chunk statistics, vectorised scans); after it only
the tensors the aggregates and keys name are read, at the matching rows: ``COUNT(*)`` reads no
values at all, ``GROUP BY labels`` reads `labels` alone. Groups are numbered by ``np.unique``
over the key values (nulls form one group, last) and aggregated with ``np.bincount`` and
ufunc ``.at`` reductions. HAVING, ORDER BY, OFFSET and LIMIT then apply to the groups.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import numpy as np

from plane._errors import QueryError
from plane.core._snapshot import Snapshot
from plane.query._ast import (
    Agg,
    And,
    Between,
    Cmp,
    Col,
    In,
    IsNull,
    Lit,
    Not,
    Or,
    Param,
    Query,
)
from plane.query._exec import Plan, filter_rows
from plane.query._groups import AggregateResult

__all__ = ["run_aggregate", "output_name"]

_SCALARS = "a scalar tensor (ints, floats, bool, class_label or text)"
_NUMERIC = "SUM / AVG / MIN / MAX take a numeric scalar tensor (ints, floats, bool)"


def output_name(e: Any, alias: str | None) -> str:
    """The column name of a grouped query's SELECT item: its alias, the tensor's name or the
    aggregate as written (``COUNT(*)``, ``SUM(width)``)."""
    if alias:
        return alias
    if isinstance(e, Agg):
        return f"{e.func.upper()}({'*' if e.col is None else e.col.name})"
    assert isinstance(e, Col)
    return e.name


def run_aggregate(snap: Snapshot, q: Query, text: str = "", plan: Plan | None = None
                  ) -> AggregateResult:
    """The groups grouped query `q` computes on version `snap` (its plan in `.plan`)."""
    plan = plan or Plan()
    names = [output_name(it.expr, it.alias) for it in q.select]
    dup = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if dup is not None:
        raise QueryError(f"two result columns are named {dup!r}; give one an alias "
                         f"(... AS another_name)")
    for c in (*q.group_by, *(a.col for a in _aggs(q) if a.col is not None)):
        if c.name not in snap:
            raise QueryError(f"no tensor {c.name!r}; tensors: "
                             f"{', '.join(snap.tensor_names) or '(none)'}")
    for c in q.group_by:  # refuse what cannot work before the filter runs
        _key_meta(snap, c)
    for a in _aggs(q):
        if a.func != "count":
            _numeric_meta(snap, a)
    pos, n = filter_rows(snap, q, plan)
    rows = np.arange(n, dtype=np.int64) if pos is None else pos
    keys, inverse, groups = _group(snap, q, rows, plan)
    values: dict[Any, Any] = dict(zip(q.group_by, keys))
    for a in _aggs(q):
        values[a] = _aggregate(snap, a, rows, inverse, groups)
    steps = [f"{output_name(a, None)}" for a in _aggs(q)]
    plan.add(f"aggregate {', '.join(steps)} over {rows.shape[0]:,} rows"
             + (f" into {groups:,} group(s)" if q.group_by else ""))
    keep = np.arange(groups, dtype=np.int64)
    if q.having is not None:
        mask = _having(q, q.having, values, groups, snap)
        keep = keep[mask]
        plan.add(f"having: {keep.shape[0]:,} of {groups:,} group(s) kept")
    if q.order_by:
        keep = keep[_order(q, values, keep)]
        plan.add(f"sort {keep.shape[0]:,} group(s) by {len(q.order_by)} key(s)")
    if q.offset or q.limit is not None:
        end = None if q.limit is None else q.offset + q.limit
        keep = keep[q.offset:end]
        plan.add(f"limit {q.limit} offset {q.offset}: {keep.shape[0]:,} group(s)")
    else:
        plan.add(f"result: {keep.shape[0]:,} group(s)")
    out = {name: _take(values[it.expr], keep) for name, it in zip(names, q.select)}
    labels = {name: snap.meta(it.expr.name).class_names for name, it in zip(names, q.select)
              if isinstance(it.expr, Col) and snap.meta(it.expr.name).class_names}
    counts = tuple(name for name, it in zip(names, q.select)
                   if isinstance(it.expr, Agg) and it.expr.func == "count")
    return AggregateResult(snap, out, labels, text, str(plan), bool(q.group_by), counts)


def _aggs(q: Query) -> list[Agg]:
    """Every distinct aggregate the query computes (SELECT, HAVING, ORDER BY), in order."""
    from plane.query._parse import _walk

    found: list[Agg] = []
    exprs = [it.expr for it in q.select] + [o.expr for o in q.order_by]
    if q.having is not None:
        exprs += _walk(q.having)
    for e in exprs:
        if isinstance(e, Agg) and e not in found:
            found.append(e)
    return found


def _take(v: Any, keep: np.ndarray) -> Any:
    return v[keep] if isinstance(v, np.ndarray) else [v[i] for i in keep.tolist()]


# ---- grouping ----------------------------------------------------------------------------------
def _key_meta(snap: Snapshot, col: Col) -> Any:
    """The metadata of GROUP BY tensor `col`; a QueryError unless it holds scalars."""
    meta = snap.meta(col.name)
    scalar = (meta.kind == "text" or (meta.kind == "array" and meta.ndim in (0, None)
                                      and not meta.link))
    what = f"{meta.htype} samples" + (f" of {meta.ndim} dimension(s)"
                                      if meta.kind == "array" and meta.ndim else "")
    if not scalar:
        raise QueryError(f"cannot GROUP BY {col.name!r}: it holds {what}, not one scalar per "
                         f"row; GROUP BY {_SCALARS}")
    return meta


def _key_values(snap: Snapshot, col: Col, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(values of GROUP BY tensor `col` at `rows`, the null mask or None); a QueryError when
    the tensor does not hold one scalar per row."""
    meta = _key_meta(snap, col)
    vals = snap.read(col.name, rows, True, False, links=False)
    if isinstance(vals, list) and not vals:  # no rows
        vals = np.zeros(0, object if meta.kind == "text" else meta.np_dtype)
    if meta.kind == "text":
        arr = np.empty(len(vals), object)
        arr[:] = list(vals)
    elif isinstance(vals, list) or np.ndim(vals) > 1:
        raise QueryError(f"cannot GROUP BY {col.name!r}: its samples are arrays, not one "
                         f"scalar per row; GROUP BY {_SCALARS}")
    else:
        arr = np.asarray(vals).reshape(-1)
    return arr, snap.null_mask(col.name, rows)


def _unique(vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, the index of each value among them): ``np.unique``, or a
    counting pass (no sort) for integers of a small range, such as class ids."""
    if vals.dtype.kind in "biu" and vals.shape[0]:
        lo, hi = int(vals.min()), int(vals.max())
        if hi - lo <= max(2 * vals.shape[0], 1 << 16):
            shifted = vals.astype(np.int64) - lo
            present = np.bincount(shifted, minlength=hi - lo + 1) > 0
            rank = np.cumsum(present) - 1
            uniq = (np.flatnonzero(present) + lo).astype(vals.dtype)
            return uniq, rank[shifted]
    uniq, inv = np.unique(vals, return_inverse=True)
    return uniq, inv.reshape(-1)


def _codes(vals: np.ndarray, nulls: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, bool]:
    """(group code of every row, the distinct values in code order, whether there are nulls:
    their code is the number of distinct values)."""
    if nulls is None or not nulls.any():
        uniq, inv = _unique(vals)
        return inv.astype(np.int64), uniq, False
    ok = ~nulls
    uniq, inv = _unique(vals[ok])
    codes = np.full(vals.shape[0], uniq.shape[0], np.int64)
    codes[ok] = inv.reshape(-1)
    return codes, uniq, True


def _group(snap: Snapshot, q: Query, rows: np.ndarray, plan: Plan
           ) -> tuple[list[Any], np.ndarray, int]:
    """(per GROUP BY tensor its value in each group, the group of every row, the number of
    groups). No GROUP BY: one group of every row (also when there are none, as in SQL)."""
    if not q.group_by:
        return [], np.zeros(rows.shape[0], np.int64), 1
    codes, uniqs, sizes = [], [], []
    for col in q.group_by:
        vals, nulls = _key_values(snap, col, rows)
        c, u, has_null = _codes(vals, nulls)
        codes.append(c)
        uniqs.append((u, has_null))
        sizes.append(u.shape[0] + has_null)
    plan.add(f"group by {', '.join(c.name for c in q.group_by)}: read "
             f"{len(q.group_by)} tensor(s) at {rows.shape[0]:,} rows")
    if len(codes) == 1:
        inverse, combos = codes[0], np.arange(sizes[0], dtype=np.int64).reshape(-1, 1)
    elif float(np.prod(sizes, dtype=np.float64)) < 2.0 ** 62:  # one int per key combination
        flat = np.zeros(rows.shape[0], np.int64)
        for c, size in zip(codes, sizes):
            flat = flat * size + c
        found, inverse = _unique(flat)
        combos = np.empty((found.shape[0], len(codes)), np.int64)
        for k in range(len(codes) - 1, -1, -1):
            found, combos[:, k] = np.divmod(found, sizes[k])
    else:
        combos, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
    keys = [_key_column(u, has_null, combos[:, k]) for k, (u, has_null) in enumerate(uniqs)]
    return keys, inverse.astype(np.int64), int(combos.shape[0])


def _key_column(uniq: np.ndarray, has_null: bool, idx: np.ndarray) -> Any:
    """One key's value in every group (`idx` into `uniq`; the index past it is NULL): an
    ndarray, or a list when the values are strings or some are NULL."""
    if not has_null:
        out = uniq[idx]
        return out.tolist() if out.dtype == object else out
    vals = uniq.tolist()
    return [None if i == len(vals) else vals[i] for i in idx.tolist()]


# ---- aggregates --------------------------------------------------------------------------------
def _aggregate(snap: Snapshot, a: Agg, rows: np.ndarray, inverse: np.ndarray,
               groups: int) -> Any:
    """The value of aggregate `a` in every group: an ndarray, or a list with None where a
    group has no non-null value (SUM / AVG / MIN / MAX of nothing is NULL, as in SQL)."""
    if a.col is None:
        return np.bincount(inverse, minlength=groups).astype(np.int64)
    nulls = snap.null_mask(a.col.name, rows)
    valid = None if nulls is None else ~nulls
    counts = np.bincount(inverse if valid is None else inverse[valid],
                         minlength=groups).astype(np.int64)
    if a.func == "count":
        return counts
    vals = _numeric(snap, a, rows)
    inv = inverse
    if valid is not None:
        vals, inv = vals[valid], inverse[valid]
    if a.func in ("sum", "avg"):
        if vals.dtype.kind == "f":
            total: np.ndarray = np.bincount(inv, vals, minlength=groups)
        else:
            total = np.zeros(groups, np.uint64 if vals.dtype.kind == "u" else np.int64)
            np.add.at(total, inv, vals.astype(total.dtype))
        out = total if a.func == "sum" else total / np.maximum(counts, 1)
    else:
        out = _extreme(vals, inv, groups, a.func == "min")
        if snap.meta(a.col.name).np_dtype.kind == "b":
            out = out.astype(bool)
    if (counts == 0).any():
        return [None if c == 0 else v for c, v in zip(counts.tolist(), out.tolist())]
    return out


def _numeric_meta(snap: Snapshot, a: Agg) -> Any:
    """The metadata of the tensor SUM / AVG / MIN / MAX `a` reads; a QueryError unless it
    holds numeric scalars."""
    assert a.col is not None
    name, meta = a.col.name, snap.meta(a.col.name)
    fn = f"{a.func.upper()}({name})"
    if meta.htype == "class_label":
        raise QueryError(f"{fn}: {name!r} holds class ids, which are categories, not "
                         f"numbers; count them with SELECT {name}, COUNT(*) ... GROUP BY "
                         f"{name}")
    if meta.kind != "array" or meta.ndim not in (0, None) or meta.link:
        raise QueryError(f"{fn}: {name!r} holds {meta.htype} samples; {_NUMERIC}")
    return meta


def _numeric(snap: Snapshot, a: Agg, rows: np.ndarray) -> np.ndarray:
    """The values SUM / AVG / MIN / MAX `a` aggregates, at `rows` (bools as ints)."""
    assert a.col is not None
    name, meta = a.col.name, _numeric_meta(snap, a)
    fn = f"{a.func.upper()}({name})"
    vals = snap.read(name, rows, True, False, links=False)
    if isinstance(vals, list) and not vals:  # no rows
        vals = np.zeros(0, meta.np_dtype)
    if isinstance(vals, list) or np.ndim(vals) > 1:
        raise QueryError(f"{fn}: the samples of {name!r} are arrays; {_NUMERIC}")
    arr = np.asarray(vals).reshape(-1)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    return arr


def _extreme(vals: np.ndarray, inv: np.ndarray, groups: int, lowest: bool) -> np.ndarray:
    """The min (`lowest`) or max of `vals` per group (groups with no values hold junk; NaN
    is skipped unless a group has only NaN)."""
    if vals.dtype.kind == "f":
        out = np.full(groups, np.nan, vals.dtype)
        (np.fmin if lowest else np.fmax).at(out, inv, vals)
        return out
    info = np.iinfo(vals.dtype)
    out = np.full(groups, info.max if lowest else info.min, vals.dtype)
    (np.minimum if lowest else np.maximum).at(out, inv, vals)
    return out


# ---- HAVING and ORDER BY -----------------------------------------------------------------------
def _literal(q: Query, e: Any) -> Any:
    v = e.value if isinstance(e, Lit) else q.params.get(e.name, _MISSING)
    if v is _MISSING:
        raise QueryError(f"parameter ${e.name} has no value; pass params={{{e.name!r}: ...}}")
    if isinstance(v, np.generic):
        v = v.item()
    if not (v is None or isinstance(v, str | bool | numbers.Real)):
        raise QueryError(f"HAVING compares with one number, string, TRUE/FALSE or NULL; got "
                         f"{type(v).__name__}")
    return v


_MISSING = object()
_PY: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def _operand(q: Query, e: Any, values: dict[Any, Any], groups: int, snap: Snapshot,
             other: Any = None) -> list[Any]:
    """The value of HAVING operand `e` in every group (a class name compares as its id)."""
    if isinstance(e, Agg | Col):
        v = values[e]
        return v.tolist() if isinstance(v, np.ndarray) else list(v)
    if isinstance(e, Lit | Param):
        v = _literal(q, e)
        if isinstance(v, str) and isinstance(other, Col) and snap.meta(other.name).class_names:
            names = snap.meta(other.name).class_names
            if v not in names:
                raise QueryError(f"{other.name!r} has no class {v!r}; classes: "
                                 f"{', '.join(names)}")
            v = names.index(v)
        return [v] * groups
    raise QueryError(f"HAVING cannot use {type(e).__name__}; compare aggregates, SELECT "
                     "aliases and GROUP BY tensors with values")


def _having(q: Query, e: Any, values: dict[Any, Any], groups: int, snap: Snapshot
            ) -> np.ndarray:
    """The mask of groups HAVING condition `e` keeps (a comparison with NULL is false)."""
    def cmp(op: str, left: Any, right: Any) -> np.ndarray:
        a = _operand(q, left, values, groups, snap, right)
        b = _operand(q, right, values, groups, snap, left)

        def one(x: Any, y: Any) -> bool:
            if x is None or y is None:
                return False
            try:
                return bool(_PY[op](x, y))
            except TypeError:
                return False
        return np.fromiter((one(x, y) for x, y in zip(a, b)), bool, groups)

    if isinstance(e, And):
        m = np.ones(groups, bool)
        for it in e.items:
            m &= _having(q, it, values, groups, snap)
        return m
    if isinstance(e, Or):
        m = np.zeros(groups, bool)
        for it in e.items:
            m |= _having(q, it, values, groups, snap)
        return m
    if isinstance(e, Not):
        return ~_having(q, e.item, values, groups, snap)
    if isinstance(e, Cmp):
        return cmp(e.op, e.left, e.right)
    if isinstance(e, In):
        m = np.zeros(groups, bool)
        for v in e.values:
            m |= cmp("=", e.expr, v)
        return ~m if e.negated else m
    if isinstance(e, Between):
        m = np.asarray(cmp(">=", e.expr, e.low) & cmp("<=", e.expr, e.high), bool)
        return ~m if e.negated else m
    if isinstance(e, IsNull):
        m = np.fromiter((v is None for v in _operand(q, e.expr, values, groups, snap)), bool,
                        groups)
        return ~m if e.negated else m
    raise QueryError(f"HAVING does not support {type(e).__name__}; use comparisons, IN, "
                     "BETWEEN, IS NULL, AND / OR / NOT")


def _order(q: Query, values: dict[Any, Any], keep: np.ndarray) -> np.ndarray:
    """The order of groups `keep` under ORDER BY (NULLs last; ties keep key order)."""
    sort_keys = []
    for o in reversed(q.order_by):
        v = _take(values[o.expr], keep)
        items = v.tolist() if isinstance(v, np.ndarray) else v
        nulls = np.fromiter((x is None for x in items), bool, len(items))
        present = [x for x in items if x is not None]
        ranks = np.zeros(len(items), np.int64)
        if present:
            ranks[~nulls] = np.unique(np.asarray(present), return_inverse=True)[1].reshape(-1)
        sort_keys += [-ranks if o.desc else ranks, nulls]
    return np.lexsort(sort_keys)
