"""Row ids back to rows: the logical positions of stable row ids in one version."""

from __future__ import annotations

from typing import Any

import numpy as np

from plane._errors import InvalidArgumentError, RowNotFoundError
from plane.core._snapshot import Snapshot

__all__ = ["positions_of"]

_KEY = "row_id_runs"
_SHOW = 5


def positions_of(snap: Snapshot, row_ids: Any) -> np.ndarray:
    """Logical positions of `row_ids` in `snap`, in the given order (repeats allowed).

    One binary search per id over the row-id runs (sorted once per Snapshot, kept in its
    `cache`) and one over the deleted rows. Ids that are not rows of this version (deleted,
    or never in it) raise RowNotFoundError naming a few of them; nothing else happens."""
    ids = _as_ids(row_ids)
    if not ids.shape[0]:
        return np.zeros(0, np.int64)
    runs = snap.cache.get(_KEY)
    if runs is None:
        runs = snap.cache[_KEY] = snap.state.row_ids.sorted_runs()
    starts, lengths, first = runs
    run = np.searchsorted(starts, ids, side="right") - 1
    ok = run >= 0
    at = np.maximum(run, 0)
    off = ids - starts[at] if starts.shape[0] else np.zeros_like(ids)
    ok &= off < (lengths[at] if starts.shape[0] else 0)
    phys = np.where(ok, (first[at] if starts.shape[0] else 0) + off, 0)
    deleted = snap.state.deleted
    if deleted.shape[0]:
        k = np.searchsorted(deleted, phys)
        ok &= ~((k < deleted.shape[0]) & (deleted[np.minimum(k, deleted.shape[0] - 1)] == phys))
        phys = phys - k
    if not ok.all():
        missing = list(dict.fromkeys(ids[~ok].tolist()))
        shown = ", ".join(map(str, missing[:_SHOW])) + (" ..." if len(missing) > _SHOW else "")
        raise RowNotFoundError(
            f"{len(missing)} row id(s) are not rows of {snap.url} at this version: {shown} "
            "(deleted, or never in this dataset or branch); take ids from ds.row_ids, a diff, "
            "a merge result or a query of this version")
    out: np.ndarray = phys.astype(np.int64)
    return out


def _as_ids(row_ids: Any) -> np.ndarray:
    arr = np.asarray(row_ids)
    if arr.ndim == 0 and arr.dtype.kind in "iu":
        arr = arr.reshape(1)
    if arr.size == 0:
        return np.zeros(0, np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise InvalidArgumentError(f"row ids must be a 1-d sequence of integers (e.g. ds.row_ids"
                               f"[:3] or diff.rows_added), got {arr.dtype} with shape "
                               f"{arr.shape}")
    if arr.dtype.kind == "u" and arr.size and int(arr.max()) >= 1 << 63:
        raise InvalidArgumentError(f"row id {int(arr.max())} is out of range: row ids are int64")
    return arr.astype(np.int64)
