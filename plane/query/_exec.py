"""Planner and executor: one plan over scalar filters, full text and vector similarity.

1. WHERE runs first, vectorised over only the tensors it names (numpy), producing the set of
   candidate rows; CONTAINS uses the text index when there is one.
2. ORDER BY a score ranks only candidates: a vector index searches with the candidates as an
   IDSelector prefilter (exact search over the candidates when they are few, when the index
   kind degrades under filters, or when it returns short); rows added or changed since the
   index's commit are searched exactly, so results are never stale. BM25 uses the text index
   with global statistics. RRF / weighted fusion combines ranked lists in the same plan.
3. LIMIT / OFFSET push down into every top-k. Partition results merge with pure functions.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import QueryError
from plane._runtime import unique_ints
from plane.core._snapshot import Snapshot
from plane.query._ast import (
    And,
    Between,
    Bm25,
    Cmp,
    Col,
    Contains,
    Fuse,
    In,
    IsNull,
    Like,
    Lit,
    Not,
    Or,
    Param,
    Query,
    RowId,
    Shape,
    VectorScore,
)
from plane.query._cache import state_cached
from plane.query._changes import changed_rows
from plane.query._like import like_mask
from plane.query._nulls import LEAVES, column_nulls, null_rows, unknown
from plane.query._vector import (
    check_width,
    exact_search,
    higher_is_better,
    merge_topk,
    query_vector,
)

if TYPE_CHECKING:
    from plane.query._indexes import IndexInfo

__all__ = ["execute", "Plan", "filter_rows"]

#: below this many candidates a filtered vector search is exact (faster and perfect recall)
EXACT_BELOW = 20_000
#: ranked-list depth used for fusion, as a multiple of LIMIT + OFFSET
FUSION_DEPTH = 10


@dataclass
class Plan:
    """What the executor did, step by step (`ds.explain` prints it)."""

    steps: list[str] = field(default_factory=list)

    def add(self, s: str) -> None:
        self.steps.append(s)

    def __str__(self) -> str:
        return "\n".join(f"{i + 1}. {s}" for i, s in enumerate(self.steps))


class _Ctx:
    def __init__(self, snap: Snapshot, q: Query, plan: Plan) -> None:
        self.snap, self.q, self.plan = snap, q, plan
        self.n = len(snap)
        self.pos = state_cached(snap, "arange", lambda: np.arange(self.n, dtype=np.int64))
        self.ids = state_cached(snap, "row_ids", lambda: snap.row_ids)
        self._cols: dict[str, Any] = {}
        self._order: tuple[np.ndarray, np.ndarray] | None = None
        self._live_phys: np.ndarray | None = None
        self.prune = True
        self.all_rows = False  # no WHERE: every row is a candidate
        self.nulls: dict[str, np.ndarray | None] = {}  # tensor -> null rows at `pos`

    def value(self, e: Any) -> Any:
        if isinstance(e, Lit):
            return e.value
        if isinstance(e, Param):
            if e.name not in self.q.params:
                raise QueryError(f"parameter ${e.name} has no value; pass params={{"
                                 f"{e.name!r}: ...}}")
            return self.q.params[e.name]
        raise QueryError(f"expected a literal or a $parameter here, got {_describe(e)}; "
                         "write the value itself ('text', a number) or a $param")

    def scalar(self, e: Any) -> Any:
        """The value of literal / parameter `e`, which must be one number, string, bool or
        None (what a condition compares a tensor with)."""
        v = self.value(e)
        if v is None or isinstance(v, str | bool | numbers.Real):
            return v
        if isinstance(v, np.generic) and v.dtype.kind in "biuf":
            return v.item()
        what = f"parameter ${e.name}" if isinstance(e, Param) else "a literal"
        raise QueryError(f"{what} is {_type_name(v)}, but a condition compares with one "
                         "number, string, TRUE/FALSE or NULL; pass a single value (a vector "
                         "is only the query of COSINE_SIMILARITY, L2_DISTANCE or "
                         "INNER_PRODUCT)")

    def column(self, name: str) -> Any:
        if name not in self._cols:
            if name not in self.snap:
                raise QueryError(f"no tensor {name!r}; tensors: "
                                 f"{', '.join(self.snap.tensor_names) or '(none)'}")
            # a link tensor's values are its URLs: conditions never fetch the objects
            self._cols[name] = self.snap.read(name, self.pos, True, False, links=False)
        return self._cols[name]


def _type_name(v: Any) -> str:
    if isinstance(v, np.ndarray):
        return f"an array of shape {v.shape}"
    return f"a {type(v).__name__}"


# ---- WHERE -------------------------------------------------------------------------------------
def _json_get(v: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if isinstance(v, dict):
            v = v.get(p)
        elif isinstance(v, list) and p.lstrip("-").isdigit() and -len(v) <= int(p) < len(v):
            v = v[int(p)]
        else:
            return None
    return v


def _operand(ctx: _Ctx, e: Any) -> tuple[Any, str]:
    """(values over all rows or a scalar, kind) where kind is 'col', 'text', 'obj' or 'lit'."""
    if isinstance(e, RowId):
        return ctx.ids, "col"
    if isinstance(e, Shape):
        _meta(ctx, e.col, f"SHAPE({_describe(e.col)})")
        shp = ctx.snap.shapes(e.col.name, ctx.pos)
        if e.dim >= shp.shape[1] or e.dim < -shp.shape[1]:
            raise QueryError(f"SHAPE({e.col.name})[{e.dim}]: samples of {e.col.name!r} have "
                             f"{shp.shape[1]} dimension(s)")
        return shp[:, e.dim], "col"
    if isinstance(e, Col):
        vals = ctx.column(e.name)
        meta = ctx.snap.meta(e.name)
        if meta.kind == "bytes":
            raise QueryError(f"tensor {e.name!r} holds binary samples, which conditions "
                             f"cannot compare; compare SHAPE({e.name})[0] (the byte length)")
        if e.path:
            if meta.kind != "json":
                raise QueryError(f"{e.name}.{'.'.join(e.path)}: only json tensors have fields; "
                                 f"{e.name!r} is {meta.htype}")
            return [_json_get(v, e.path) for v in vals], "obj"
        if meta.kind == "text":
            return vals, "text"
        if meta.kind == "json":
            return vals, "obj"
        if (isinstance(vals, list) and not vals) or meta.ndim is None:
            # no rows, or no value written yet (every row null: conditions are unknown)
            return np.zeros(ctx.n, meta.np_dtype), "col"
        if isinstance(vals, list):
            raise QueryError(f"tensor {e.name!r} has samples of different shapes; compare "
                             f"SHAPE({e.name})[i] or a json field instead")
        if vals.ndim > 1:
            raise QueryError(f"tensor {e.name!r} holds arrays of shape {vals.shape[1:]}; "
                             "filters compare scalars (use SHAPE(...)[i])")
        return vals, "col"
    return ctx.scalar(e), "lit"


_NP = {"=": np.equal, "!=": np.not_equal, "<": np.less, "<=": np.less_equal,
       ">": np.greater, ">=": np.greater_equal}
_PY: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
#: the comparison that holds when the operands swap sides
_FLIP = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}


def _class_id(ctx: _Ctx, col: Any, v: Any) -> Any:
    """Class names compare as their ids in class_label tensors."""
    if isinstance(col, Col) and not col.path and isinstance(v, str) \
            and col.name in ctx.snap:
        meta = ctx.snap.meta(col.name)
        if meta.htype == "class_label":
            if v not in meta.class_names:
                raise QueryError(f"{col.name!r} has no class {v!r}; classes: "
                                 f"{', '.join(meta.class_names) or '(none)'}")
            return meta.class_names.index(v)
    return v


def _cmp(ctx: _Ctx, op: str, left: Any, right: Any) -> np.ndarray:
    a, ka = _operand(ctx, left)
    b, kb = _operand(ctx, right)
    if ka == "lit" and kb != "lit":  # literal on the left: flip
        return _cmp(ctx, _FLIP.get(op, op), right, left)
    fn = _PY[op]

    def safe(x: Any, y: Any) -> bool:
        if x is None or y is None:
            return False
        try:
            return bool(fn(x, y))
        except (TypeError, ValueError):  # values that do not compare (1 < 'a')
            return False
    if ka == "lit":  # two constants (`1 = 1`): the same answer for every row
        return np.full(ctx.n, safe(a, b))
    if kb == "lit":
        b = _class_id(ctx, left, b)
    if ka == "col" and kb in ("col", "lit"):
        if kb == "lit" and isinstance(b, str):
            raise QueryError(f"cannot compare the numeric {_describe(left)} with the string "
                             f"{b!r} ({_describe(left)} {op} {b!r}); compare it with a number"
                             + (" or one of its class names" if _is_label(ctx, left) else ""))
        if kb == "lit" and b is None:
            return np.zeros(ctx.n, bool)
        return np.asarray(_NP[op](a, b), bool)
    # python values, so a number meets a json list as a value, not an elementwise compare
    aa = a.tolist() if isinstance(a, np.ndarray) else a
    bb = b.tolist() if isinstance(b, np.ndarray) else b if kb != "lit" else [b] * ctx.n
    return np.fromiter((safe(x, y) for x, y in zip(aa, bb)), bool, ctx.n)


def _describe(e: Any) -> str:
    """How expression `e` is written in the query (for error messages)."""
    if isinstance(e, RowId):
        return "ROW_ID"
    if isinstance(e, Shape):
        return f"SHAPE({e.col.name})[{e.dim}]"
    if isinstance(e, Col):
        return ".".join((e.name, *e.path))
    if isinstance(e, Param):
        return f"${e.name}"
    if isinstance(e, Lit):
        return repr(e.value)
    return type(e).__name__


def _is_label(ctx: _Ctx, e: Any) -> bool:
    return isinstance(e, Col) and not e.path and e.name in ctx.snap \
        and ctx.snap.meta(e.name).htype == "class_label"


def _contains(ctx: _Ctx, e: Contains, cand: np.ndarray | None) -> np.ndarray:
    from plane.query._indexes import find_index, load_partition
    from plane.query._text import phrase_match

    text = ctx.value(e.text)
    if not isinstance(text, str):
        raise QueryError(f"CONTAINS({e.col.name}, ...) takes a string, got "
                         f"{_type_name(text)}; pass the words to find as a 'string'")
    _text_meta(ctx, e.col, f"CONTAINS({e.col.name}, ...)")
    info = find_index(ctx.snap, e.col.name, ("bm25",))
    mask = np.zeros(ctx.n, bool)
    if info is not None and info.state == ctx.snap.state_key:
        ctx.plan.add(f"CONTAINS({e.col.name}): bm25 index at {info.commit[:12]} "
                     f"({len(info.partitions)} partition(s)), then phrase check")
        hits = []
        for p in info.partitions:
            ti = load_partition(ctx.snap.store, p["key"], True)
            hits.append(ti.contains_all(text))
        rows = np.concatenate(hits) if hits else np.zeros(0, np.int64)
        pos = np.flatnonzero(np.isin(ctx.ids, rows))
    else:
        ctx.plan.add(f"CONTAINS({e.col.name}): scan (no current bm25 index)")
        pos = ctx.pos if cand is None else np.flatnonzero(cand)
    if pos.shape[0]:
        texts = ctx.snap.read(e.col.name, pos, True, True, links=False)
        mask[pos[phrase_match(texts, text)]] = True
    return mask


def _text_meta(ctx: _Ctx, col: Col, what: str) -> Any:
    """The metadata of the text tensor CONTAINS / BM25 searches (a QueryError otherwise)."""
    meta = _meta(ctx, col, what)
    if meta.kind != "text":
        raise QueryError(f"{what} searches a text tensor; {col.name!r} is {meta.htype}: "
                         "name a tensor with htype='text' (match a json field with LIKE)")
    return meta


def _column_predicate(e: Any, flip: bool = True) -> tuple[Col, str, tuple[Any, ...]] | None:
    """(column, op, literal operands) when `e` compares one tensor (no json path) with
    literals or parameters: op is = < <= > >= (one operand), "between" (two) or "in" (any).
    `flip` also takes `literal op column`, as `column op' literal`."""
    if isinstance(e, Cmp) and e.op in ("=", "<", "<=", ">", ">="):
        col, lit, op = e.left, e.right, e.op
        if flip and isinstance(lit, Col) and isinstance(col, Lit | Param):
            col, lit, op = lit, col, _FLIP.get(op, op)
        if isinstance(col, Col) and not col.path and isinstance(lit, Lit | Param):
            return col, op, (lit,)
        return None
    if isinstance(e, Between) and not e.negated and isinstance(e.expr, Col) \
            and not e.expr.path and isinstance(e.low, Lit | Param) \
            and isinstance(e.high, Lit | Param):
        return e.expr, "between", (e.low, e.high)
    if isinstance(e, In) and not e.negated and isinstance(e.expr, Col) and not e.expr.path \
            and all(isinstance(v, Lit | Param) for v in e.values):
        return e.expr, "in", tuple(e.values)
    return None


def _range_of(ctx: _Ctx, e: Any) -> tuple[Col, float, float] | None:
    """(column, low, high) when `e` keeps only values in [low, high] of a tensor (a superset
    is fine: the predicate is re-checked on the rows read)."""
    found = _column_predicate(e, flip=False)
    if found is None:
        return None
    col, op, operands = found
    vals = [ctx.value(x) for x in operands]
    if not vals or not all(isinstance(v, int | float) and not isinstance(v, bool)
                           for v in vals):
        return None
    nums = [float(v) for v in vals]
    if op == "between":
        return col, nums[0], nums[1]
    if op == "in":
        return col, min(nums), max(nums)
    v = nums[0]
    lo, hi = {"=": (v, v), "<": (-np.inf, v), "<=": (-np.inf, v), ">": (v, np.inf),
              ">=": (v, np.inf)}[op]
    return col, lo, hi


def _pruned(ctx: _Ctx, e: Any) -> np.ndarray | None:
    """The mask of `e` computed from only the chunks whose min/max statistics can match."""
    from plane.query._indexes import scalar_index
    from plane.query._stats import candidate_positions

    r = _range_of(ctx, e)
    if r is None or r[0].name not in ctx.snap or r[0].name in ctx._cols:
        return None
    col, lo, hi = r
    found = scalar_index(ctx.snap, col.name, "minmax")
    if found is None:
        return None
    stats = found[1]
    if ctx._live_phys is None:
        ctx._live_phys = ctx.snap.to_physical(ctx.pos)
    pos, kept, total = candidate_positions(ctx.snap, col.name, stats, lo, hi, ctx._live_phys)
    ctx.plan.add(f"{col.name} in [{lo:g}, {hi:g}]: minmax statistics keep {kept} of {total} "
                 f"chunk(s), {pos.shape[0]:,} rows read")
    m = np.zeros(ctx.n, bool)
    m[pos] = _mask_at(ctx, e, pos)
    return m


def _mask_at(ctx: _Ctx, e: Any, pos: np.ndarray) -> np.ndarray:
    """`e` evaluated at the sorted positions `pos` only (by a scan: no index below)."""
    sub = _Ctx(ctx.snap, ctx.q, ctx.plan)
    sub.n, sub.pos, sub.ids, sub.prune = int(pos.shape[0]), pos, ctx.ids[pos], False
    return where_mask(sub, e)


def _lookup_of(ctx: _Ctx, e: Any) -> tuple[Col, str, Any] | None:
    """(column, description, how to query a btree index) when `e` is a predicate a sorted
    index answers: col op literal (= < <= > >=), BETWEEN, IN of literals."""
    found = _column_predicate(e)
    if found is None:
        return None
    col, op, operands = found
    vals = [_class_id(ctx, col, ctx.value(x)) for x in operands]
    if op == "between":
        return col, f"{col.name} BETWEEN {vals[0]!r} AND {vals[1]!r}", \
            lambda ix: ix.between(vals[0], vals[1])
    if op == "in":
        def many(ix: Any) -> np.ndarray | None:
            hits = [ix.lookup("=", v) for v in vals]
            if any(h is None for h in hits):
                return None
            # indexes into the sorted index; a value given twice would repeat its rows
            return unique_ints(np.concatenate(hits)) if hits else np.zeros(0, np.int64)
        return col, f"{col.name} IN ({len(vals)} values)", many
    return col, f"{col.name} {op} {vals[0]!r}", lambda ix: ix.lookup(op, vals[0])


def _indexed(ctx: _Ctx, e: Any) -> np.ndarray | None:
    """The mask of `e` from a btree index of its tensor (rows changed since the index's
    commit evaluated directly), or None when no index applies."""
    from plane.query._indexes import scalar_index

    if ctx.n != len(ctx.snap):
        return None
    try:
        found = _lookup_of(ctx, e)
    except QueryError:
        return None  # e.g. an unknown class name: the scan raises the full error
    if found is None or found[0].name not in ctx.snap:
        return None
    col, what, query = found
    indexed = scalar_index(ctx.snap, col.name, "btree")
    if indexed is None:
        return None
    info, index = indexed
    at = query(index)
    if at is None:
        return None  # a value the index cannot compare (the scan decides)
    stale, fresh = _changed_since(ctx, info, col.name)
    m = np.zeros(ctx.n, bool)
    if info.state == ctx.snap.state_key:
        hits = index.pos[at]  # the indexed state: its positions are ours
        m[hits] = True
    else:
        hits = index.ids[at]
        if stale.shape[0]:
            hits = np.setdiff1d(hits, stale, assume_unique=True)
        m[_to_pos(ctx, hits)] = True
    if fresh.shape[0]:
        pos = np.sort(_to_pos(ctx, fresh))
        m[pos] = _mask_at(ctx, e, pos)
    ctx.plan.add(f"{what}: btree index at commit {info.commit[:12]}: {hits.shape[0]:,} rows"
                 + (f", {fresh.shape[0]:,} rows changed since checked directly"
                    if fresh.shape[0] else ""))
    return m


def where_mask(ctx: _Ctx, e: Any, cand: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask over rows (positions) of rows satisfying `e` (true, not unknown: a
    comparison on a null row is unknown, `plane.query._nulls`)."""
    m = _where(ctx, e, cand)
    if isinstance(e, LEAVES):
        null = null_rows(ctx, e)
        if null is not None:
            m &= ~null
    return m


