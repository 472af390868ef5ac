"""Where ingested rows come from: Parquet files (local or any fsspec URL), Arrow objects,
image folder trees. Every source yields `Piece`s: record batches tagged with their origin."""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from plane._errors import InvalidArgumentError
from plane._runtime import IO_THREADS

__all__ = ["Piece", "SourceFile", "resolve_files", "parquet_pieces", "arrow_pieces",
           "filesystem_for", "parquet_schema", "folder_label", "image_files", "image_pieces",
           "IMAGE_EXTS", "PARQUET_EXTS"]

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
PARQUET_EXTS = (".parquet", ".parq", ".pq")


@dataclass(frozen=True)
class SourceFile:
    """One input file: its URL and what identifies its content (size, mtime/etag)."""

    url: str
    size: int
    version: str

    @property
    def identity(self) -> str:
        return f"{self.url}|{self.size}|{self.version}"


@dataclass
class Piece:
    """Rows of one record batch and where they came from (for errors and quarantine)."""

    batch: pa.RecordBatch
    source: str  # file URL or "<arrow>"
    row0: int  # row of the first batch row within `source`
    nbytes: int  # bytes read from the source for it (compressed on disk)


def filesystem_for(url: str, storage_options: Mapping[str, Any] | None) -> tuple[Any, str, str]:
    """(fsspec filesystem, path in it, protocol prefix)."""
    import fsspec

    protocol, sep, rest = str(url).partition("://")
    if not sep:
        return fsspec.filesystem("file"), os.path.abspath(os.path.expanduser(str(url))), ""
    return fsspec.filesystem(protocol, **dict(storage_options or {})), rest, f"{protocol}://"


def _hidden(path: str) -> bool:
    return any(p.startswith((".", "_")) for p in path.split("/") if p)


def resolve_files(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                  exts: tuple[str, ...], storage_options: Mapping[str, Any] | None = None,
                  ) -> list[tuple[Any, SourceFile]]:
    """Files named by a file, a directory (recursive), a glob, or a list of those; sorted.
    Hidden and ``_``-prefixed entries (``_SUCCESS``, ``.crc``) are skipped in directories."""
    specs = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    if not specs:
        raise InvalidArgumentError("no input given: pass a file, a directory, a glob or a list "
                                   "of them")
    out: dict[str, tuple[Any, SourceFile]] = {}
    for one in specs:
        fs, path, prefix = filesystem_for(str(one), storage_options)
        if any(c in path for c in "*?["):
            found = [p for p in fs.glob(path) if fs.isfile(p)]
        elif fs.isdir(path):
            root = path.rstrip("/")
            found = [p for p in fs.find(root)
                     if p.lower().endswith(exts) and not _hidden(p[len(root):])]
        elif fs.exists(path):
            found = [path]
        else:
            raise InvalidArgumentError(f"input {one} does not exist; check the path (and "
                                       "storage_options for remote stores)")
        for p in sorted(found):
            info = fs.info(p)
            version = str(info.get("ETag") or info.get("mtime") or info.get("LastModified")
                          or info.get("created") or "")
            url = prefix + p if prefix else p
            out[url] = (fs, SourceFile(url, int(info.get("size") or 0), version))
    if not out:
        raise InvalidArgumentError(f"no {'/'.join(exts)} files found in {spec}")
    return [out[k] for k in sorted(out)]


def _path_of(fs: Any, url: str) -> str:
    return url.split("://", 1)[1] if "://" in url else url


