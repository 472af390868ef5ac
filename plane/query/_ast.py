"""The logical form of a query: what the SQL text and the builder both produce.

Everything here is a frozen dataclass with no behaviour; the planner reads it. Expressions:

* ``Col(name, path)``: a tensor; `path` indexes into json samples (``meta.a.b`` -> ("a", "b")).
* ``RowId()``: the stable row id (``ROW_ID`` or ``id`` when no tensor is named ``id``).
* ``Lit(value)``: a number, string, bool or None; ``Param(name)``: a bound ``$name`` / ``:name``.
* ``Shape(col, dim)``: ``SHAPE(col)[dim]``, the sample's size along `dim`.
* ``Cmp(op, left, right)`` with op in = != < <= > >=; ``And``/``Or``/``Not``;
  ``In(expr, values, negated)``; ``Between(expr, low, high, negated)``;
  ``IsNull(expr, negated)``; ``Like(expr, pattern, negated)``.
* ``Contains(col, text)``: every term of `text` occurs in the text sample (a quoted phrase
  in `text` must occur as a phrase).
* Scores (in SELECT and ORDER BY): ``VectorScore(metric, col, query)`` with metric one of
  "cosine" (COSINE_SIMILARITY, higher is closer), "l2" (L2_DISTANCE, lower is closer),
  "ip" (INNER_PRODUCT, higher is closer); ``Bm25(col, text)``; ``Fuse(parts, weights, k,
  method)`` — reciprocal rank fusion (``RRF(a, b, ...)``) or a weighted score sum
  (``WEIGHTED(a, w1, b, w2)``).
* Aggregates (SELECT, HAVING and ORDER BY of a grouped query): ``Agg(func, col)`` with func
  one of ``AGG_FUNCS`` (``count`` with col None is ``COUNT(*)``). A query with an Agg in
  SELECT or a GROUP BY returns groups, not rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

__all__ = ["Col", "RowId", "Lit", "Param", "Shape", "Cmp", "And", "Or", "Not", "In", "Between",
           "IsNull", "Like", "Contains", "VectorScore", "Bm25", "Fuse", "Expr", "Score",
           "SelectItem", "OrderItem", "Query", "CMP_OPS", "METRICS", "Agg", "AGG_FUNCS"]

CMP_OPS = ("=", "!=", "<", "<=", ">", ">=")
METRICS = ("cosine", "l2", "ip")
AGG_FUNCS = ("count", "sum", "avg", "min", "max")


@dataclass(frozen=True)
class Col:
    name: str
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowId:
    pass


@dataclass(frozen=True)
class Lit:
    value: Any


@dataclass(frozen=True)
class Param:
    name: str


@dataclass(frozen=True)
class Shape:
    col: Col
    dim: int


@dataclass(frozen=True)
class Cmp:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class And:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Not:
    item: Expr


@dataclass(frozen=True)
class In:
    expr: Expr
    values: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between:
    expr: Expr
    low: Expr
    high: Expr
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    expr: Expr
    negated: bool = False


@dataclass(frozen=True)
class Like:
    expr: Expr
    pattern: Expr
    negated: bool = False


@dataclass(frozen=True)
class Contains:
    col: Col
    text: Expr


@dataclass(frozen=True)
class VectorScore:
    metric: str
    col: Col
    query: Expr  # Param or Lit(list of floats)


@dataclass(frozen=True)
class Bm25:
    col: Col
    text: Expr


@dataclass(frozen=True)
class Fuse:
    parts: tuple[Score, ...]
    weights: tuple[float, ...] = ()
    k: int = 60
    method: str = "rrf"  # "rrf" | "weighted"


@dataclass(frozen=True)
class Agg:
    func: str  # one of AGG_FUNCS
    col: Col | None = None  # None: COUNT(*)


Expr = Union[Col, RowId, Lit, Param, Shape, Cmp, And, Or, Not, In, Between, IsNull, Like,
             Contains, "VectorScore", "Bm25", "Fuse", Agg]
Score = Union[VectorScore, Bm25, Fuse]  # noqa: UP007


@dataclass(frozen=True)
class SelectItem:
    expr: Expr  # Col, RowId, a Score, an Agg, or Col("*") for every tensor
    alias: str | None = None


@dataclass(frozen=True)
class OrderItem:
    expr: Expr  # a Score, Col, RowId or Shape (an Agg or a group key in a grouped query)
    desc: bool = False


@dataclass(frozen=True)
class Query:
    select: tuple[SelectItem, ...] = ()  # empty: every tensor
    where: Expr | None = None
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int = 0
    params: dict[str, Any] = field(default_factory=dict, compare=False)
    group_by: tuple[Col, ...] = ()
    having: Expr | None = None

    @property
    def grouped(self) -> bool:
        """True when the query returns groups (an aggregate in SELECT, or a GROUP BY)."""
        return bool(self.group_by) or any(isinstance(s.expr, Agg) for s in self.select)
