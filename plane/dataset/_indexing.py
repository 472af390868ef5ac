"""Normalise any row index (int, slice, list, array, bool mask) once, to positions."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["normalize_index"]


def normalize_index(key: Any, length: int) -> tuple[np.ndarray, bool]:
    """Return (positions as int64 array, scalar?) for `key` over `length` rows."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        i = int(key)
        if not -length <= i < length:
            raise IndexError(f"row {i} is out of range for {length} rows")
        return np.array([i % length if length else i], np.int64), True
    if isinstance(key, slice):
        return np.arange(*key.indices(length), dtype=np.int64), False
    if isinstance(key, range):
        key = np.asarray(key, np.int64)
    if isinstance(key, (list, tuple, np.ndarray)):
        arr = np.asarray(key)
        if arr.size == 0:
            return np.zeros(0, np.int64), False
        if arr.dtype == bool:
            if arr.shape != (length,):
                raise IndexError(f"boolean mask has shape {arr.shape}, expected ({length},)")
            return np.flatnonzero(arr).astype(np.int64), False
        if arr.dtype.kind not in "iu" or arr.ndim != 1:
            raise IndexError(f"row index must be 1-d integers, got {arr.dtype} {arr.shape}")
        arr = arr.astype(np.int64)
        bad = (arr < -length) | (arr >= length)
        if bad.any():
            raise IndexError(f"row {int(arr[bad][0])} is out of range for {length} rows")
        return np.where(arr < 0, arr + length, arr), False
    raise IndexError(f"cannot index rows with {type(key).__name__}; use an int, slice, list of "
                     "ints, integer array or boolean mask (or a tensor name)")