def _where(ctx: _Ctx, e: Any, cand: np.ndarray | None = None) -> np.ndarray:
    if not isinstance(e, And | Or | Not) and ctx.prune:
        found = _indexed(ctx, e)
        if found is None:
            found = _pruned(ctx, e)
        if found is not None:
            return found
    if isinstance(e, And):
        m = np.ones(ctx.n, bool)
        for it in sorted(e.items, key=lambda x: isinstance(x, Contains)):  # cheap ones first
            m &= where_mask(ctx, it, m)
        return m
    if isinstance(e, Or):
        m = np.zeros(ctx.n, bool)
        for it in e.items:
            m |= where_mask(ctx, it, cand)
        return m
    if isinstance(e, Not):
        unk = unknown(ctx, e.item, where_mask)
        m = ~where_mask(ctx, e.item, None)
        return m if unk is None else m & ~unk
    if isinstance(e, Cmp):
        return _cmp(ctx, e.op, e.left, e.right)
    if isinstance(e, In):
        m = np.zeros(ctx.n, bool)
        for v in e.values:
            m |= _cmp(ctx, "=", e.expr, v)
        return ~m if e.negated else m
    if isinstance(e, Between):
        m = np.asarray(_cmp(ctx, ">=", e.expr, e.low) & _cmp(ctx, "<=", e.expr, e.high), bool)
        return ~m if e.negated else m
    if isinstance(e, IsNull):
        if isinstance(e.expr, Col) and not e.expr.path and e.expr.name in ctx.snap \
                and ctx.snap.meta(e.expr.name).kind != "json":  # the row has no value
            null = column_nulls(ctx, e.expr.name)
            m = null.copy() if null is not None else np.zeros(ctx.n, bool)
            return ~m if e.negated else m
        vals, kind = _operand(ctx, e.expr)
        if isinstance(e.expr, Col):  # json: a null row, or JSON null / no such field
            m = np.fromiter((v is None for v in vals), bool, ctx.n)
            null = column_nulls(ctx, e.expr.name)
        elif kind == "lit":
            m, null = np.full(ctx.n, vals is None or vals == ""), None
        else:  # ROW_ID is never null; SHAPE(x)[i] is where x is
            m = np.zeros(ctx.n, bool)
            null = column_nulls(ctx, e.expr.col.name) if isinstance(e.expr, Shape) else None
        if null is not None:
            m |= null
        return ~m if e.negated else m
    if isinstance(e, Like):
        vals, kind = _operand(ctx, e.expr)
        pat = ctx.value(e.pattern) if isinstance(e.pattern, Lit | Param) else None
        if kind == "col" or not isinstance(pat, str):
            raise QueryError(f"LIKE compares a text tensor (or json field) with a 'string' "
                             f"pattern, got {_describe(e.expr)} LIKE {_describe(e.pattern)}")
        m = like_mask([vals] * ctx.n if kind == "lit" else vals, pat, ctx.n)
        return ~m if e.negated else m
    if isinstance(e, Contains):
        return _contains(ctx, e, cand)
    if isinstance(e, Col | Lit | Param):
        v, kind = _operand(ctx, e)
        if kind == "lit" and (v is None or isinstance(v, bool)):
            return np.full(ctx.n, bool(v))
        if kind == "col":
            return np.asarray(v, bool)
        raise QueryError(f"{_describe(e)} is a value, not a condition; compare it "
                         f"(e.g. {_describe(e)} = ...)")
    raise QueryError(f"{type(e).__name__} cannot be used as a filter")


