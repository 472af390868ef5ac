"""`Dataset.extend_from`: stream Parquet / Arrow / image folders into tensors.

Rows are encoded batch by batch into one fragment (full chunks are stored as they fill), and
the fragment is applied to the dataset only at the end: a failed ingest (on_error="raise")
leaves the dataset exactly as it was; the orphaned chunks are reclaimed by `plane gc`.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from plane._errors import IngestError, InvalidArgumentError, SampleError, SchemaError
from plane._progress import progress_bar
from plane.core._fragment import Fragment, FragmentWriter
from plane.core._layout import quarantine_key
from plane.core._nulls import encode_nullable
from plane.core._working import WorkingState, fragment_meta
from plane.format._codecs import EncodedBytes
from plane.format._media import decode
from plane.format._meta import TensorMeta
from plane.ingest._infer import TensorSpec, column_values, infer_spec
from plane.ingest._report import IngestReport
from plane.ingest._sources import (
    PARQUET_EXTS,
    Piece,
    arrow_pieces,
    folder_label,
    image_files,
    image_pieces,
    parquet_pieces,
    parquet_schema,
    resolve_files,
)
from plane.storage import Store

__all__ = ["IngestReport", "extend_from", "plan_schema", "plan_parquet", "plan_images",
           "ingest_pieces", "apply_ingest",
           "Rejects", "guard_file", "FileReadError", "write_quarantine",
           "create_like"]

log = logging.getLogger("plane.ingest")

ON_ERROR = ("raise", "skip", "quarantine")


# ---- schema -----------------------------------------------------------------------------------
def _spec_from_override(name: str, value: Any, inferred: TensorSpec | None) -> TensorSpec:
    if isinstance(value, str):
        if inferred is not None and inferred.htype == value:
            return inferred
        comp = inferred.sample_compression if inferred is not None and value == "image" else None
        return TensorSpec(value, sample_compression=comp)
    if isinstance(value, Mapping):
        kw = dict(value)
        return TensorSpec(kw.pop("htype", "generic"), kw.pop("dtype", None),
                          kw.pop("shape", None), kw.pop("sample_compression", None),
                          tuple(kw.pop("class_names", ())), extra=kw)
    raise SchemaError(f"htypes[{name!r}] must be an htype name or a dict of create_tensor "
                      f"arguments, got {type(value).__name__}")


def plan_schema(ds_metas: Mapping[str, TensorMeta], schema: pa.Schema,
                first: pa.RecordBatch | None, columns: Mapping[str, str] | None,
                htypes: Mapping[str, Any] | None) -> tuple[dict[str, str], dict[str, TensorMeta],
                                                           list[str]]:
    """(source column -> tensor, metas of every tensor after the ingest, tensors to create).
    Everything is validated here, before any data is read or written."""
    names = list(schema.names)
    if columns is None:
        mapping = {c: c for c in names}
    else:
        if not isinstance(columns, Mapping):
            raise SchemaError("columns= maps source columns to tensors: {'column': 'tensor'}")
        missing = [c for c in columns if c not in names]
        if missing:
            raise SchemaError(f"column(s) {missing} are not in the source; it has {names}")
        mapping = dict(columns)
    dup = {t for t in mapping.values() if list(mapping.values()).count(t) > 1}
    if dup:
        raise SchemaError(f"several columns map to tensor(s) {sorted(dup)}; map each to its own")
    unknown = set(htypes or {}) - set(mapping.values())
    if unknown:
        raise SchemaError(f"htypes names {sorted(unknown)}, which no mapped column fills; "
                          f"tensors being filled: {sorted(mapping.values())}")
    metas = dict(ds_metas)
    created: list[str] = []
    for col, tensor in mapping.items():
        if tensor in ds_metas:
            continue
        sample = first.column(col) if first is not None else None
        override = (htypes or {}).get(tensor)
        try:
            spec = infer_spec(col, schema.field(col).type, sample)
        except SchemaError:
            if override is None:
                raise
            spec = None
        if override is not None:
            spec = _spec_from_override(tensor, override, spec)
        assert spec is not None
        metas[tensor] = TensorMeta.build(tensor, **spec.kwargs(), **spec.extra)
        created.append(tensor)
    return mapping, metas, created


IMAGE_SCHEMA = pa.schema([("image", pa.binary()), ("label", pa.string()), ("path", pa.string())])


def plan_parquet(ds_metas: Mapping[str, TensorMeta], source: Any,
                 storage_options: Mapping[str, Any] | None, columns: Mapping[str, str] | None,
                 htypes: Mapping[str, Any] | None
                 ) -> tuple[list[tuple[Any, Any]], dict[str, str], dict[str, TensorMeta],
                            list[str]]:
    """(files, column -> tensor, metas, tensors to create) of a Parquet source, the schema
    read from the first file's footer and first rows."""
    files = resolve_files(source, PARQUET_EXTS, storage_options)
    fs0, f0 = files[0]
    try:
        schema, _, _ = parquet_schema(fs0, f0)
        first = next(parquet_pieces(fs0, f0, None, 64), None)
    except Exception as e:
        raise IngestError(f"file {f0.url} is not a readable Parquet file ({e}); fix or "
                          "remove it") from None
    mapping, metas, created = plan_schema(ds_metas, schema, first and first.batch, columns,
                                          htypes)
    return files, mapping, metas, created