def parquet_pieces(fs: Any, f: SourceFile, columns: Sequence[str] | None, batch_rows: int,
                   row_groups: Sequence[int] | None = None) -> Iterator[Piece]:
    """Stream a Parquet file in record batches (one row group in memory at a time)."""
    import pyarrow.parquet as pq

    with fs.open(_path_of(fs, f.url), "rb") as fh:
        # no pre-buffering: read column chunks as batches need them (bounded memory)
        pf = pq.ParquetFile(fh, pre_buffer=False, buffer_size=1 << 20)
        md = pf.metadata
        groups = list(range(md.num_row_groups)) if row_groups is None else list(row_groups)
        starts = [0]
        for g in range(md.num_row_groups):
            starts.append(starts[-1] + md.row_group(g).num_rows)
        for g in groups:
            rg = md.row_group(g)
            size = rg.total_byte_size
            comp = sum(rg.column(i).total_compressed_size for i in range(rg.num_columns))
            row = starts[g]
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[g],
                                         columns=list(columns) if columns else None):
                share = batch.num_rows / max(1, rg.num_rows)
                yield Piece(batch, f.url, row, int((comp or size) * share))
                row += batch.num_rows


def parquet_schema(fs: Any, f: SourceFile) -> tuple[pa.Schema, int, int]:
    """(Arrow schema, rows, row groups) of a Parquet file, from its footer."""
    import pyarrow.parquet as pq

    with fs.open(_path_of(fs, f.url), "rb") as fh:
        pf = pq.ParquetFile(fh)
        return pf.schema_arrow, pf.metadata.num_rows, pf.metadata.num_row_groups


def arrow_pieces(obj: Any, batch_rows: int) -> tuple[pa.Schema, Iterator[Piece]]:
    """An Arrow Table / RecordBatch / RecordBatchReader / list of batches / pandas frame."""
    if type(obj).__name__ == "DataFrame":
        obj = pa.Table.from_pandas(obj, preserve_index=False)
    if isinstance(obj, pa.RecordBatch):
        obj = pa.Table.from_batches([obj])
    if isinstance(obj, list) and obj and all(isinstance(b, pa.RecordBatch) for b in obj):
        obj = pa.Table.from_batches(obj)
    if isinstance(obj, pa.Table):
        schema, batches = obj.schema, iter(obj.to_batches(max_chunksize=batch_rows))
    elif isinstance(obj, pa.RecordBatchReader):
        schema, batches = obj.schema, iter(obj)
    else:
        raise InvalidArgumentError(f"arrow= takes a pyarrow Table, RecordBatch, "
                                   "RecordBatchReader, list of RecordBatches or a pandas "
                                   f"DataFrame, got {type(obj).__name__}")

    def gen() -> Iterator[Piece]:
        row = 0
        for b in batches:
            for s in range(0, b.num_rows, batch_rows):
                part = b.slice(s, batch_rows)
                yield Piece(part, "<arrow>", row, part.nbytes)
                row += part.num_rows
    return schema, gen()


def image_files(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                storage_options: Mapping[str, Any] | None = None
                ) -> list[tuple[Any, SourceFile]]:
    return resolve_files(spec, IMAGE_EXTS, storage_options)


def folder_label(url: str) -> str:
    return posixpath.basename(posixpath.dirname(url.split("://", 1)[-1]))


def image_pieces(files: Sequence[tuple[Any, SourceFile]], labels: str | None,
                 batch_rows: int, threads: int = IO_THREADS) -> Iterator[Piece]:
    """Batches of (image bytes[, folder label], path) read by a thread pool."""
    def read(item: tuple[Any, SourceFile]) -> bytes:
        fs, f = item
        with fs.open(_path_of(fs, f.url), "rb") as fh:
            return bytes(fh.read())

    with ThreadPoolExecutor(threads, thread_name_prefix="plane-ingest") as pool:
        for s in range(0, len(files), batch_rows):
            part = files[s:s + batch_rows]
            datas = list(pool.map(read, part))
            cols: dict[str, Any] = {"image": pa.array(datas, pa.binary())}
            if labels == "folder":
                cols["label"] = pa.array([folder_label(f.url) for _, f in part], pa.string())
            cols["path"] = pa.array([f.url for _, f in part], pa.string())
            yield Piece(pa.RecordBatch.from_pydict(cols), "<images>", s,
                        sum(len(d) for d in datas))