# ---- scores ------------------------------------------------------------------------------------
def _changed_since(ctx: _Ctx, info: IndexInfo, tensor: str) -> tuple[np.ndarray, np.ndarray]:
    """(row ids the index must not answer for, row ids to search exactly): rows deleted /
    updated / added since the index's commit."""
    def compute() -> tuple[np.ndarray, np.ndarray]:
        if info.state == ctx.snap.state_key:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        old = Snapshot.open(ctx.snap.store, info.state, commit_id=info.commit)
        return changed_rows(old, ctx.snap, tensor, info.source or tensor)

    out: tuple[np.ndarray, np.ndarray] = state_cached(ctx.snap, ("changed", info.key, tensor),
                                                      compute)
    return out


def _meta(ctx: _Ctx, col: Col, what: str) -> Any:
    """The metadata of the tensor a score or CONTAINS names (a QueryError if none)."""
    if col.name not in ctx.snap:
        raise QueryError(f"{what}: no tensor {col.name!r}; tensors: "
                         f"{', '.join(ctx.snap.tensor_names) or '(none)'}")
    if col.path:
        raise QueryError(f"{what} takes a tensor, not the json field "
                         f"{_describe(col)}; name the tensor itself")
    return ctx.snap.meta(col.name)


def _vector_query(ctx: _Ctx, s: VectorScore, cpos: np.ndarray) -> np.ndarray:
    """The query vector of `s`, checked against the width of the vectors at candidate
    positions `cpos` (every one is checked as it is read)."""
    name = _score_name(s)
    meta = _meta(ctx, s.col, name)
    if meta.kind != "array":
        raise QueryError(f"{name}: {s.col.name!r} is {meta.htype}, not a vector tensor; "
                         "score a tensor of numeric vectors (e.g. htype='embedding')")
    qv = query_vector(ctx.value(s.query), f"the query vector of {name}")
    shape = meta.fixed_shape or (None if meta.vector_width is None else (meta.vector_width,))
    if shape is not None:
        holds = f"{s.col.name!r} holds vectors of shape {shape}"
    elif ctx.n:  # no fixed shape: the first candidate's (or row's, if none) tells the width
        at = cpos[:1] if cpos.shape[0] else ctx.pos[:1]
        shape = tuple(ctx.snap.shapes(s.col.name, at)[0].tolist())
        holds = (f"{s.col.name!r} holds vectors of shape {shape} at row id "
                 f"{int(ctx.ids[at[0]])}")
    if shape is not None:
        check_width(qv, int(np.prod(shape)), f"the query vector of {name}", holds)
    return qv


