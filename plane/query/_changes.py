"""Rows of one tensor that changed between the version an index was built on and the
version a query reads: the index must not answer for them, the query searches them exactly."""

from __future__ import annotations

from typing import Any

import numpy as np

from plane.core._snapshot import Snapshot

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
    upd = _updated(old, new, tensor, common, ia.astype(np.int64), ib.astype(np.int64))
    return np.union1d(upd, deleted), np.union1d(upd, added)


def _updated(old: Snapshot, new: Snapshot, tensor: str, common: np.ndarray, ia: np.ndarray,
             ib: np.ndarray) -> np.ndarray:
    """Row ids among `common` (logical rows ia in old, ib in new) whose value differs."""
    codes: dict[str, int] = {}
    ca, la = _sources(old, tensor, old.to_physical(ia), codes)
    cb, lb = _sources(new, tensor, new.to_physical(ib), codes)
    cand = np.flatnonzero((ca != cb) | (la != lb))  # same object and slot: same value
    if not cand.shape[0]:
        return _NONE
    va = old.read(tensor, ia[cand], not old.meta(tensor).sample_compression, True, False)
    vb = new.read(tensor, ib[cand], not new.meta(tensor).sample_compression, True, False)
    diff = [i for i, x, y in zip(cand, va, vb) if not _equal(x, y)]
    return np.sort(common[np.asarray(diff, np.int64)]) if diff else _NONE


def _sources(snap: Snapshot, tensor: str, phys: np.ndarray, codes: dict[str, int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Where each physical row's value lives: (object code, slot)."""
    idx = snap.index(tensor)
    first = [codes.setdefault(idx.keys[int(idx.key_ptr[e])], len(codes))
             if idx.key_ptr[e + 1] > idx.key_ptr[e] else -1 for e in range(idx.num_entries)]
    ent, local = idx.locate(phys)
    code = np.asarray(first, np.int64)[ent] if ent.shape[0] else np.zeros(0, np.int64)
    local = np.where(code < 0, 0, local)
    pm = snap.patch_map(tensor)
    if pm is not None:
        sel, at = pm.hits(phys)
        pcodes = np.asarray([codes.setdefault(k, len(codes)) for k in pm.keys], np.int64)
        code[sel] = pcodes[pm.which[at]]
        local[sel] = pm.local[at]
    return code, local


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b))
    return bool(a == b)
