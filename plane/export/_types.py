"""Tensor schemas -> Arrow types: the reverse of the ingest rules (plane/ingest/_infer.py).

| tensor | Arrow type |
|---|---|
| generic / embedding scalar of dtype T (shape ``()``) | T (int8..uint64, float16/32/64, bool) |
| fixed dimension d | fixed_size_list<...>[d] |
| variable dimension (``None``, or a shape never declared) | list<...> |
| embedding of a fixed width d (``shape=(d,)`` or its first vector) | fixed_size_list<T>[d] |
| class_label with class_names | dictionary<int32, string> (the names, ids as indices) |
| class_label without names | int64 |
| image / video / audio with a sample_compression | binary: the encoded file, as stored |
| text, link[...] (the URIs) | string |
| json | string (the JSON text) |
| binary | binary |

Each field carries the tensor's htype in its metadata (``tensorplane.htype``).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from plane.format._meta import TensorMeta

__all__ = ["HTYPE_KEY", "ROW_ID", "arrow_type", "dims_of", "field_of", "leaf_type"]

#: the field metadata key that records a column's tensor htype
HTYPE_KEY = b"tensorplane.htype"
#: the name of the optional stable-row-id column (tensor names cannot start with "_")
ROW_ID = "_row_id"


def dims_of(m: TensorMeta, decode: bool = False) -> tuple[int | None, ...]:
    """The dimensions of one sample of `m` as exported (None: varies per row)."""
    if m.kind != "array" or (m.sample_compression and not decode):
        return ()
    if m.shape is not None:
        return m.shape
    if m.htype == "embedding":
        return (m.width,) if m.width else (None,)
    return (None,) * (m.ndim or 0)


def leaf_type(m: TensorMeta, decode: bool = False) -> pa.DataType:
    """The Arrow type of one value (the innermost element) of tensor `m`."""
    if m.kind in ("text", "json"):
        return pa.string()
    if m.kind == "bytes" or (m.sample_compression and not decode):
        return pa.binary()
    if m.htype == "class_label":
        return pa.dictionary(pa.int32(), pa.string()) if m.class_names else pa.int64()
    if m.dtype is None:  # a tensor never written to and declared without a dtype
        return pa.null()
    return pa.from_numpy_dtype(np.dtype(m.dtype))


def arrow_type(m: TensorMeta, decode: bool = False) -> pa.DataType:
    """The Arrow type tensor `m` exports as (`decode`: media as decoded arrays)."""
    t = leaf_type(m, decode)
    for d in reversed(dims_of(m, decode)):
        t = pa.list_(t) if d is None else pa.list_(t, d)
    return t


def field_of(m: TensorMeta, decode: bool = False) -> pa.Field:
    """The Arrow field of tensor `m`: its name, type and htype (metadata)."""
    return pa.field(m.name, arrow_type(m, decode), nullable=True,
                    metadata={HTYPE_KEY: m.htype.encode()})