def _vectors(ctx: _Ctx, name: str, pos: np.ndarray) -> np.ndarray:
    if not pos.shape[0]:
        return np.zeros((0, 1), np.float32)
    v = ctx.snap.read(name, pos, True, False)
    if isinstance(v, list):
        shapes = [np.shape(x) for x in v]
        odd = next((i for i, sh in enumerate(shapes) if sh != shapes[0]), None)
        if odd is not None:
            raise QueryError(
                f"tensor {name!r} has vectors of different shapes ({shapes[0]} at row id "
                f"{int(ctx.ids[pos[0]])}, {shapes[odd]} at row id {int(ctx.ids[pos[odd]])}); "
                f"a vector score needs one shape: filter the rows (e.g. WHERE "
                f"SHAPE({name})[0] = {shapes[0][0] if shapes[0] else 1}) or store the vectors "
                "in a tensor with a fixed shape")
        v = np.stack(v)
    return np.asarray(v, np.float32).reshape(pos.shape[0], -1)


def rank_vector(ctx: _Ctx, s: VectorScore, cand: np.ndarray, k: int | None
                ) -> tuple[np.ndarray, np.ndarray]:
    """(positions, scores) best first among candidate positions."""
    from plane.query._indexes import find_index, load_partition

    cpos = ctx.pos if ctx.all_rows else np.flatnonzero(cand)
    null = column_nulls(ctx, s.col.name)
    if null is not None:  # a null row has no vector: never a result
        cpos = cpos[~null[cpos]]
    qv = _vector_query(ctx, s, cpos)
    label = f"{_score_name(s)}"
    info = find_index(ctx.snap, s.col.name, metric=s.metric) if cpos.shape[0] else None
    exact_all = info is None or (cpos.shape[0] <= EXACT_BELOW and cpos.shape[0] < ctx.n) \
        or (info.kind == "hnsw" and cpos.shape[0] < 0.2 * ctx.n)
    if exact_all:
        why = ("no index with this metric" if info is None else
               f"{cpos.shape[0]:,} candidates: exact is faster and exact")
        ctx.plan.add(f"{label}: exact search over {cpos.shape[0]:,} rows ({why})")
        ids, sc = exact_search(_vectors(ctx, s.col.name, cpos), ctx.ids[cpos], qv, k, s.metric)
        return _to_pos(ctx, ids), sc
    assert info is not None
    stale, fresh = _changed_since(ctx, info, s.col.name)
    same = info.state == ctx.snap.state_key
    every = cpos.shape[0] == ctx.n
    unfiltered = every and not stale.shape[0]
    # all rows wanted, some stale in the index: exclude those (a selector of the stale rows),
    # instead of allowing every other row (a sort and a selector of n ids per query)
    exclude = every and stale.shape[0] > 0
    cids = ctx.ids[cpos] if not ((unfiltered or exclude) and same) else ctx.ids
    allowed = None if unfiltered or exclude else (
        np.sort(cids) if not stale.shape[0] else np.setdiff1d(cids, stale))
    if same and allowed is not None and not stale.shape[0]:
        allowed = cids  # the local positions below are used instead; no sort needed
    kk = ctx.n if k is None else k
    parts = []
    for p in info.partitions:
        part = load_partition(ctx.snap.store, p["key"], False)
        if same and allowed is not None:  # the index's rows are this state's rows in order
            a, b = int(p["start"]), int(p["start"]) + int(p["rows"])
            local = cpos[(cpos >= a) & (cpos < b)] - a
            parts.append(part.search(qv, kk, None, local=local))
        else:
            parts.append(part.search(qv, kk, allowed, excluded=stale if exclude else None))
    ids, sc = merge_topk(parts, kk, higher_is_better(s.metric))
    want = min(kk, int(allowed.shape[0]) if allowed is not None
               else info.rows - (int(stale.shape[0]) if exclude else 0))
    if ids.shape[0] < want:  # the index came back short under the filter: be exact
        ctx.plan.add(f"{label}: {info.kind} index returned {ids.shape[0]} < {want}; exact "
                     f"search over the {cpos.shape[0]:,} candidates instead")
        ids, sc = exact_search(_vectors(ctx, s.col.name, cpos), cids, qv, k, s.metric)
        return _to_pos(ctx, ids), sc
    ctx.plan.add(f"{label}: {info.kind} index at commit {info.commit[:12]} "
                 f"({len(info.partitions)} partition(s), params {info.params}); prefilter "
                 f"{'none' if allowed is None else f'{allowed.shape[0]:,} allowed rows'}"
                 + (f"; {stale.shape[0]:,} rows changed since excluded from it"
                    if exclude else ""))
    # rows added or changed since the index (all in this version) among the candidates
    new = fresh if every or not fresh.shape[0] else np.intersect1d(cids, fresh)
    if new.shape[0]:
        npos = _to_pos(ctx, new)
        ctx.plan.add(f"{label}: exact search over {new.shape[0]:,} rows added or changed "
                     "since the index's commit")
        ids, sc = merge_topk([(ids, sc), exact_search(_vectors(ctx, s.col.name, npos), new, qv,
                                                      k, s.metric)], k,
                             higher_is_better(s.metric))
    return _to_pos(ctx, ids), sc