def plan_images(ds_metas: Mapping[str, TensorMeta], files: Sequence[tuple[Any, Any]],
                labels: str | None, columns: Mapping[str, str] | None,
                htypes: Mapping[str, Any] | None, where: str
                ) -> tuple[dict[str, str], dict[str, TensorMeta], list[str]]:
    """(column -> tensor, metas, tensors to create) of an image tree. With
    ``labels="folder"`` every folder name is a class up front (existing names first, new ones
    sorted), so parallel tasks agree on class ids."""
    kinds = {os.path.splitext(f.url)[1].lower().replace("jpg", "jpeg") for _, f in files}
    if len(kinds) > 1:
        raise IngestError(f"{where} mixes {sorted(kinds)} files; one image tensor keeps one "
                          "compression: ingest each kind into its own tensor/dataset")
    comp = kinds.pop().lstrip(".")
    if columns is not None:
        mapping = dict(columns)
    else:
        mapping = {"image": "images", "path": "paths"}
        if labels == "folder":
            mapping["label"] = "labels"
    hts: dict[str, Any] = {mapping["image"]: {"htype": "image", "sample_compression": comp}}
    label = mapping.get("label")
    names: list[str] = []
    if label is not None:
        found = sorted({folder_label(f.url) for _, f in files}) if labels == "folder" else []
        have = list(ds_metas[label].class_names) if label in ds_metas else []
        names = have + [n for n in found if n not in have]
        hts[label] = {"htype": "class_label", "class_names": names}
    hts.update(htypes or {})
    _, metas, created = plan_schema(ds_metas, IMAGE_SCHEMA, None, mapping,
                                    {k: v for k, v in hts.items() if k not in ds_metas})
    if label is not None and label in ds_metas and names:
        metas[label] = metas[label].evolve(class_names=tuple(names))
    return mapping, metas, created


# ---- rows -------------------------------------------------------------------------------------
class Rejects:
    """Where rejected rows go: counted, and for "quarantine" kept for the report."""

    def __init__(self, on_error: str) -> None:
        self.on_error = on_error
        self.items: list[dict[str, Any]] = []
        self.count = 0

    def add(self, source: str, row: int | None, column: str | None, reason: str) -> None:
        self.count += 1
        if self.on_error == "quarantine" and len(self.items) < 1_000_000:
            self.items.append({"source": source, "row": row, "column": column,
                               "reason": reason})


def _values(piece: Piece, mapping: Mapping[str, str], metas: Mapping[str, TensorMeta],
            n: int) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for col, tensor in mapping.items():
        m = metas[tensor]
        cols[tensor] = column_values(piece.batch.column(col), m.htype, m.kind)
    for tensor in metas:
        if tensor not in cols:
            cols[tensor] = [None] * n  # tensors the source does not fill: nulls
    return cols


