"""Hybrid query: SQL and a builder over vector, scalar and full-text indexes, one planner.

Only light names are imported eagerly; numpy-heavy parts (faiss, the parser) load on use.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import QueryError
from plane.query._builder import Search
from plane.query._groups import AggregateResult
from plane.query._indexes import IndexInfo, list_indexes
from plane.query._view import View, list_views, load_view

if TYPE_CHECKING:
    from plane.core._snapshot import Snapshot

__all__ = ["Search", "View", "AggregateResult", "IndexInfo", "load_view", "list_views",
           "list_indexes", "run_sql", "explain_sql", "parse"]


def parse(sql: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
    from plane.query._parse import parse as _parse

    return _parse(sql, params, **kw)


_PARSED: OrderedDict[Any, Any] = OrderedDict()


def _key(sql: str, params: dict[str, Any], tensors: tuple[str, ...]) -> Any:
    scalars = tuple(sorted((k, repr(v.item() if isinstance(v, np.generic) else v))
                           for k, v in params.items()
                           if v is None or isinstance(v, bool | int | float | str | np.generic)))
    return (sql, scalars, tuple(sorted(params)), tensors)


def _parse_cached(sql: str, params: Mapping[str, Any] | None, tensors: list[str],
                  key: Any = None) -> Any:
    """Parsing costs ~1 ms: reuse the AST of a query text run again with new vectors (scalar
    parameter values are part of the key: LIMIT $n resolves at parse time)."""
    import dataclasses

    ps = dict(params or {})
    key = key or _key(sql, ps, tuple(tensors))
    q = _PARSED.get(key)
    if q is None:
        q = parse(sql, ps, tensors=tensors)
        _PARSED[key] = q
        if len(_PARSED) > 256:
            _PARSED.popitem(last=False)
    return dataclasses.replace(q, params=ps)


def _params(params: Any) -> dict[str, Any]:
    """`params` as a dict of name -> value (a QueryError unless a mapping with str names)."""
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise QueryError(f"params must be a mapping of name -> value, got "
                         f"{type(params).__name__}; pass e.g. params={{'q': vector}}")
    bad = next((k for k in params if not isinstance(k, str)), None)
    if bad is not None:
        raise QueryError(f"params names are strings, got {bad!r} ({type(bad).__name__}); "
                         f"write params={{{str(bad)!r}: ...}} for ${bad}")
    return dict(params)


def run_sql(snap: Snapshot, sql: str, params: Mapping[str, Any] | None = None
            ) -> View | AggregateResult:
    """The rows of version `snap` that query `sql` selects (the groups of a grouped
    query: COUNT / GROUP BY)."""
    from plane.query._builder import run_query
    from plane.query._prepared import run_prepared

    ps = _params(params)
    tensors = snap.tensor_names
    key = _key(sql, ps, tensors)
    view = run_prepared(snap, key, lambda: _parse_cached(sql, ps, list(tensors), key), ps,
                        sql)
    if view is not None:
        return view
    return run_query(snap, _parse_cached(sql, ps, list(tensors), key), sql, prepared=False)


def explain_sql(snap: Snapshot, sql: str | Search, params: Mapping[str, Any] | None = None
                ) -> str:
    """The plan query `sql` (or a Search) runs on version `snap`."""
    from plane.query._builder import explain_query

    if isinstance(sql, Search):
        return sql.explain()
    return explain_query(snap, parse(sql, _params(params), tensors=list(snap.tensor_names)))
