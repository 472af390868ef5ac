"""Hybrid query: SQL and a builder over vector, scalar and full-text indexes, one planner.

Only light names are imported eagerly; numpy-heavy parts (faiss, the parser) load on use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from plane.query._builder import Search
from plane.query._indexes import IndexInfo, list_indexes
from plane.query._view import View, load_view

if TYPE_CHECKING:
    from plane.dataset._dataset import Dataset

__all__ = ["Search", "View", "IndexInfo", "load_view", "list_indexes", "run_sql",
           "explain_sql", "parse"]


def parse(sql: str, params: Mapping[str, Any] | None = None, **kw: Any) -> Any:
    from plane.query._parse import parse as _parse

    return _parse(sql, params, **kw)


def run_sql(ds: Dataset, sql: str, params: Mapping[str, Any] | None = None) -> View:
    from plane.query._builder import run_query

    return run_query(ds, parse(sql, params, tensors=list(ds.tensors)), sql)


def explain_sql(ds: Dataset, sql: str | Search, params: Mapping[str, Any] | None = None
                ) -> str:
    from plane.query._builder import explain_query

    if isinstance(sql, Search):
        return sql.explain()
    return explain_query(ds, parse(sql, params, tensors=list(ds.tensors)))
