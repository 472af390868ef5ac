"""A sorted-value ("btree") index of one scalar tensor: every row's value in sorted order with
its row id, so `=`, `IN`, `<`, `<=`, `>`, `>=` and `BETWEEN` are binary searches instead of a
column scan. Built by ``ds.create_index("width", kind="btree")`` on numeric scalars,
class labels and text. Equal values are contiguous, so it also serves as the bitmap index of
a low-cardinality tensor (one run of row ids per value).

Like every index it is bound to the commit it was built on: a query on a later state takes
the rows the index answers for, drops the rows deleted or changed since, and evaluates the
predicate directly on the rows changed or added since.
"""

from __future__ import annotations

import bisect
import io
import itertools
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import QueryError

if TYPE_CHECKING:
    from plane.core._snapshot import Snapshot

__all__ = ["SortedIndex", "build_sorted"]


class SortedIndex:
    """Sorted values (a numeric array, or a list of str for text) and their row ids."""

    def __init__(self, values: Any, ids: np.ndarray, pos: np.ndarray) -> None:
        self.values = values
        self.ids = np.asarray(ids, np.int64)
        self.pos = np.asarray(pos, np.int64)  # row positions in the indexed state
        self.text = isinstance(values, list)
        # NaN sorts last and satisfies no comparison: open-ended ranges stop before it
        self.end = self.ids.shape[0] if self.text or values.dtype.kind != "f" else \
            int(np.searchsorted(values, np.inf, "right"))

    def lookup(self, op: str, v: Any) -> np.ndarray | None:
        """Indexes (into `ids` / `pos`) of the rows whose value satisfies `value op v`
        (None: `v` is not comparable)."""
        ab = self._bounds(op, v)
        return None if ab is None else np.arange(ab[0], max(ab), dtype=np.int64)

    def between(self, low: Any, high: Any) -> np.ndarray | None:
        lo, hi = self._bounds(">=", low), self._bounds("<=", high)
        if lo is None or hi is None:
            return None
        a, b = max(lo[0], hi[0]), min(lo[1], hi[1])  # the two ranges' intersection
        return np.arange(a, max(a, b), dtype=np.int64)

    def _bounds(self, op: str, v: Any) -> tuple[int, int] | None:
        if self.text != isinstance(v, str) or isinstance(v, bool) or v is None:
            return None
        if not self.text and not isinstance(v, int | float | np.integer | np.floating):
            return None
        if isinstance(v, float | np.floating) and np.isnan(v):
            return 0, 0  # NaN satisfies no comparison
        lo, hi = {"=": ("l", "r"), "<": (None, "l"), "<=": (None, "r"), ">": ("r", None),
                  ">=": ("l", None)}[op]
        a = 0 if lo is None else self._search(v, lo)
        b = self.end if hi is None else self._search(v, hi)
        return a, b

    def _search(self, v: Any, side: str) -> int:
        """The first row (in value order) with value >= v (side "l") or > v (side "r"),
        compared exactly as a column scan compares (numpy's promotion rules for numbers,
        Python's for text): a bisection with the scan's own comparison, not searchsorted,
        which would also copy the whole column to a common dtype on every call."""
        if self.text:
            f = bisect.bisect_left if side == "l" else bisect.bisect_right
            return f(self.values, v)
        before = np.less if side == "l" else np.less_equal
        vals, lo, hi = self.values, 0, self.end
        while lo < hi:
            mid = (lo + hi) // 2
            if before(vals[mid], v):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        if self.text:
            raw = [s.encode() for s in self.values]
            offsets = np.zeros(len(raw) + 1, np.int64)
            offsets[1:] = np.cumsum([len(b) for b in raw])
            np.savez(buf, ids=self.ids, pos=self.pos, offsets=offsets,
                     data=np.frombuffer(b"".join(raw), np.uint8))
        else:
            np.savez(buf, ids=self.ids, pos=self.pos, values=self.values)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> SortedIndex:
        z = np.load(io.BytesIO(data), allow_pickle=False)
        if "offsets" in z.files:
            off, raw = z["offsets"].tolist(), z["data"].tobytes()
            values: Any = [raw[a:b].decode() for a, b in itertools.pairwise(off)]
        else:
            values = z["values"]
        return cls(values, z["ids"], z["pos"])


def build_sorted(snap: Snapshot, tensor: str) -> SortedIndex:
    """The sorted-value index of `tensor` over version `snap`."""
    meta = snap.meta(tensor)
    n = len(snap)
    pos = np.arange(n, dtype=np.int64)
    ids = snap.row_ids
    if meta.kind == "text":
        texts = snap.read(tensor, pos, True, True)
        order = np.asarray(sorted(range(n), key=texts.__getitem__), np.int64)
        return SortedIndex([texts[i] for i in order.tolist()], ids[order], order)
    from plane.query._stats import is_scalar

    if not is_scalar(snap, tensor) or meta.np_dtype.kind not in "iuf":
        raise QueryError(f"a btree index needs a scalar numeric, class_label or text tensor; "
                         f"{tensor!r} is {meta.htype} ({meta.dtype}, shape {meta.shape})")
    vals = snap.read(tensor, pos, True, False)
    if isinstance(vals, list):
        raise QueryError(f"a btree index needs one value per row; {tensor!r} has samples of "
                         "different shapes")
    vals = np.asarray(vals).reshape(n)
    by_value = np.argsort(vals, kind="stable")
    return SortedIndex(vals[by_value], ids[by_value], by_value)
