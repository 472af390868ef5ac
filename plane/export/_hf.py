"""HuggingFace `datasets` <-> Arrow, both ways through the Arrow types of the export/ingest.

`to_hf`: a version as a `datasets.Dataset` (or, `streaming=True`, an `IterableDataset` that
reads batch by batch). Class labels with names become `ClassLabel` features (their ids), JPEG
/ PNG image tensors `Image` features (the encoded bytes); the rest keeps its Arrow type.
`hf_to_arrow`: the reverse, a `RecordBatchReader` that `Dataset.extend_from(arrow=...)`
ingests (`plane.from_hf`): `ClassLabel` -> dictionary<int32, string>, `Image` -> its bytes.
`datasets` is imported only here, on use (`pip install 'tensorplane[hf]'`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from plane._errors import InvalidArgumentError, MissingDependencyError
from plane.core._snapshot import Snapshot
from plane.export._arrow import BATCH_ROWS, export_schema, to_batches

__all__ = ["to_hf", "hf_to_arrow", "import_datasets"]

_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])


def import_datasets() -> Any:
    """The `datasets` module, or MissingDependencyError naming the extra to install."""
    try:
        import datasets
    except ImportError as e:
        raise MissingDependencyError(f"HuggingFace datasets is not installed ({e}): pip "
                                     "install 'tensorplane[hf]'") from None
    return datasets


# ---- tensorplane -> HuggingFace -------------------------------------------------------------
def _image_columns(snap: Snapshot, names: Sequence[str]) -> set[str]:
    return {n for n in names if n in snap and snap.meta(n).htype == "image"
            and snap.meta(n).sample_compression in ("jpeg", "png")}


def _features(datasets: Any, snap: Snapshot, schema: pa.Schema, images: set[str]) -> Any:
    feats = datasets.Features.from_arrow_schema(
        pa.schema([f for f in schema if f.name not in images
                   and not pa.types.is_dictionary(f.type)]))
    out = {}
    for f in schema:
        if f.name in images:
            out[f.name] = datasets.Image()
        elif pa.types.is_dictionary(f.type):
            out[f.name] = datasets.ClassLabel(names=list(snap.meta(f.name).class_names))
        else:
            out[f.name] = feats[f.name]
    return datasets.Features(out)


def _hf_batch(batch: pa.RecordBatch, images: set[str], schema: pa.Schema) -> pa.RecordBatch:
    """An export batch in the HF features' Arrow types (ids, {bytes, path} images)."""
    cols = []
    for f, col in zip(batch.schema, batch.columns):
        if f.name in images:
            col = pa.StructArray.from_arrays([col, pa.nulls(len(col), pa.string())],
                                             names=["bytes", "path"], mask=col.is_null())
        elif pa.types.is_dictionary(f.type):
            col = col.indices.cast(pa.int64())
        cols.append(col)
    return pa.RecordBatch.from_arrays(cols, schema=schema)


def to_hf(snap: Snapshot, tensors: Sequence[str] | str | None = None, rows: Any = None, *,
          streaming: bool = False, batch_rows: int = BATCH_ROWS, **options: Any) -> Any:
    """Rows `rows` of `tensors` of `snap` as a `datasets.Dataset` (in memory), or with
    `streaming=True` a `datasets.IterableDataset` reading `batch_rows` rows at a time."""
    datasets = import_datasets()
    schema = export_schema(snap, tensors, with_row_ids=options.get("with_row_ids", False),
                           decode=options.get("decode", False))
    images = set() if options.get("decode") else _image_columns(snap, schema.names)
    features = _features(datasets, snap, schema, images)
    hf_schema = features.arrow_schema
    info = datasets.DatasetInfo(features=features)
    if streaming:
        # one tuple: `from_generator` would split list-valued gen_kwargs into shards
        job = (snap, tuple(schema.names), rows, images, hf_schema, batch_rows, options)
        return datasets.IterableDataset.from_generator(_rows, features=features,
                                                       gen_kwargs={"job": job})
    names = [n for n in schema.names if n != "_row_id"]
    batches = [_hf_batch(b, images, hf_schema)
               for b in to_batches(snap, names, rows, batch_rows=batch_rows, **options)]
    return datasets.Dataset(pa.Table.from_batches(batches, schema=hf_schema), info=info)