def _id_order(ctx: _Ctx) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ctx.ids, kind="stable")
    return order, ctx.ids[order]


def _to_pos(ctx: _Ctx, ids: np.ndarray) -> np.ndarray:
    """Positions of row `ids` in this version."""
    if ctx._order is None:
        ctx._order = state_cached(ctx.snap, "id_order", lambda: _id_order(ctx)) \
            if ctx.n == len(ctx.snap) else _id_order(ctx)
    order, sorted_ids = ctx._order
    out: np.ndarray = order[np.searchsorted(sorted_ids, ids)]
    return out


def rank_bm25(ctx: _Ctx, s: Bm25, cand: np.ndarray, k: int | None
              ) -> tuple[np.ndarray, np.ndarray]:
    from plane.query._indexes import find_index, load_partition
    from plane.query._text import TextIndex, tokenize
    from plane.query._text import merge_topk as text_merge

    text = ctx.value(s.text)
    if not isinstance(text, str):
        raise QueryError(f"BM25({s.col.name}, ...) takes a string, got {_type_name(text)}; "
                         "pass the words to score as a 'string'")
    _text_meta(ctx, s.col, f"BM25({s.col.name}, ...)")
    cpos = np.flatnonzero(cand)
    info = find_index(ctx.snap, s.col.name, ("bm25",))
    usable = info is not None and info.state == ctx.snap.state_key
    terms = tokenize(text)
    if usable:
        assert info is not None
        idx = [load_partition(ctx.snap.store, p["key"], True) for p in info.partitions]
        stats = idx[0].stats(terms)
        for t in idx[1:]:
            stats = stats.combine(t.stats(terms))
        allowed = None if cpos.shape[0] == ctx.n else np.sort(ctx.ids[cpos])
        ids, sc = text_merge([t.search(text, k, allowed, stats) for t in idx], k)
        ctx.plan.add(f"BM25({s.col.name}): bm25 index at commit {info.commit[:12]} "
                     f"({len(idx)} partition(s), global statistics); prefilter "
                     f"{'none' if allowed is None else f'{allowed.shape[0]:,} rows'}")
    else:
        all_texts = ctx.snap.read(s.col.name, ctx.pos, True, True, links=False)
        full = TextIndex.build(all_texts, ctx.ids)  # statistics over the whole version
        stats = full.stats(terms)
        allowed = None if cpos.shape[0] == ctx.n else np.sort(ctx.ids[cpos])
        ids, sc = full.search(text, k, allowed, stats)
        ctx.plan.add(f"BM25({s.col.name}): no current bm25 index; built one in memory over "
                     f"{ctx.n:,} rows")
    return _to_pos(ctx, ids), sc


