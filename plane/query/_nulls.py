"""SQL nulls in WHERE: a comparison on a null row is unknown (neither true nor false).

A row passes WHERE only when the condition is true, so `x > 0` and `NOT (x > 0)` both leave
out the rows where `x` is null; AND / OR follow SQL's three-valued logic (`unknown OR true` is
true, `unknown AND false` is false). `x IS NULL` is the way to ask for them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from plane.query._ast import (
    And,
    Between,
    Cmp,
    Col,
    Contains,
    In,
    IsNull,
    Like,
    Not,
    Or,
    Shape,
)

__all__ = ["LEAVES", "null_rows", "unknown"]

#: conditions that compare values: unknown on a row where a tensor they read is null
LEAVES = (Cmp, In, Between, Like, Contains, Col)

Mask = Callable[[Any, Any], np.ndarray]


def _operands(e: Any) -> Iterator[Any]:
    if isinstance(e, Cmp):
        yield e.left
        yield e.right
    elif isinstance(e, In):
        yield e.expr
        yield from e.values
    elif isinstance(e, Between):
        yield e.expr
        yield e.low
        yield e.high
    elif isinstance(e, Like):
        yield e.expr
        yield e.pattern
    elif isinstance(e, Contains):
        yield e.col
    elif isinstance(e, Col):
        yield e


def column_nulls(ctx: Any, name: str) -> np.ndarray | None:
    """Null rows of tensor `name` at the context's positions (None: none), cached."""
    cache: dict[str, np.ndarray | None] = ctx.nulls
    if name not in cache:
        snap = ctx.snap
        cache[name] = snap.null_mask(name, ctx.pos) if name in snap and \
            snap.has_nulls(name) else None
    return cache[name]


def null_rows(ctx: Any, e: Any) -> np.ndarray | None:
    """Rows where leaf condition `e` is unknown: a tensor it reads is null (None: none)."""
    out: np.ndarray | None = None
    for x in _operands(e):
        col = x.col if isinstance(x, Shape) else x
        if isinstance(col, Col):
            m = column_nulls(ctx, col.name)
            if m is not None:
                out = m.copy() if out is None else out | m
    return out


def _names(e: Any) -> Iterator[str]:
    if isinstance(e, And | Or):
        for it in e.items:
            yield from _names(it)
    elif isinstance(e, Not):
        yield from _names(e.item)
    else:
        for x in _operands(e):
            col = x.col if isinstance(x, Shape) else x
            if isinstance(col, Col):
                yield col.name


def unknown(ctx: Any, e: Any, where_mask: Mask) -> np.ndarray | None:
    """Rows where condition `e` is unknown (None: none); `where_mask(ctx, e)` gives where a
    condition is true."""
    if not any(n in ctx.snap and ctx.snap.has_nulls(n) for n in _names(e)):
        return None
    if isinstance(e, IsNull):
        return None
    if isinstance(e, Not):
        return unknown(ctx, e.item, where_mask)
    if isinstance(e, And | Or):
        unk = np.zeros(ctx.n, bool)
        decided = np.zeros(ctx.n, bool)  # a false item decides AND, a true one decides OR
        for it in e.items:
            u = unknown(ctx, it, where_mask)
            t = where_mask(ctx, it)
            if u is not None:
                unk |= u
            decided |= t if isinstance(e, Or) else ~t & (~u if u is not None else True)
        out = unk & ~decided
        return out if out.any() else None
    if isinstance(e, LEAVES):
        return null_rows(ctx, e)
    return None
