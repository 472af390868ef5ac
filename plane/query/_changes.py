"""Rows of one tensor that changed between the version an index was built on and the
version a query reads: the index must not answer for them, the query searches them exactly."""

from __future__ import annotations

import numpy as np

from plane.core._snapshot import Snapshot
from plane.version._diff import updated_rows

__all__ = ["changed_rows"]

_NONE = np.zeros(0, np.int64)


def changed_rows(old: Snapshot, new: Snapshot, tensor: str) -> tuple[np.ndarray, np.ndarray]:
    """(row ids deleted or updated, row ids added or updated) in `tensor` from `old` to
    `new` (a row counts as updated only when its value differs)."""
    ida, idb = old.row_ids, new.row_ids
    added = np.setdiff1d(idb, ida, assume_unique=True)
    deleted = np.setdiff1d(ida, idb, assume_unique=True)
    if tensor not in new:
        return ida if tensor in old else deleted, _NONE if tensor in old else added
    if tensor not in old:  # a new tensor: every row of it is new
        return _NONE, idb
    common, ia, ib = np.intersect1d(ida, idb, assume_unique=True, return_indices=True)
    upd = updated_rows(old, new, tensor, common, old.to_physical(ia.astype(np.int64)),
                       new.to_physical(ib.astype(np.int64)))
    return np.union1d(upd, deleted), np.union1d(upd, added)