def _score_name(s: Any) -> str:
    if isinstance(s, VectorScore):
        f = {"cosine": "COSINE_SIMILARITY", "l2": "L2_DISTANCE", "ip": "INNER_PRODUCT"}
        return f"{f[s.metric]}({s.col.name})"
    if isinstance(s, Bm25):
        return f"BM25({s.col.name})"
    if isinstance(s, Fuse):
        return f"{s.method.upper()}({', '.join(_score_name(p) for p in s.parts)})"
    return type(s).__name__


def rank(ctx: _Ctx, s: Any, cand: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray,
                                                                       bool]:
    """(positions, scores, higher_is_better) of the best k candidates under score `s`."""
    if isinstance(s, VectorScore):
        p, sc = rank_vector(ctx, s, cand, k)
        return p, sc, higher_is_better(s.metric)
    if isinstance(s, Bm25):
        p, sc = rank_bm25(ctx, s, cand, k)
        return p, sc, True
    if isinstance(s, Fuse):
        depth = None if k is None else max(k * FUSION_DEPTH, 100)
        lists = [rank(ctx, part, cand, depth) for part in s.parts]
        weights = list(s.weights) or [1.0] * len(lists)
        if len(weights) != len(lists):
            raise QueryError(f"{s.method.upper()} has {len(lists)} scores but "
                             f"{len(weights)} weights")
        total: dict[int, float] = {}
        for (pos, sc, _), w in zip(lists, weights):
            for r, (p, v) in enumerate(zip(pos.tolist(), sc.tolist())):
                add = w / (s.k + r + 1) if s.method == "rrf" else w * v
                total[p] = total.get(p, 0.0) + add
        how = f"reciprocal rank, k={s.k}" if s.method == "rrf" else "weighted score sum"
        ctx.plan.add(f"{_score_name(s)}: fused {len(lists)} ranked lists (depth "
                     f"{depth or 'all'}) by {how}, weights {weights}")
        pos = np.fromiter(total.keys(), np.int64, len(total))
        sc = np.fromiter(total.values(), np.float64, len(total)).astype(np.float32)
        order = np.lexsort((ctx.ids[pos], -sc))
        if k is not None:
            order = order[:k]
        return pos[order], sc[order], True
    raise QueryError(f"cannot rank by {type(s).__name__}")