def _verify_media(metas: Mapping[str, TensorMeta], cols: Mapping[str, Any], row0: int) -> None:
    for tensor, vals in cols.items():
        m = metas[tensor]
        if m.htype == "image" and m.sample_compression and isinstance(vals,
                                                                      list | EncodedBytes):
            for i, v in enumerate(vals):
                if v is None:
                    continue
                try:
                    decode(v, m.sample_compression)
                except Exception as e:
                    raise SampleError(f"tensor {tensor!r}: {m.sample_compression} bytes do not "
                                      f"decode ({e}) at row {row0 + i}; fix or drop the file"
                                      ) from None


def _bad_rows(fw: FragmentWriter, cols: Mapping[str, Any], verify: bool,
              ) -> dict[int, tuple[str, str]]:
    """Rows of a failed batch that fail on their own: {row: (tensor, reason)}."""
    n = len(next(iter(cols.values())))
    bad: dict[int, tuple[str, str]] = {}
    for tensor, _vals in cols.items():
        for i in range(n):
            if i in bad:
                continue
            one = {t: (v[i:i + 1]) for t, v in cols.items() if t == tensor}
            try:
                if verify:
                    _verify_media(fw.metas, one, i)
                encode_nullable(fw.metas[tensor], one[tensor], i)
            except (SampleError, SchemaError, ValueError, TypeError) as e:
                bad[i] = (tensor, str(e))
    return bad


def _take(cols: Mapping[str, Any], keep: np.ndarray) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for t, v in cols.items():
        out[t] = v[keep] if isinstance(v, np.ndarray) else [v[int(i)] for i in keep.tolist()]
    return out


def ingest_pieces(fw: FragmentWriter, pieces: Iterable[Piece], mapping: Mapping[str, str],
                  on_error: str, verify: bool, rejects: Rejects, report: IngestReport,
                  bar: Any = None) -> None:
    """Encode and write every piece into `fw`; bad rows raise or are rejected."""
    tensor_to_col = {t: c for c, t in mapping.items()}
    for piece in pieces:
        n = piece.batch.num_rows
        report.rows_read += n
        report.bytes_read += piece.nbytes
        where = f"{piece.source}" if piece.source.startswith("<") else f"file {piece.source}"
        try:
            cols = _values(piece, mapping, fw.metas, n)
        except (ValueError, TypeError, pa.ArrowException) as e:
            raise IngestError(f"{where}, rows {piece.row0}-{piece.row0 + n - 1}: cannot "
                              f"convert the batch ({e}); fix the source") from None
        try:
            if verify:
                _verify_media(fw.metas, cols, 0)
            enc = fw.encode(cols, 0)
        except (SampleError, SchemaError, ValueError, TypeError, pa.ArrowException) as e:
            bad = _bad_rows(fw, cols, verify)
            if not bad:
                raise IngestError(f"{where}, rows {piece.row0}-{piece.row0 + n - 1}: {e}"
                                  ) from None
            if on_error == "raise":
                i, (tensor, reason) = min(bad.items())
                raise IngestError(
                    f"{_row_where(piece, where, i)}, column "
                    f"{tensor_to_col.get(tensor, tensor)!r} (tensor {tensor!r}): {reason}. "
                    "Nothing was added to the dataset; fix the row, or pass on_error='skip' or "
                    "'quarantine'") from None
            for i, (tensor, reason) in sorted(bad.items()):
                rejects.add(_image_path(piece, i) or piece.source, piece.row0 + i,
                            tensor_to_col.get(tensor, tensor), reason)
            keep = np.asarray([i for i in range(n) if i not in bad], np.int64)
            report.rows_skipped += n - keep.shape[0]
            if not keep.shape[0]:
                if bar is not None:
                    bar.update(n)
                continue
            enc = fw.encode(_take(cols, keep), 0)
        fw.add(enc)
        report.rows_written = fw.rows
        if bar is not None:
            bar.update(n)


