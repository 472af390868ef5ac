"""Rows of one tensor that changed between the version an index was built on and the
version a query reads: the index must not answer for them, the query searches them exactly."""

from __future__ import annotations

import numpy as np

from plane.core._snapshot import Snapshot
from plane.version._diff import updated_rows

__all__ = ["changed_rows"]

_NONE = np.zeros(0, np.int64)


def changed_rows(old: Snapshot, new: Snapshot, tensor: str, old_name: str | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(row ids deleted or updated, row ids added or updated) in `tensor` from `old` to
    `new` (a row counts as updated only when its value differs); `old_name`: the tensor's
    name in `old` when it was renamed since."""
    was = old_name or tensor
    ida, idb = old.row_ids, new.row_ids
    added = np.setdiff1d(idb, ida, assume_unique=True)
    deleted = np.setdiff1d(ida, idb, assume_unique=True)
    if tensor not in new:
        return ida if was in old else deleted, _NONE if was in old else added
    if was not in old:  # a new tensor: every row of it is new
        return _NONE, idb
    common, ia, ib = np.intersect1d(ida, idb, assume_unique=True, return_indices=True)
    upd = updated_rows(old, new, tensor, common, old.to_physical(ia.astype(np.int64)),
                       new.to_physical(ib.astype(np.int64)), old_name=was)
    return np.union1d(upd, deleted), np.union1d(upd, added)
