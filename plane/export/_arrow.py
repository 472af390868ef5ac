"""One version of a dataset (a `Snapshot`) -> Arrow record batches, a Table, pandas, Parquet.

Rows are read and converted a batch at a time (at most `batch_rows` rows and about
`BATCH_BYTES` of stored data), so `to_batches` / `write_parquet` stream a dataset of any
size in bounded memory. The schema is fixed before the first row is read (`export_schema`,
from the tensors' schemas: plane/export/_types.py), so every batch has the same one.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from plane._errors import InvalidArgumentError, SchemaError
from plane.core._snapshot import Snapshot
from plane.export._types import ROW_ID, dims_of, field_of, leaf_type
from plane.format._meta import TensorMeta

__all__ = ["BATCH_BYTES", "BATCH_ROWS", "ROW_GROUP_BYTES", "ROW_GROUP_ROWS", "export_schema",
           "select_rows", "to_arrow", "to_batches", "to_pandas", "write_parquet"]

BATCH_ROWS = 4096
#: about this many stored bytes per batch (a batch of large images holds fewer rows)
BATCH_BYTES = 64 << 20
#: Parquet row groups `write_parquet` writes: up to this many rows and about this many bytes
ROW_GROUP_ROWS = 65536
ROW_GROUP_BYTES = 128 << 20


# ---- which rows, which tensors --------------------------------------------------------------
def select_rows(n: int, rows: Any) -> np.ndarray | range:
    """Logical positions of `rows` (None: all; an int, slice, list of ints or bool mask) in
    a dataset of `n` rows: a range when it is one, so that all rows of a large dataset are
    never listed at once."""
    if rows is None:
        return range(n)
    if isinstance(rows, slice):
        return range(*rows.indices(n))
    if isinstance(rows, range):
        rows = np.asarray(rows, np.int64)
    if isinstance(rows, (int, np.integer)) and not isinstance(rows, bool):
        rows = [operator.index(rows)]
    arr = np.asarray(rows)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise InvalidArgumentError(f"rows: a bool mask needs one value per row ({n}), got "
                                       f"shape {arr.shape}")
        return np.flatnonzero(arr).astype(np.int64)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise InvalidArgumentError("rows must be None, an int, a slice, a list of ints or a "
                                   f"bool mask; got {type(rows).__name__} of {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = (arr < -n) | (arr >= n)
    if bad.any():
        raise InvalidArgumentError(f"rows: row {int(arr[bad][0])} is out of range for "
                                   f"{n} rows")
    return np.where(arr < 0, arr + n, arr)


def _tensor_names(snap: Snapshot, tensors: Sequence[str] | str | None) -> list[str]:
    if tensors is None:
        return list(snap.tensor_names)
    names = [t.strip() for t in tensors.split(",")] if isinstance(tensors, str) \
        else list(tensors)
    for n in names:
        snap.part(n)  # an unknown name raises TensorNotFoundError listing the tensors
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InvalidArgumentError(f"tensors: {dup} named more than once; name each once")
    return names


def export_schema(snap: Snapshot, tensors: Sequence[str] | str | None = None, *,
                  with_row_ids: bool = False, decode: bool = False,
                  extra: Mapping[str, pa.DataType] | None = None) -> pa.Schema:
    """The Arrow schema `to_batches` gives: `_row_id` (int64) first when `with_row_ids`, the
    tensors in order, then the `extra` columns (a query's score)."""
    fields = [pa.field(ROW_ID, pa.int64(), nullable=False)] if with_row_ids else []
    fields += [field_of(snap.meta(n), decode) for n in _tensor_names(snap, tensors)]
    fields += [pa.field(k, t) for k, t in (extra or {}).items()]
    return pa.schema(fields)


# ---- the batches ----------------------------------------------------------------------------
def to_batches(snap: Snapshot, tensors: Sequence[str] | str | None = None, rows: Any = None,
               *, with_row_ids: bool = False, decode: bool = False,
               batch_rows: int = BATCH_ROWS,
               extra: Mapping[str, np.ndarray] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of `rows` (see `select_rows`) of `tensors` (default: all), in order;
    one empty batch (the schema) when there are no rows. `decode=True` gives media as
    decoded arrays instead of their encoded bytes; `extra` adds columns given as arrays
    aligned with `rows`."""
    if batch_rows < 1:
        raise InvalidArgumentError(f"batch_rows must be >= 1, got {batch_rows}")
    names = _tensor_names(snap, tensors)
    extra = {k: np.asarray(v) for k, v in (extra or {}).items()}
    schema = export_schema(snap, names, with_row_ids=with_row_ids, decode=decode,
                           extra={k: pa.from_numpy_dtype(v.dtype) for k, v in extra.items()})
    sel = select_rows(len(snap), rows)
    step = _batch_size(snap, names, batch_rows)
    for a in range(0, max(1, len(sel)), step):
        part = sel[a:a + step]
        pos = np.arange(part.start, part.stop, part.step, dtype=np.int64) \
            if isinstance(part, range) else np.asarray(part, np.int64)
        cols: list[pa.Array] = []
        if with_row_ids:
            cols.append(pa.array(snap.ids_at(pos).astype(np.int64), pa.int64()))
        for n in names:
            cols.append(tensor_column(snap, snap.meta(n), pos, decode))
        cols += [pa.array(v[a:a + step]) for v in extra.values()]
        yield pa.RecordBatch.from_arrays(cols, schema=schema)


def _batch_size(snap: Snapshot, names: Sequence[str], batch_rows: int) -> int:
    """Rows per batch: `batch_rows`, fewer where rows are large (about BATCH_BYTES each)."""
    stored = sum(snap.index(n).nbytes for n in names)
    row_bytes = stored / max(1, snap.physical)
    return max(1, min(batch_rows, int(BATCH_BYTES // max(row_bytes, 1.0))))


def to_arrow(snap: Snapshot, tensors: Sequence[str] | str | None = None, rows: Any = None,
             **options: Any) -> pa.Table:
    """`to_batches` gathered into one `pyarrow.Table`, in batches of up to ROW_GROUP_ROWS
    rows (still at most BATCH_BYTES each): the whole table is in memory anyway, and each
    batch costs a read per tensor."""
    options.setdefault("batch_rows", ROW_GROUP_ROWS)
    return pa.Table.from_batches(list(to_batches(snap, tensors, rows, **options)))


def to_pandas(snap: Snapshot, tensors: Sequence[str] | str | None = None, rows: Any = None,
              **options: Any) -> Any:
    """`to_arrow(...).to_pandas()`: a DataFrame (class names as a Categorical, tensors as
    object columns of numpy arrays)."""
    try:
        import pandas  # noqa: F401
    except ImportError as e:
        from plane._errors import MissingDependencyError

        raise MissingDependencyError(f"to_pandas() needs pandas ({e}): pip install "
                                     "pandas") from None
    return to_arrow(snap, tensors, rows, **options).to_pandas()


def write_parquet(batches: Iterator[pa.RecordBatch], schema: pa.Schema, where: Any,
                  row_group_rows: int = ROW_GROUP_ROWS, **writer_options: Any) -> int:
    """Write `batches` (of `schema`) to a Parquet file at `where` (a path or a file object);
    returns the rows written. Batches are gathered into row groups of up to `row_group_rows`
    rows (fewer where that is over ROW_GROUP_BYTES): a row group per small batch would make
    the file slow to write (each starts its dictionaries anew) and to read. Memory stays
    about one row group."""
    import pyarrow.parquet as pq

    if row_group_rows < 1:
        raise InvalidArgumentError(f"row_group_rows must be >= 1, got {row_group_rows}")
    rows = held_rows = held_bytes = 0
    held: list[pa.RecordBatch] = []
    with pq.ParquetWriter(where, schema, **writer_options) as w:
        def flush() -> None:
            if held:
                w.write_table(pa.Table.from_batches(held, schema), row_group_size=max(1, held_rows))
                held.clear()

        for b in batches:
            if held and (held_rows + b.num_rows > row_group_rows
                         or held_bytes + b.nbytes > ROW_GROUP_BYTES):
                flush()
                held_rows = held_bytes = 0
            held.append(b)
            held_rows += b.num_rows
            held_bytes += b.nbytes
            rows += b.num_rows
        flush()
    return rows


# ---- one column -----------------------------------------------------------------------------
def tensor_column(snap: Snapshot, m: TensorMeta, pos: np.ndarray, decode: bool) -> pa.Array:
    """The Arrow array of tensor `m` at logical rows `pos` (nulls where `null_mask` says)."""
    mask = snap.null_mask(m.name, pos)
    if m.kind == "array" and not (m.sample_compression and not decode):
        vals = snap.read(m.name, pos, decode, False, links=False)
        return tensor_array(m, vals, mask, decode, pos)
    if m.kind in ("text", "bytes"):  # links: read_packed declines
        packed = _from_chunk_buffers(snap, m, pos, mask)
        if packed is not None:
            return packed
    vals = list(snap.read(m.name, pos, False, True, links=False))
    if m.kind == "json":
        vals = [json.dumps(v, ensure_ascii=False) for v in vals]
    elif m.kind != "text":
        vals = [bytes(v) if v is not None else None for v in vals]
        if m.kind == "array":  # encoded media: a row without a file (b"") has no value
            vals = [v or None for v in vals]
    if mask is not None:
        vals = [None if null else v for v, null in zip(vals, mask.tolist())]
    try:
        return pa.array(vals, leaf_type(m, decode))
    except UnicodeEncodeError:  # text holding a lone surrogate: not UTF-8, not Arrow text
        bad = next(i for i, v in enumerate(vals) if isinstance(v, str) and not _utf8(v))
        raise SchemaError(
            f"tensor {m.name!r}: row {int(pos[bad])} holds text that is not valid Unicode "
            f"(a lone surrogate, {vals[bad]!r}), which Arrow and Parquet strings cannot "
            "carry; rewrite that row, or leave the tensor out of the export") from None


def _utf8(v: str) -> bool:
    try:
        v.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _from_chunk_buffers(snap: Snapshot, m: TensorMeta, pos: np.ndarray,
                        mask: np.ndarray | None) -> pa.Array | None:
    """A text or bytes column built from the samples' bytes in the chunks
    (`Snapshot.read_packed`: one copy per run of adjacent rows), no Python `str` per row.
    None (the caller converts row by row) when a row is not in a chunk as stored (edited,
    tiled), the column needs 64-bit offsets, or the text is not valid UTF-8 (a lone
    surrogate)."""
    packed = snap.read_packed(m.name, pos)
    if packed is None or int(packed[1][-1]) >= 2**31:
        return None
    data, offsets = packed
    n = int(pos.shape[0])
    validity = None if mask is None else pa.array(~np.asarray(mask, bool)).buffers()[1]
    typ = leaf_type(m)
    arr = pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(offsets.astype(np.int32)),
                                         pa.py_buffer(data)],
                                null_count=0 if mask is None else int(np.count_nonzero(mask)))
    if typ == pa.string():
        try:
            arr.validate(full=True)
        except pa.ArrowInvalid:
            return None
    return arr


def tensor_array(m: TensorMeta, vals: Any, mask: np.ndarray | None, decode: bool,
                 pos: np.ndarray) -> pa.Array:
    """Numeric samples (an (n, ...) array or a list of arrays) as nested Arrow lists: one
    level per dimension, fixed_size_list where the dimension is fixed. A row whose sample is
    empty where the type has a fixed size (a row written before the tensor existed) is
    null."""
    dims = dims_of(m, decode)
    leaf = leaf_type(m, decode)
    n = int(pos.shape[0])
    null = np.zeros(n, bool) if mask is None else np.asarray(mask, bool).copy()
    k = len(dims)
    dense = _dense(vals, dims, n) if not null.any() else None
    if dense is not None:
        flat, shapes = dense
    else:
        samples = []
        shape_rows = []
        for i, v in enumerate(vals):
            a = np.asarray(v)
            if not null[i] and not (a.ndim == k and _fits(a.shape, dims)):
                if a.size:
                    raise SchemaError(
                        f"tensor {m.name!r}: row {int(pos[i])} has shape {a.shape}, which "
                        f"the column's Arrow type (dimensions {dims}) cannot hold; export "
                        "the tensor on its own or reshape that row")
                null[i] = True
            if null[i]:  # a filler of the tensor's dtype (another would promote the rest)
                a = np.zeros(tuple(d or 0 for d in dims), m.dtype or np.uint8)
            samples.append(a.reshape(-1))
            shape_rows.append(a.shape)
        flat = np.concatenate(samples) if samples else np.zeros(0, np.uint8)
        shapes = np.asarray(shape_rows, np.int64).reshape(n, k)
    out = _leaf_array(m, flat, leaf, null if k == 0 else None)
    for level in reversed(range(k)):
        top = pa.array(null) if level == 0 and null.any() else None
        d = dims[level]
        if d is not None:
            out = pa.FixedSizeListArray.from_arrays(out, d, mask=top)
            continue
        lists = np.prod(shapes[:, :level], axis=1, dtype=np.int64)
        lengths = np.repeat(shapes[:, level], lists)
        offsets = np.zeros(lengths.shape[0] + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        out = pa.ListArray.from_arrays(pa.array(offsets), out, mask=top)
    return out


def _dense(vals: Any, dims: tuple[int | None, ...], n: int
           ) -> tuple[np.ndarray, np.ndarray] | None:
    """(every value flat, one shape per row) when every row fits `dims`, else None: one
    array, or a list of arrays checked in a few vectorised steps (no Python per value)."""
    k = len(dims)
    if isinstance(vals, np.ndarray):
        if vals.ndim != k + 1 or not _fits(vals.shape[1:], dims):
            return None
        return vals.reshape(-1), np.tile(np.asarray(vals.shape[1:], np.int64), (n, 1))
    arrs = [v if isinstance(v, np.ndarray) else np.asarray(v) for v in vals]
    if any(a.ndim != k for a in arrs):
        return None
    shapes = np.asarray([a.shape for a in arrs], np.int64).reshape(n, k)
    for i, d in enumerate(dims):
        if d is not None and (shapes[:, i] != d).any():
            return None
    flat = np.concatenate([a.reshape(-1) for a in arrs]) if arrs else np.zeros(0, np.uint8)
    return flat, shapes


def _fits(shape: tuple[int, ...], dims: tuple[int | None, ...]) -> bool:
    return len(shape) == len(dims) and all(d is None or d == s for s, d in zip(shape, dims))


def _leaf_array(m: TensorMeta, flat: np.ndarray, leaf: pa.DataType,
                mask: np.ndarray | None) -> pa.Array:
    if mask is not None and not mask.any():
        mask = None
    if pa.types.is_null(leaf):
        return pa.nulls(flat.shape[0])
    if pa.types.is_dictionary(leaf):
        names = m.class_names
        ids = flat.astype(np.int64)
        bad = (ids < 0) | (ids >= len(names))
        if mask is not None:
            bad &= ~mask
        if bad.any():
            raise SchemaError(f"tensor {m.name!r}: class id {int(ids[bad][0])} has no name "
                              f"(it has {len(names)} class_names) at one of rows "
                              f"{int(ids.shape[0])} read; give every id a name")
        ids = np.where(bad, 0, ids).astype(np.int32)
        return pa.DictionaryArray.from_arrays(ids, pa.array(names, pa.string()), mask=mask)
    return pa.array(flat.astype(leaf.to_pandas_dtype(), copy=False), leaf, mask=mask)
