"""The builder face of the query language: `ds.search().where(...).nearest(...).run()`.

It produces the same `Query` the SQL text does, so both run through one planner.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from plane._errors import QueryError
from plane.query._ast import (
    METRICS,
    Agg,
    And,
    Bm25,
    Col,
    Contains,
    Expr,
    Fuse,
    OrderItem,
    Param,
    Query,
    SelectItem,
    VectorScore,
)

if TYPE_CHECKING:
    from plane.core._snapshot import Snapshot
    from plane.query._groups import AggregateResult
    from plane.query._view import View

__all__ = ["Search", "run_query", "explain_query"]


class Search:
    """Chainable: where / contains filter; nearest / match rank (several fuse by RRF).
    Runs on `at`: a Snapshot, or a function returning the one to read when it runs
    (`ds.search()` passes `ds.snapshot`, so writes made before `.run()` are seen)."""

    def __init__(self, at: Snapshot | Callable[[], Snapshot]) -> None:
        self._at = at
        self._where: list[Expr] = []
        self._scores: list[tuple[Any, float]] = []
        self._params: dict[str, Any] = {}
        self._select: tuple[str, ...] = ()
        self._limit: int | None = 10
        self._offset = 0
        self._fuse = ("rrf", 60)

    def _param(self, value: Any) -> Param:
        name = f"p{len(self._params)}"
        self._params[name] = value
        return Param(name)

    def where(self, predicate: str, params: dict[str, Any] | None = None) -> Search:
        """A SQL predicate, e.g. ``"labels = 'dog' AND width > $w"`` (params bound)."""
        from plane.query._parse import parse

        q = parse(f"SELECT * WHERE {predicate}", params,
                  tensors=list(self._snapshot().tensor_names))
        if q.where is not None:
            self._where.append(q.where)
        self._params.update(q.params)
        return self

    def contains(self, tensor: str, text: str) -> Search:
        """Rows whose text has every term (and quoted phrase) of `text`."""
        self._where.append(Contains(Col(tensor), self._param(text)))
        return self

    def match(self, tensor: str, text: str, weight: float = 1.0) -> Search:
        """Rank by BM25 of `text` in `tensor` (fused with other rankings)."""
        self._scores.append((Bm25(Col(tensor), self._param(text)), weight))
        return self

    def nearest(self, tensor: str, vector: Any, metric: str = "cosine",
                weight: float = 1.0) -> Search:
        """Rank by vector similarity to `vector` (cosine, l2 or ip)."""
        if metric not in METRICS:
            raise QueryError(f"unknown metric {metric!r}; choose {', '.join(METRICS)}")
        from plane.query._vector import check_width, query_vector

        what = f"the vector of nearest({tensor!r}, ...)"
        qv = query_vector(vector, what)
        snap = self._snapshot()
        width = snap.meta(tensor).vector_width if tensor in snap else None
        if width is not None:  # known now: refuse it here, not at run()
            check_width(qv, width, what, f"{tensor!r} holds vectors of width {width}")
        self._scores.append((VectorScore(metric, Col(tensor), self._param(qv)), weight))
        return self

    def fuse(self, method: str = "rrf", k: int = 60) -> Search:
        """How several rankings combine: "rrf" (reciprocal rank, `k`) or "weighted"."""
        if method not in ("rrf", "weighted"):
            raise QueryError(f"fuse method is 'rrf' or 'weighted', got {method!r}")
        self._fuse = (method, _count(k, "fuse k"))
        return self

    def select(self, *tensors: str) -> Search:
        self._select = tensors
        return self

    def limit(self, n: int | None) -> Search:
        self._limit = None if n is None else _count(n, "limit")
        return self

    def offset(self, n: int) -> Search:
        self._offset = _count(n, "offset")
        return self

    def to_query(self) -> Query:
        where: Expr | None = None
        if self._where:
            where = self._where[0] if len(self._where) == 1 else And(tuple(self._where))
        order: tuple[OrderItem, ...] = ()
        if len(self._scores) == 1:
            s = self._scores[0][0]
            order = (OrderItem(s, not (isinstance(s, VectorScore) and s.metric == "l2")),)
        elif self._scores:
            method, k = self._fuse
            order = (OrderItem(Fuse(tuple(s for s, _ in self._scores),
                                    tuple(w for _, w in self._scores), k, method), True),)
        select = tuple(SelectItem(Col(t)) for t in self._select)
        return Query(select, where, order, self._limit, self._offset, dict(self._params))

    def _snapshot(self) -> Snapshot:
        return self._at() if callable(self._at) else self._at

    def run(self) -> View:
        from plane.query._view import View

        out = run_query(self._snapshot(), self.to_query(), "")
        assert isinstance(out, View)  # a Search never groups
        return out

    def count(self) -> int:
        """The number of rows the filters keep (``SELECT COUNT(*) WHERE ...``; the limit and
        offset do not apply)."""
        from plane.query._aggregate import run_aggregate

        if self._scores:
            raise QueryError("count() counts the rows the filters keep; a ranking (nearest / "
                             "match) orders rows, it keeps them all: count before adding it, "
                             "or len(search.run()) for the ranked rows")
        q = self.to_query()
        q = Query((SelectItem(Agg("count")),), q.where, params=q.params)
        return run_aggregate(self._snapshot(), q).count

    def __repr__(self) -> str:
        return (f"Search({self._snapshot().url}, {len(self._where)} filter(s), {len(self._scores)} "
                f"ranking(s), limit={self._limit}, offset={self._offset}); .run() or .explain()")

    def explain(self) -> str:
        return explain_query(self._snapshot(), self.to_query())


def _count(n: Any, what: str) -> int:
    """`n` as a non-negative int (a QueryError naming `what` otherwise)."""
    if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 0:
        raise QueryError(f"{what} must be an integer >= 0, got {n!r}")
    return int(n)


def _columns(snap: Snapshot, q: Query) -> tuple[list[str] | None, str]:
    cols: list[str] = []
    score_name = "score"
    for it in q.select:
        e = it.expr
        if isinstance(e, Col) and e.name == "*":
            return None, score_name
        if isinstance(e, Col):
            if e.name not in snap:
                raise QueryError(f"SELECT {e.name}: no such tensor; tensors: "
                                 f"{', '.join(snap.tensor_names)}")
            cols.append(e.name)
        elif isinstance(e, VectorScore | Bm25 | Fuse):
            score_name = it.alias or "score"
    return (cols or None), score_name


def run_query(snap: Snapshot, q: Query, text: str, prepared: bool = True
              ) -> View | AggregateResult:
    """The result of `q` on `snap`: a View of rows, or the groups of a grouped query."""
    from plane.query._exec import execute
    from plane.query._prepared import run_prepared
    from plane.query._view import View

    if q.grouped:
        from plane.query._aggregate import run_aggregate

        return run_aggregate(snap, q, text)
    if prepared:  # a pure top-k vector query: planned once per dataset state
        try:
            hash(q)
        except TypeError:  # an unhashable literal in the query: no prepared path
            pass
        else:
            view = run_prepared(snap, ("query", q), lambda: q, q.params, text)
            if view is not None:
                return view
    cols, score_name = _columns(snap, q)
    pos, scores, _ = execute(snap, q)
    return View(snap, pos, scores, cols, text, score_name)


def explain_query(snap: Snapshot, q: Query) -> str:
    from plane.query._exec import execute

    if q.grouped:
        from plane.query._aggregate import run_aggregate

        return run_aggregate(snap, q).plan
    _, _, plan = execute(snap, q)
    return str(plan)