def _rows(job: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
    snap, tensors, rows, images, schema, batch_rows, options = job
    names = [n for n in tensors if n != "_row_id"]
    for b in to_batches(snap, names, rows, batch_rows=batch_rows, **options):
        yield from _hf_batch(b, images, schema).to_pylist()


# ---- HuggingFace -> Arrow (for the ingest) --------------------------------------------------
def _to_ingest(datasets: Any, feats: Any, name: str, t: pa.DataType) -> pa.DataType:
    f = feats.get(name) if feats is not None else None
    if isinstance(f, datasets.ClassLabel):
        return pa.dictionary(pa.int32(), pa.string())
    if isinstance(f, datasets.Image):
        return pa.binary()
    return t


def _from_hf_column(datasets: Any, f: Any, col: pa.Array, name: str) -> pa.Array:
    if isinstance(f, datasets.ClassLabel):
        ids = col.cast(pa.int64()).to_numpy(zero_copy_only=False)
        nulls = col.is_null().to_numpy(zero_copy_only=False)
        valid = ~nulls
        if ((ids[valid] < 0) | (ids[valid] >= len(f.names))).any():
            bad = int(ids[valid][(ids[valid] < 0) | (ids[valid] >= len(f.names))][0])
            raise InvalidArgumentError(f"column {name!r}: class id {bad} is not one of the "
                                       f"{len(f.names)} ClassLabel names; fix the column")
        return pa.DictionaryArray.from_arrays(
            np.where(valid, ids, 0).astype(np.int32), pa.array(list(f.names), pa.string()),
            mask=nulls if nulls.any() else None)
    if isinstance(f, datasets.Image):
        data = col.field("bytes").to_pylist()
        paths = col.field("path").to_pylist()
        out = []
        for b, p in zip(data, paths):
            if b is None and p is not None:
                with open(p, "rb") as fh:  # an Image feature that names a local file
                    b = fh.read()
            out.append(b)
        return pa.array(out, pa.binary())
    return col


def hf_to_arrow(hf: Any, batch_rows: int = BATCH_ROWS) -> pa.RecordBatchReader:
    """A HuggingFace `Dataset` or `IterableDataset` as a stream of record batches in the
    types the ingest maps back (ClassLabel -> class names, Image -> its encoded bytes)."""
    datasets = import_datasets()
    if isinstance(hf, datasets.DatasetDict | datasets.IterableDatasetDict):
        raise InvalidArgumentError(f"from_hf takes one split, got a dict of splits "
                                   f"{list(hf)}; pass e.g. hf_dataset['train']")
    if not isinstance(hf, datasets.Dataset | datasets.IterableDataset):
        raise InvalidArgumentError("from_hf takes a datasets.Dataset or IterableDataset, got "
                                   f"{type(hf).__name__}")
    feats = hf.features
    if feats is None:
        raise InvalidArgumentError("this IterableDataset has no features (types); resolve "
                                   "them first: hf_dataset = hf_dataset._resolve_features()")
    src = feats.arrow_schema
    schema = pa.schema([pa.field(f.name, _to_ingest(datasets, feats, f.name, f.type))
                        for f in src])

    def batches() -> Iterator[pa.RecordBatch]:
        for table in hf.with_format("arrow").iter(batch_size=batch_rows):
            table = table.cast(src) if table.schema != src else table
            for b in table.to_batches():
                cols = [_from_hf_column(datasets, feats.get(n), b.column(n), n)
                        for n in src.names]
                yield pa.RecordBatch.from_arrays(cols, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())