def _image_path(piece: Piece, i: int) -> str | None:
    """The file row `i` of an image-tree batch was read from (None for other sources)."""
    if piece.source != "<images>" or "path" not in piece.batch.schema.names:
        return None
    return str(piece.batch.column("path")[i].as_py())


def _row_where(piece: Piece, where: str, i: int) -> str:
    """Where row `i` of `piece` came from: the image file, or the source and row."""
    path = _image_path(piece, i)
    return f"file {path} (row {piece.row0 + i})" if path else f"{where}, row {piece.row0 + i}"


def write_quarantine(store: Store, rejects: Rejects) -> str | None:
    if not rejects.items:
        return None
    key = quarantine_key(f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}")
    store.put(key, "".join(json.dumps(r) + "\n" for r in rejects.items).encode())
    return key


# ---- the entry point --------------------------------------------------------------------------
def extend_from(ws: WorkingState, *, parquet: Any = None, arrow: Any = None, images: Any = None,
                labels: str | None = None, columns: Mapping[str, str] | None = None,
                htypes: Mapping[str, Any] | None = None, on_error: str = "raise",
                batch_rows: int = 4096, progress: bool | None = None, verify: bool = False,
                storage_options: Mapping[str, Any] | None = None,
                commit: str | None = None, print_report: bool | None = None) -> IngestReport:
    """Append rows from Parquet (`parquet=` file, directory, glob or list; local or any fsspec
    URL), Arrow (`arrow=` Table / RecordBatchReader / pandas) or an image tree (`images=`,
    `labels="folder"` for class-per-folder) to the working state `ws`. See
    `Dataset.extend_from`. The report is printed to stderr when the progress bar shows (or
    `print_report=True`; False: never)."""
    ws.check_writable("extend_from")
    given = [k for k, v in (("parquet", parquet), ("arrow", arrow), ("images", images))
             if v is not None]
    if len(given) != 1:
        raise InvalidArgumentError("extend_from takes exactly one of parquet=, arrow= or "
                                   f"images=; got {given or 'none'}")
    if on_error not in ON_ERROR:
        raise InvalidArgumentError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if batch_rows < 1:
        raise InvalidArgumentError(f"batch_rows must be >= 1, got {batch_rows}")
    if labels not in (None, "folder"):
        raise InvalidArgumentError(f"labels must be None or 'folder', got {labels!r}")
    t0 = time.perf_counter()
    report = IngestReport()
    rejects = Rejects(on_error)
    ds_metas = ws.metas()
    if parquet is not None:
        files, mapping, metas, created = plan_parquet(ds_metas, parquet, storage_options,
                                                      columns, htypes)
        pieces = _parquet_files(files, mapping, batch_rows, on_error, rejects, report)
        total = None
    elif arrow is not None:
        schema, batches = arrow_pieces(arrow, batch_rows)
        first = next(batches, None)
        mapping, metas, created = plan_schema(ds_metas, schema, first and first.batch,
                                              columns, htypes)
        pieces = itertools.chain([first] if first else [], batches)
        report.files, total = 1, None
    else:
        files = image_files(images, storage_options)
        mapping, metas, created = plan_images(ds_metas, files, labels, columns, htypes,
                                              str(images))
        pieces = image_pieces(files, labels, batch_rows)
        report.files = total = len(files)
    fw = FragmentWriter(ws.store, f"ingest-{uuid.uuid4().hex}", metas, ws.reader.footer_sums)
    bar = progress_bar(total, "ingest", progress)
    try:
        ingest_pieces(fw, pieces, mapping, on_error, verify, rejects, report, bar)
    finally:
        if bar is not None:
            bar.close()

    frag = fw.finish()
    report.bytes_written = fw.bytes_written
    report.quarantine_key = write_quarantine(ws.store, rejects)
    report.errors = rejects.items[:100]
    apply_ingest(ws, frag, metas, created)
    report.tensors_created = created
    report.rows_written = frag.rows
    if commit is not None:
        ws.publish(commit)
    report.seconds = time.perf_counter() - t0
    log.info("%s", report)
    shown = progress or (progress is None and sys.stderr.isatty())
    if print_report or (print_report is None and shown):
        print(report, file=sys.stderr)
    return report