# ---- the query ---------------------------------------------------------------------------------
def _filter(snap: Snapshot, q: Query, plan: Plan) -> tuple[_Ctx, np.ndarray | None]:
    """(the context, the mask of rows WHERE keeps; None: no WHERE, every row)."""
    ctx = _Ctx(snap, q, plan)
    changes = snap.commit_id is None and (snap.base_commit is not None
                                          or bool(snap.tensor_names))
    plan.add(f"version: {snap.base_commit or 'uncommitted'} "
             f"{'(+ uncommitted changes)' if changes else ''}".rstrip()
             + f", {ctx.n:,} rows")
    if q.where is None:
        ctx.all_rows = True
        return ctx, None
    cand = where_mask(ctx, q.where)
    hit = int(np.count_nonzero(cand))
    plan.add(f"filter: {hit:,} of {ctx.n:,} rows match ({hit / ctx.n if ctx.n else 0:.2%})")
    return ctx, cand


def filter_rows(snap: Snapshot, q: Query, plan: Plan) -> tuple[np.ndarray | None, int]:
    """(the sorted positions of the rows WHERE keeps, or None when there is no WHERE, the
    number of rows in the version): the filter step alone, for aggregates."""
    ctx, cand = _filter(snap, q, plan)
    return (None if cand is None else np.flatnonzero(cand)), ctx.n


