"""Arrow types -> tensor schemas, and Arrow columns -> values the tensor codecs take.

The rules (README, "Ingestion"), first match wins; `htypes=` / an existing tensor override:

| Arrow type | tensor |
|---|---|
| dictionary<*, string> | class_label, names from the dictionary (stored as ids) |
| integer named like a label (label, class, target, category, y) | class_label |
| bool, integer, floating, decimal | generic scalar of that dtype (decimal -> float64) |
| fixed_size_list<float>[d] | embedding, shape (d,) |
| fixed_size_list<number>[d] | generic, shape (d,) |
| list<float> | embedding, variable length |
| list<number> (e.g. token ids) | generic, variable length |
| list<list<...number>> | generic, ragged, one dimension per level |
| binary whose first values are JPEG / PNG | image, the original bytes (no re-encode) |
| other binary | binary |
| string | text |
| timestamp, date, time | text (ISO 8601) |
| struct, map, list of non-numbers | json |
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from plane._errors import SchemaError
from plane.format._codecs import EncodedBytes
from plane.format._media import sniff

__all__ = ["TensorSpec", "infer_spec", "column_values"]

_LABEL_NAME = re.compile(r"(^|_)(label|labels|class|target|category|y)($|_)", re.I)


@dataclass(frozen=True)
class TensorSpec:
    """What `create_tensor` needs for one ingested column."""

    htype: str = "generic"
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None
    sample_compression: str | None = None
    class_names: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"htype": self.htype}
        if self.dtype is not None and self.htype not in ("text", "json", "binary"):
            out["dtype"] = self.dtype
        if self.shape is not None:
            out["shape"] = self.shape
        if self.sample_compression is not None:
            out["sample_compression"] = self.sample_compression
        if self.class_names:
            out["class_names"] = self.class_names
        return out


def _numeric(t: pa.DataType) -> bool:
    return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
                or pa.types.is_decimal(t))


def _np_dtype(t: pa.DataType) -> str:
    if pa.types.is_decimal(t):
        return "float64"
    if pa.types.is_boolean(t):
        return "bool"
    return str(np.dtype(t.to_pandas_dtype()))


def _list_depth(t: pa.DataType) -> tuple[int, pa.DataType]:
    depth = 0
    while pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        t = t.value_type
        depth += 1
    return depth, t


def _first_bytes(column: pa.Array | pa.ChunkedArray | None, k: int = 8) -> list[bytes]:
    if column is None:
        return []
    out = []
    for v in column.drop_null()[:k].to_pylist() if len(column) else []:
        out.append(bytes(v))
    return out


def infer_spec(name: str, t: pa.DataType, sample: pa.Array | pa.ChunkedArray | None = None
               ) -> TensorSpec:
    """The tensor for an Arrow column of type `t` (`sample`: its first values, for sniffing)."""
    if pa.types.is_dictionary(t):
        if pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type):
            names: tuple[str, ...] = ()
            if sample is not None and len(sample):
                chunk = sample.chunk(0) if isinstance(sample, pa.ChunkedArray) else sample
                names = tuple(str(x) for x in chunk.dictionary.to_pylist())
            return TensorSpec("class_label", class_names=names)
        return infer_spec(name, t.value_type)
    if pa.types.is_integer(t) and _LABEL_NAME.search(name):
        return TensorSpec("class_label")
    if _numeric(t):
        return TensorSpec("generic", _np_dtype(t), ())
    if pa.types.is_fixed_size_list(t) and _numeric(t.value_type):
        d = t.list_size
        if pa.types.is_floating(t.value_type):
            return TensorSpec("embedding", _np_dtype(t.value_type), (d,))
        return TensorSpec("generic", _np_dtype(t.value_type), (d,))
    depth, leaf = _list_depth(t)
    if depth and _numeric(leaf):
        if depth == 1 and pa.types.is_floating(leaf):
            return TensorSpec("embedding", _np_dtype(leaf))
        return TensorSpec("generic", _np_dtype(leaf), (None,) * depth)
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or \
            pa.types.is_fixed_size_binary(t):
        kinds = {sniff(b) for b in _first_bytes(sample)}
        if len(kinds) == 1 and None not in kinds:
            return TensorSpec("image", sample_compression=kinds.pop())
        return TensorSpec("binary")
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return TensorSpec("text")
    if pa.types.is_temporal(t):
        return TensorSpec("text")  # values become ISO 8601 strings (column_values)
    if pa.types.is_struct(t) or pa.types.is_map(t) or depth:
        return TensorSpec("json")
    if pa.types.is_null(t):
        raise SchemaError(f"column {name!r} is all nulls (Arrow type null): nothing to infer "
                          "a tensor from; drop it from `columns` or give htypes={...}")
    raise SchemaError(f"column {name!r}: no tensor type for Arrow type {t}; map it with "
                      "htypes={...} or leave it out of `columns`")


def _leaf_dtype(t: pa.DataType) -> np.dtype[Any] | None:
    """The numpy dtype of a (nested) list type's numbers, None when they are not numbers."""
    while pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        t = t.value_type
    if _numeric(t) and not pa.types.is_decimal(t):
        leaf: np.dtype[Any] = np.dtype(t.to_pandas_dtype())
        return leaf
    return None


def column_values(col: pa.Array, htype: str, kind: str) -> Any:
    """The values of one Arrow column for `Dataset.extend` / the tensor codecs: a numpy
    array where the column is dense and fixed-shape, else a list (None for nulls)."""
    t = col.type
    if pa.types.is_dictionary(t):
        col = col.dictionary_decode() if htype != "class_label" else col
        t = col.type
    if kind == "array":
        if col.null_count == 0:
            if _numeric(t):
                if pa.types.is_decimal(t):
                    return np.asarray(col.cast(pa.float64()).to_numpy(zero_copy_only=False))
                return col.to_numpy(zero_copy_only=False)
            if pa.types.is_fixed_size_list(t) and _numeric(t.value_type):
                flat = col.flatten().to_numpy(zero_copy_only=False)
                return flat.reshape(len(col), t.list_size)
            if (pa.types.is_list(t) or pa.types.is_large_list(t)) and _numeric(t.value_type):
                offs = col.offsets.to_numpy()
                flat = col.flatten().to_numpy(zero_copy_only=False)
                return [flat[a - offs[0]:b - offs[0]] for a, b in itertools.pairwise(offs)]
        if pa.types.is_dictionary(t) or pa.types.is_string(t) or pa.types.is_large_string(t):
            return col.to_pylist()  # class names (strings) -> ids in the codec
        if htype in ("image", "video", "audio") and col.null_count == 0 and (
                pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            # encoded media files: the column's own buffer and offsets, no copy per row
            offs = np.frombuffer(col.buffers()[1], np.int64 if pa.types.is_large_binary(t)
                                 else np.int32)[col.offset:col.offset + len(col) + 1]
            data = col.buffers()[2]
            view = memoryview(data).cast("B") if data is not None else memoryview(b"")
            return EncodedBytes(view[int(offs[0]):int(offs[-1])],
                                offs.astype(np.int64) - int(offs[0]))
        vals = col.to_pylist()
        if htype in ("image", "video", "audio") and vals and isinstance(vals[0], bytes | None):
            return vals  # encoded media bytes, kept as they are
        leaf = _leaf_dtype(t)  # so a row of big uint64s is not promoted to float64
        return [None if v is None else np.asarray(v, dtype=leaf) for v in vals]
    if kind == "text" and pa.types.is_temporal(t):
        return [None if v is None else v.isoformat() for v in col.to_pylist()]
    return col.to_pylist()