def apply_ingest(ws: WorkingState, frag: Fragment | Sequence[Fragment],
                 metas: Mapping[str, TensorMeta], created: Sequence[str]) -> int:
    """Create the new tensors and append the written rows: all or nothing (checked first)."""
    ws.check_writable("extend_from")
    frags = [frag] if isinstance(frag, Fragment) else list(frag)
    have = ws.metas()
    for f in frags:  # validate against the dataset's schema before changing anything
        for n, m in have.items():
            have[n] = fragment_meta(m, TensorMeta.from_dict(f.metas[n]), f.fragment_id)
    new = [_rebuilt(metas[name]) for name in created]  # every schema checked first
    for m in new:
        ws.add_tensor(m)
    return ws.apply_fragments(frags)


class _CreatesTensors(Protocol):
    def create_tensor(self, name: str, htype: str = ..., dtype: Any = ..., shape: Any = ...,
                      max_shape: Any = ..., sample_compression: str | None = ...,
                      chunk_compression: Any = ..., class_names: Sequence[str] = (),
                      chunk_bytes: int | None = ...) -> Any: ...


def _like(m: TensorMeta) -> dict[str, Any]:
    """The `create_tensor` arguments that give tensor `m.name` the schema `m`."""
    return dict(htype=m.htype, dtype=m.dtype if m.kind == "array" and
                m.htype != "class_label" else None, shape=m.shape, max_shape=m.max_shape,
                sample_compression=m.sample_compression,
                chunk_compression=m.chunk_compression, class_names=m.class_names,
                chunk_bytes=m.chunk_bytes)


def _rebuilt(m: TensorMeta) -> TensorMeta:
    """`m` as `create_tensor` builds it (a fresh tensor with the planned schema)."""
    return TensorMeta.build(m.name, **_like(m))


def create_like(ds: _CreatesTensors, m: TensorMeta) -> None:
    """Create tensor `m.name` in dataset `ds` with the schema `m` (as planned for an
    ingest)."""
    ds.create_tensor(m.name, **_like(m))


class FileReadError(Exception):
    """A source file cannot be read (not Parquet, truncated, unreachable)."""


def guard_file(pieces: Iterator[Piece], url: str) -> Iterator[Piece]:
    """Turn read errors of a file into FileReadError naming it."""
    while True:
        try:
            p = next(pieces)
        except StopIteration:
            return
        except (OSError, pa.ArrowException) as e:
            raise FileReadError(f"file {url} cannot be read as Parquet ({e})") from None
        yield p


def _parquet_files(files: Sequence[tuple[Any, Any]], mapping: Mapping[str, str],
                   batch_rows: int, on_error: str, rejects: Rejects, report: IngestReport
                   ) -> Iterator[Piece]:
    """The pieces of every file in turn. A file that cannot be read, or lacks a mapped
    column, stops the ingest (on_error="raise") or is skipped and recorded."""
    for fs, f in files:
        report.files += 1
        try:
            try:
                fschema, _, _ = parquet_schema(fs, f)
            except (OSError, pa.ArrowException) as e:
                raise FileReadError(f"file {f.url} cannot be read as Parquet ({e})") from None
            missing = [c for c in mapping if c not in fschema.names]
            if missing:
                raise FileReadError(f"file {f.url} lacks column(s) {missing}")
            yield from guard_file(parquet_pieces(fs, f, list(mapping), batch_rows), f.url)
        except FileReadError as e:
            if on_error == "raise":
                raise IngestError(f"{e}; nothing was added to the dataset: fix or remove the "
                                  "file, or pass on_error='skip' or 'quarantine'") from None
            report.files_skipped += 1
            rejects.add(f.url, None, None, str(e))