def execute(snap: Snapshot, q: Query, plan: Plan | None = None
            ) -> tuple[np.ndarray, np.ndarray | None, Plan]:
    """(positions of the result rows in order, their scores or None, the plan)."""
    plan = plan or Plan()
    ctx, found = _filter(snap, q, plan)
    cand = np.ones(ctx.n, bool) if found is None else found
    limit = None if q.limit is None else q.limit + q.offset
    scores: np.ndarray | None = None
    if q.order_by and isinstance(q.order_by[0].expr, VectorScore | Bm25 | Fuse):
        o = q.order_by[0]
        pos, scores, higher = rank(ctx, o.expr, cand, limit)
        if o.desc != higher:  # asked for the worst first: rank everything, then reverse
            plan.add(f"{_score_name(o.expr)} ordered {'DESC' if o.desc else 'ASC'}: the "
                     f"{'most' if not higher else 'least'} {'distant' if not higher else 'similar'}"
                     f" rows first (write {'ASC' if o.desc else 'DESC'} for the nearest)")
            pos, scores, _ = rank(ctx, o.expr, cand, None)
            pos, scores = pos[::-1], scores[::-1]
            if limit is not None:
                pos, scores = pos[:limit], scores[:limit]
    elif q.order_by:
        keys = []
        cpos = np.flatnonzero(cand)
        for o in reversed(q.order_by):
            vals, kind = _operand(ctx, o.expr)
            if kind == "lit":
                raise QueryError("ORDER BY needs a tensor, ROW_ID, SHAPE(...) or a score")
            v = np.asarray(vals if kind == "col" else [str(x) for x in vals])[cpos]
            if o.desc or kind != "col":  # ranks: negating an unsigned or bool key is wrong
                ranks = np.unique(v, return_inverse=True)[1].reshape(-1)
                keys.append(-ranks if o.desc else ranks)
            else:
                keys.append(v)
            null = null_rows(ctx, o.expr) if isinstance(o.expr, Col) else None
            if null is not None:  # nulls last, either direction
                keys.append(null[cpos])
        pos = cpos[np.lexsort(keys)]
        plan.add(f"sort {pos.shape[0]:,} rows by {len(q.order_by)} key(s)")
    else:
        pos = np.flatnonzero(cand)
    pos = pos[q.offset:] if q.offset else pos
    if scores is not None and q.offset:
        scores = scores[q.offset:]
    if q.limit is not None:
        pos = pos[:q.limit]
        scores = scores[:q.limit] if scores is not None else None
    plan.add(f"limit {q.limit} offset {q.offset}: {pos.shape[0]:,} rows"
             if q.limit is not None or q.offset else f"result: {pos.shape[0]:,} rows")
    return pos, scores, plan
