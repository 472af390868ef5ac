"""The result of a grouped query (COUNT / GROUP BY): a small table of groups, not a row view.

Values read as data are ids (``res["labels"]`` is the class ids, as ``view["labels"]``);
rendered values are names (``res.rows()``, ``res.to_dict()``, iterating, printing), as for
views; ``res.to_arrow()`` keeps both: a class label column is dictionary-encoded (ids
indexing the class names), the type Parquet ingest reads back as a class label.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import MissingDependencyError, QueryError

if TYPE_CHECKING:
    from plane.core._snapshot import Snapshot

__all__ = ["AggregateResult"]

#: groups printed by ``str(result)`` (``rows()`` has them all)
SHOWN = 50


class AggregateResult:
    """Groups of a grouped query at one version: `columns` in SELECT order, one row per group.

    ``len(res)`` groups; ``res["n"]`` a column (ndarray, or a list where there are strings or
    NULLs; class ids, not names); ``res.rows()`` / iterating / ``res.to_dict()`` with class
    names; ``res.count`` (or ``int(res)``) the number a bare ``SELECT COUNT(*)`` returns.
    """

    def __init__(self, snapshot: Snapshot, values: dict[str, Any],
                 class_names: dict[str, tuple[str, ...]], query: str = "", plan: str = "",
                 grouped: bool = True, counts: tuple[str, ...] = ()) -> None:
        self.snapshot = snapshot
        self.columns = list(values)
        self._values = values
        self._names = class_names
        self.query = query
        self.plan = plan  # what ran, as ds.explain prints it
        self._grouped = grouped
        self._counts = counts  # the COUNT columns

    @property
    def commit_id(self) -> str | None:
        """The commit the counted rows come from (None: an uncommitted state)."""
        return self.snapshot.commit_id

    def __len__(self) -> int:
        first = self._values[self.columns[0]] if self.columns else []
        return len(first)

    def __getitem__(self, column: str) -> Any:
        """The values of result column `column`, one per group (class ids, not names)."""
        if column not in self._values:
            raise QueryError(f"no result column {column!r}; columns: "
                             f"{', '.join(self.columns)}")
        return self._values[column]

    @property
    def count(self) -> int:
        """The COUNT of an ungrouped query (``SELECT COUNT(*) WHERE ...``)."""
        if self._grouped or len(self) != 1 or len(self._counts) != 1:
            raise QueryError(f"res.count is the value of the one COUNT of a query without "
                             f"GROUP BY; this result has {len(self)} row(s) of "
                             f"{', '.join(self.columns)}: read res.rows() or res[column]")
        return int(self._values[self._counts[0]][0])

    def __int__(self) -> int:
        return self.count

    def _shown(self, column: str) -> list[Any]:
        """Column `column` as Python values, class ids as their names."""
        v = self._values[column]
        items = v.tolist() if isinstance(v, np.ndarray) else list(v)
        names = self._names.get(column)
        if names:
            items = [names[int(x)] if x is not None and 0 <= int(x) < len(names) else x
                     for x in items]
        return items

    def to_dict(self) -> dict[str, list[Any]]:
        """{column: values per group} with class names (Python values)."""
        return {c: self._shown(c) for c in self.columns}

    def rows(self) -> list[dict[str, Any]]:
        """One dict per group, columns in SELECT order, class names for class labels."""
        cols = self.to_dict()
        return [{c: cols[c][i] for c in self.columns} for i in range(len(self))]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())

    def to_arrow(self) -> Any:
        """A `pyarrow.Table`: class labels dictionary-encoded (ids into the class names)."""
        try:
            import pyarrow as pa
        except ImportError as e:
            raise MissingDependencyError(f"to_arrow() needs pyarrow ({e}): pip install "
                                         "pyarrow") from None
        arrays = {}
        for c in self.columns:
            v = self._values[c]
            names = self._names.get(c)
            if names:
                ids = [None if x is None else int(x) for x in
                       (v.tolist() if isinstance(v, np.ndarray) else v)]
                arrays[c] = pa.DictionaryArray.from_arrays(pa.array(ids, pa.int32()),
                                                           pa.array(list(names), pa.string()))
            else:
                arrays[c] = pa.array(v.tolist() if isinstance(v, np.ndarray) else v)
        return pa.table(arrays)

    def to_pandas(self) -> Any:
        """A pandas DataFrame (via `to_arrow`; class labels become categoricals)."""
        return self.to_arrow().to_pandas()

    def __repr__(self) -> str:
        return (f"AggregateResult({len(self)} row(s) of {', '.join(self.columns)} at "
                f"{(self.commit_id or 'uncommitted')[:12]})")

    def __str__(self) -> str:
        cols = self.to_dict()

        def cell(v: Any) -> str:
            s = f"{v:.6g}" if isinstance(v, float) else "NULL" if v is None else str(v)
            return s if len(s) <= 40 else s[:37] + "..."
        shown = min(len(self), SHOWN)
        table = [[cell(cols[c][i]) for c in self.columns] for i in range(shown)]
        w = [max([len(c), *(len(t[i]) for t in table)]) for i, c in enumerate(self.columns)]
        lines = [" | ".join(c.ljust(w[i]) for i, c in enumerate(self.columns)),
                 "-+-".join("-" * x for x in w)]
        lines += [" | ".join(t[i].ljust(w[i]) for i in range(len(self.columns)))
                  for t in table]
        if len(self) > shown:
            lines.append(f"... {len(self) - shown} more groups (res.rows() has them all)")
        if not len(self):
            lines.append("(no groups)")
        return "\n".join(lines)
