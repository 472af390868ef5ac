"""Nulls: which samples of a tensor have no value, and how a None is written.

A tensor's validity is the sorted set of physical rows that are null (`TensorPart.nulls`).
Every null row still has an empty sample stored in the chunks (what readers that ignore
validity see); the set is the one authority on "is null". A None written to any htype
stores that empty sample and marks the row null; a value written over a null row clears it.
"""

from __future__ import annotations

import functools
import operator
import re
from typing import Any

import numpy as np

from plane._errors import SampleError
from plane.core._state import NO_ROWS
from plane.format._codecs import Block, EncodedBytes, encode_batch
from plane.format._meta import TensorMeta

__all__ = ["none_at", "encode_nullable", "null_sample", "is_in", "set_rows", "with_nulls",
           "cells"]


def none_at(values: Any) -> np.ndarray:
    """Indices of the None values of a column (none for numeric arrays and encoded bytes)."""
    if isinstance(values, np.ndarray):
        if values.dtype != object or not values.shape[0]:
            return NO_ROWS
        values = values.tolist() if values.ndim == 1 else list(values)
    elif isinstance(values, EncodedBytes) or not isinstance(values, list | tuple):
        return NO_ROWS
    if not any(map(_is_none, values)):  # C-level scan: the common case costs little
        return NO_ROWS
    return np.asarray([i for i, v in enumerate(values) if v is None], np.int64)


_is_none = functools.partial(operator.is_, None)


def null_sample(meta: TensorMeta) -> tuple[bytes, tuple[int, ...]] | None:
    """(bytes, shape) of the empty sample stored for a null row, or None when the tensor has
    no layout yet (a numeric tensor before its first value: no dtype or number of dims)."""
    if meta.kind != "array":
        return b"", (0,)
    if meta.sample_compression:
        return b"", (0,) * (meta.ndim or 3)
    if meta.dtype is None or meta.ndim is None:
        return None
    shape: tuple[int, ...]
    if meta.fixed_shape is not None:
        shape = meta.fixed_shape
    elif meta.htype == "embedding" and meta.vector_width is not None and meta.ndim == 1:
        shape = (meta.vector_width,)  # stacked reads stay one array (masked at nulls)
    elif meta.shape is not None:
        shape = tuple(0 if s is None else int(s) for s in meta.shape)
    else:
        shape = (0,) * meta.ndim
    return np.zeros(shape, meta.np_dtype).tobytes(), shape


def encode_nullable(meta: TensorMeta, values: Any, first_row: int
                    ) -> tuple[Block | None, TensorMeta, np.ndarray]:
    """`encode_batch` that takes None for any htype: (block, meta, indices of the nulls).
    The values are validated and the meta learned without the Nones; each None gets the
    tensor's empty sample. Block None: every value is None and the tensor has no layout yet
    (the rows are appended as fill)."""
    nulls = none_at(values)
    if not nulls.shape[0]:
        whole, meta = encode_batch(meta, values, first_row)
        return whole, meta, nulls
    n = len(values)
    keep = np.ones(n, bool)
    keep[nulls] = False
    have = np.flatnonzero(keep)
    present = [values[int(i)] for i in have]
    block: Block | None = None
    if present:
        try:
            block, meta = encode_batch(meta, present, first_row)
        except SampleError as e:  # name the row of the column, not of the non-null values
            msg = re.sub(r"at row (\d+)",
                         lambda m: f"at row {first_row + int(have[int(m.group(1)) - first_row])}",
                         str(e))
            raise SampleError(msg) from None
    empty = null_sample(meta)
    if empty is None:
        return None, meta, nulls
    raw, shape = empty
    return _with_nulls(block, have, nulls, raw, shape, n), meta, nulls


def _with_nulls(block: Block | None, have: np.ndarray, nulls: np.ndarray, raw: bytes,
                shape: tuple[int, ...], n: int) -> Block:
    """The block of n samples: `block`'s at `have`, the empty sample at `nulls`."""
    sizes = np.zeros(n, np.int64)
    sizes[nulls] = len(raw)
    shapes = np.zeros((n, len(shape)), np.int64)
    shapes[nulls] = shape
    data = np.zeros(0, np.uint8)
    if block is not None:
        sizes[have] = np.diff(block.offsets)
        shapes[have] = np.asarray(block.shapes, np.int64).reshape(have.shape[0], len(shape))
        data = np.frombuffer(block.data, np.uint8)
    if raw:  # insert the empty sample's bytes where each null goes
        before = np.searchsorted(have, nulls)  # present samples before each null
        at = (block.offsets[before] if block is not None else np.zeros_like(before))
        data = np.insert(data, np.repeat(at, len(raw)),
                         np.tile(np.frombuffer(raw, np.uint8), nulls.shape[0]))
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return Block(memoryview(np.ascontiguousarray(data).data).cast("B"), offsets, shapes)


def is_in(rows: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask: which of `rows` are in the sorted int64 array `sorted_set`."""
    if not sorted_set.shape[0] or not rows.shape[0]:
        return np.zeros(rows.shape[0], bool)
    at = np.searchsorted(sorted_set, rows)
    at_c = np.minimum(at, sorted_set.shape[0] - 1)
    out: np.ndarray = (at < sorted_set.shape[0]) & (sorted_set[at_c] == rows)
    return out


def set_rows(nulls: np.ndarray, rows: np.ndarray, null: np.ndarray | None) -> np.ndarray:
    """`nulls` after writing `rows`: those where `null` is True become null, the others
    (all of them when `null` is None) get a value."""
    if not nulls.shape[0] and (null is None or not null.any()):
        return nulls
    if null is not None and null.any() and rows.shape[0] > 1:
        # a row written twice in one update: its last value wins, as for the values
        rows, last = np.unique(rows[::-1], return_index=True)
        null = null[::-1][last]
    out = np.setdiff1d(nulls, rows, assume_unique=False)
    if null is not None and null.any():
        out = np.union1d(out, rows[null])
    return out.astype(np.int64)


def with_nulls(values: Any, null: np.ndarray | None) -> Any:
    """Values read for some rows, with the null ones (`null`, a row mask) shown as missing: a
    list gets None there; an array becomes a `numpy.ma.MaskedArray` masked on those rows
    (its data holds the stored empty samples). Unchanged when `null` is None."""
    if null is None:
        return values
    if isinstance(values, np.ndarray):
        shape = (-1,) + (1,) * (values.ndim - 1)
        return np.ma.MaskedArray(values, mask=np.broadcast_to(null.reshape(shape),
                                                              values.shape).copy())
    out = list(values)
    for i in np.flatnonzero(null).tolist():
        out[i] = None
    return out


def cells(values: Any) -> list[Any]:
    """A column read with `with_nulls` as one item per row (None for a null row)."""
    if isinstance(values, np.ma.MaskedArray):
        rows: np.ndarray = np.asarray(
            np.ma.getmaskarray(values).reshape(values.shape[0], -1).any(axis=1), bool)
        data = values.data
        return [None if rows[i] else data[i] for i in range(values.shape[0])]
    return list(values)
