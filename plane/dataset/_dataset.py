"""Dataset: the user's handle on a dataset — a thin facade.

Writes go to a `WorkingState` (plane.core), reads of a version to a `Snapshot`; version
control, query, loaders and ingestion live in their packages and are reached through
`ds.versions`, `ds.query`, `ds.pytorch`, `ds.extend_from` ...
"""

from __future__ import annotations

import atexit
import re
import warnings
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import (
    MissingDependencyError,
    SampleError,
    SchemaError,
)
from plane.core._nulls import encode_nullable
from plane.core._reader import DEFAULT_CACHE_BYTES
from plane.core._rowmap import positions_of
from plane.core._snapshot import Snapshot
from plane.core._working import WorkingState
from plane.dataset._index_list import Indexes
from plane.dataset._indexing import normalize_index
from plane.dataset._info import DatasetInfo
from plane.dataset._tensor import Tensor
from plane.dataset._view import DatasetView
from plane.format._meta import TensorMeta
from plane.storage import ReadOnlyStore, Store

if TYPE_CHECKING:
    from plane.ingest import IngestReport
    from plane.loader import Loader
    from plane.query import AggregateResult, IndexInfo, Search, View
    from plane.version import Diff, MergeResult, VersionControl

__all__ = ["Dataset"]

#: writable datasets alive in this process, checked for unflushed writes at exit
_OPEN: weakref.WeakSet[Dataset] = weakref.WeakSet()


class Dataset:
    """A versioned collection of named tensors in a Store. Use `plane.create` / `plane.open`."""

    def __init__(self, store: Store, version: str | None, read_only: bool,
                 cache_bytes: int = DEFAULT_CACHE_BYTES,
                 link_storage_options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        store = ReadOnlyStore(store) if read_only and not store.read_only else store
        self._ws = WorkingState(store, cache_bytes, link_storage_options)
        from plane.version import VersionControl

        self._versions = VersionControl(self._ws)
        self._versions._goto(version or self._ws.info.get("default_branch", "main"))
        if not store.read_only:
            _OPEN.add(self)

    # ---- properties ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._ws.url

    @property
    def store(self) -> Store:
        return self._ws.store

    @property
    def read_only(self) -> bool:
        return self._ws.store.read_only or self._ws.branch is None

    @property
    def current_branch(self) -> str | None:
        """The checked-out branch, or None when a commit or tag is checked out (detached)."""
        return self._ws.branch

    @property
    def commit_id(self) -> str | None:
        """The commit the working state is based on (None before the first commit)."""
        return self._ws.commit_id

    @property
    def versions(self) -> VersionControl:
        """Version control: commit, branches, tags, log, diff, merge, checkout."""
        return self._versions

    @property
    def has_changes(self) -> bool:
        """True if the working state differs from its commit (flushed or not)."""
        return self._ws.has_changes

    @property
    def tensors(self) -> dict[str, Tensor]:
        return {n: Tensor(self, n) for n in self._ws.writers}

    @property
    def row_ids(self) -> np.ndarray:
        """Stable row id of every row, in row order."""
        ws = self._ws
        return ws.row_ids.take(ws.to_physical(np.arange(len(ws), dtype=np.int64)))

    def snapshot(self) -> Snapshot:
        """A frozen, picklable handle on this version as it is now, unflushed writes
        included: they are stored as unpublished objects, the branch does not move (flush or
        commit to publish them). Queries, loaders and diffs read through one."""
        return self._ws.snapshot()

    # ---- schema -------------------------------------------------------------------------
    def create_tensor(self, name: str, htype: str = "generic", dtype: Any = None,
                      shape: Any = None, max_shape: Any = None,
                      sample_compression: str | None = None, chunk_compression: Any = "auto",
                      class_names: Sequence[str] = (), chunk_bytes: int | None = None) -> Tensor:
        """Add a tensor. Rows that already exist are null in it (README, "Missing values")."""
        self._ws.check_writable(f"create tensor {name!r}")
        if name in self._ws.writers:
            raise SchemaError(f"tensor {name!r} already exists in {self.url}")
        meta = TensorMeta.build(name, htype, dtype, shape, max_shape, sample_compression,
                                chunk_compression, class_names, chunk_bytes)
        self._ws.add_tensor(meta)
        return Tensor(self, name)

    def delete_tensor(self, name: str) -> None:
        """Remove a tensor from this branch (its chunks stay for older commits)."""
        self._ws.check_writable(f"delete tensor {name!r}")
        self._ws.drop_tensor(name)

    def rename_tensor(self, old: str, new: str) -> None:
        """Rename tensor `old` to `new` on this branch (no data is copied). Versioned: older
        commits keep the old name; diff reports the rename, merge follows it, and its indexes
        go with it. Commit afterwards."""
        self._ws.check_writable(f"rename tensor {old!r}")
        self._ws.rename_tensor(old, new)

    @property
    def info(self) -> DatasetInfo:
        """The dataset's info dict (description, license, citation, any JSON values):
        ``ds.info["license"] = "cc-by-4.0"``; versioned, committed with the next commit."""
        return DatasetInfo(self._ws)

    # ---- writing ------------------------------------------------------------------------
    def append(self, sample: Mapping[str, Any]) -> None:
        """Add one row: ``{"tensor": value, ...}`` with a value for every tensor."""
        if not isinstance(sample, Mapping):
            raise SampleError("append takes one row as a dict {tensor: value}")
        self.extend({k: [v] for k, v in sample.items()})

    def extend(self, columns: Mapping[str, Any]) -> None:
        """Add rows column-wise: ``{"tensor": [values...], ...}``; all or nothing."""
        ws = self._ws
        ws.check_writable("extend")
        n = ws.check_columns(columns)
        if n:
            ws.extend(columns, n)

    def extend_from(self, *, parquet: Any = None, arrow: Any = None, images: Any = None,
                    **options: Any) -> IngestReport:
        """Append rows straight from the lake: `parquet=` (file, directory, glob or list; local
        or s3://...), `arrow=` (Table, RecordBatchReader, pandas) or `images=` (a folder tree;
        ``labels="folder"``). Options: columns={col: tensor}, htypes={tensor: htype},
        on_error="raise"|"skip"|"quarantine", batch_rows, progress, verify (decode media),
        storage_options (of the source), commit (a message: commit when done). Tensor types
        are inferred from the Arrow schema (README, "Ingestion"). All or nothing: a failure
        leaves the dataset as it was. Returns an IngestReport."""
        from plane.ingest._ingest import extend_from

        return extend_from(self._ws, parquet=parquet, arrow=arrow, images=images, **options)

    def _update(self, name: str, positions: np.ndarray, values: Any) -> None:
        """``ds[name][positions] = values``: one small patch chunk, all or nothing."""
        ws = self._ws
        ws.check_writable(f"update tensor {name!r}")
        w = ws.writer(name)
        if len(values) != positions.shape[0]:
            raise SampleError(f"tensor {name!r}: {positions.shape[0]} rows selected but "
                              f"{len(values)} values given; give one value per row")
        if not positions.shape[0]:
            return
        try:
            block, meta, nulls = encode_nullable(w.meta, values, 0)
        except SampleError as e:  # name the dataset row, not the position in this call
            msg = re.sub(r"at row (\d+)", lambda m: f"at row {positions[int(m.group(1))]}",
                         str(e))
            raise SampleError(msg) from None
        null = np.zeros(positions.shape[0], bool)
        null[nulls] = True
        if block is None:  # all None, no value ever written: every row is null already
            ws.mark_null(name, ws.to_physical(positions))
            return
        ws.update(name, ws.to_physical(positions), block, meta, null if nulls.shape[0] else None)

    def delete(self, rows: Any) -> None:
        """Delete rows (int, slice, list, mask) from every tensor; kept by older commits."""
        ws = self._ws
        ws.check_writable("delete rows")
        pos, _ = normalize_index(rows, len(ws))
        if pos.shape[0]:
            ws.delete(ws.to_physical(pos))

    def flush(self) -> None:
        """Make every write durable and the branch point at it (atomic; rebases if needed)."""
        if self.read_only:
            return
        self._ws.publish(None)

    # ---- version control (the common operations; the rest is on ds.versions) ------------
    def commit(self, message: str = "", allow_empty: bool = False) -> str:
        """Record the working state as a commit on the current branch; return its id."""
        return self._versions.commit(message, allow_empty=allow_empty)

    def branch(self, name: str) -> None:
        """Create branch `name` at the current commit (does not switch to it)."""
        self._versions.create_branch(name)

    def checkout(self, version: str, create: bool = False) -> None:
        """Switch to a branch (writable), or a tag / commit id (read-only, detached)."""
        self._versions.checkout(version, create=create)

    def log(self) -> list[dict[str, Any]]:
        """Commits reachable from the current head, newest first."""
        return self._versions.log()

    def diff(self, a: str | None = None, b: str | None = None) -> Diff:
        """Row-level differences between two versions (default: last commit vs working)."""
        return self._versions.diff(a, b)

    def merge(self, other: str, conflicts: str = "fail", message: str | None = None
              ) -> MergeResult:
        """Three-way merge of `other` into the current branch; see VersionControl.merge."""
        return self._versions.merge(other, conflicts=conflicts, message=message)

    def tag(self, name: str, commit: str | None = None, message: str = "") -> None:
        """Tag a commit (default: the current one) with an immutable name."""
        self._versions.tag(name, commit, message)

    # ---- streaming ----------------------------------------------------------------------
    def pytorch(self, batch_size: int = 64, shuffle: bool = True, **options: Any) -> Loader:
        """Batches as dicts of torch tensors (lists for ragged/text): chunk-aware shuffle,
        deterministic per (seed, epoch), resumable, rank-aware; see plane.loader. Streams
        this version as it is now, pending writes included, without publishing them."""
        from plane.loader import make_loader

        return make_loader(self.snapshot(), "torch", batch_size=batch_size, shuffle=shuffle,
                           **options)

    def numpy(self, batch_size: int = 64, shuffle: bool = True, **options: Any) -> Loader:
        """Like pytorch(), yielding dicts of numpy arrays."""
        from plane.loader import make_loader

        return make_loader(self.snapshot(), "numpy", batch_size=batch_size, shuffle=shuffle,
                           **options)

    def jax(self, batch_size: int = 64, shuffle: bool = True, **options: Any) -> Loader:
        """Like pytorch(), yielding dicts of jax arrays (needs jax)."""
        from plane.loader import make_loader

        return make_loader(self.snapshot(), "jax", batch_size=batch_size, shuffle=shuffle,
                           **options)

    def to_ray(self, tensors: Sequence[str] | None = None,
               override_num_blocks: int | None = None) -> Any:
        """This version as a `ray.data.Dataset` read by a Datasource, one block per chunk
        (needs `tensorplane[ray]`; the store must be reachable from the Ray workers)."""
        try:
            from plane.loader._ray import to_ray
        except ImportError as e:
            raise MissingDependencyError(f"ds.to_ray() needs Ray ({e}): pip install "
                                         "'tensorplane[ray]'") from None
        return to_ray(self.snapshot(), tensors, override_num_blocks)

    # ---- export -------------------------------------------------------------------------
    def to_arrow(self, tensors: Sequence[str] | None = None, rows: Any = None,
                 **options: Any) -> Any:
        """This version (or `rows`: an int, slice, list or mask) as a `pyarrow.Table`, types
        the reverse of ingestion (README "Getting data out"). Options: with_row_ids (an
        int64 `_row_id` column), decode (media as arrays, not their encoded bytes),
        batch_rows. `plane.export.to_batches(ds.snapshot(), ...)` streams instead."""
        from plane.export._arrow import to_arrow

        return to_arrow(self.snapshot(), tensors, rows, **options)

    def to_pandas(self, tensors: Sequence[str] | None = None, rows: Any = None,
                  **options: Any) -> Any:
        """`to_arrow(...)` as a pandas DataFrame (class names as a Categorical)."""
        from plane.export._arrow import to_pandas

        return to_pandas(self.snapshot(), tensors, rows, **options)

    def to_hf(self, tensors: Sequence[str] | None = None, streaming: bool = False,
              **options: Any) -> Any:
        """This version as a HuggingFace `datasets.Dataset` (`streaming=True`: an
        `IterableDataset` reading batch by batch); needs `tensorplane[hf]`."""
        from plane.export._hf import to_hf

        return to_hf(self.snapshot(), tensors, streaming=streaming, **options)

    # ---- query --------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None
              ) -> View | AggregateResult:
        """Run a query (vector + scalar + full text in one plan; README "Query"): e.g.
        ``SELECT id, caption, score WHERE labels = 'dog' AND CONTAINS(caption, 'red car')
        ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 10`` with params={"q": vec}.
        Returns a View of the result rows at this version; a grouped query (``SELECT labels,
        COUNT(*) ... GROUP BY labels``) returns an AggregateResult of its groups. Pending
        (unflushed) writes are read, not published: other readers see them after flush() or
        commit()."""
        from plane.query import run_sql

        return run_sql(self.snapshot(), sql, params)

    def search(self) -> Search:
        """The builder face: ``ds.search().where("...").match("caption", "red car")
        .nearest("embedding", vec).limit(10).run()``."""
        from plane.query import Search

        return Search(self.snapshot)

    def explain(self, sql: str | Search, params: Mapping[str, Any] | None = None) -> str:
        """The plan a query runs: filters, indexes used, partitions, exact fallbacks, fusion."""
        from plane.query import explain_sql

        return explain_sql(self.snapshot(), sql, params)

    def create_index(self, tensor: str, kind: str = "hnsw", metric: str = "cosine",
                     **options: Any) -> IndexInfo:
        """Build a vector (faiss: flat, ivf_flat, ivf_pq, hnsw; metric cosine/l2/ip) or
        full-text (bm25) index of `tensor` at the current commit. Options: params (faiss
        settings), partition_rows, progress. Queries on later commits use it for unchanged
        rows and search newer ones exactly; build again to fold them in."""
        from plane.query._indexes import create_index

        # unflushed writes are refused there (commit first), without storing them here
        at = self._ws.view() if self._ws.unflushed else self.snapshot()
        return create_index(at, tensor, kind, metric, **options)

    @property
    def indexes(self) -> Indexes:
        """The indexes this version uses: ``list(ds.indexes)``, ``ds.indexes["emb/hnsw"]``,
        ``ds.indexes.drop(name)``, ``ds.indexes.optimize()``."""
        return Indexes(self)

    # ---- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ws)

    def __contains__(self, name: object) -> bool:
        return name in self._ws.writers

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            self._ws.writer(key)
            return Tensor(self, key)
        pos, scalar = normalize_index(key, len(self))
        return DatasetView(self, pos, scalar)

    def __iter__(self) -> Iterator[DatasetView]:
        for i in range(len(self)):
            yield DatasetView(self, np.array([i], np.int64), True)

    def take_ids(self, row_ids: Any) -> DatasetView:
        """The rows with these stable row ids (from ds.row_ids, a diff, a merge or a query),
        in the given order; ``.positions`` of the result are their row numbers. An id that is
        not a row of this version raises RowNotFoundError (a KeyError) naming it."""
        return DatasetView(self, positions_of(self._ws.view(), row_ids))

    def summary(self) -> str:
        """A table of tensors (htype, dtype, shape, rows, chunks, bytes): a str that a REPL
        shows as the table (print it in a script). It printed and returned the text, which a
        REPL then showed twice."""
        rows = [("tensor", "htype", "dtype", "shape", "compression", "chunks", "bytes")]
        for name, w in self._ws.writers.items():
            t = Tensor(self, name)
            m = w.meta
            comp = m.sample_compression or m.chunk_compression or "none"
            dt = np.dtype(m.dtype).name if m.kind == "array" and m.dtype else str(m.dtype or "?")
            rows.append((name, m.htype, dt, str(t.shape), comp, str(t.num_chunks),
                         _human(w.index.nbytes)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        ws = self._ws
        where = f"branch {ws.branch!r}" if ws.branch else f"commit {ws.commit_id}"
        lines = [f"Dataset {self.url} ({where}, {len(self)} rows)"]
        for j, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        return _Text("\n".join(lines))

    def __repr__(self) -> str:
        ws = self._ws
        where = f"branch={ws.branch!r}" if ws.branch else f"commit={ws.commit_id!r}"
        return f"Dataset({self.url!r}, {where}, rows={len(self)}, tensors={list(ws.writers)})"

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()

    def __del__(self) -> None:
        _warn_unflushed(self)


def _warn_unflushed(ds: Dataset) -> None:
    """Writes that were never flushed are lost: say so (once per dataset handle)."""
    ws = ds.__dict__.get("_ws")
    if ws is None or ws.branch is None or ws.store.read_only or not ws.unflushed:
        return
    ds.__dict__["_ws"] = None  # warn once
    warnings.warn(f"{ws.url} (branch {ws.branch!r}) has writes that were never flushed; they "
                  "are lost. Call ds.flush() or ds.commit(message) before the dataset goes "
                  "away, or use `with plane.open(url) as ds:` (flushes on exit)",
                  ResourceWarning, stacklevel=2)


@atexit.register
def _warn_all_unflushed() -> None:
    for ds in list(_OPEN):
        _warn_unflushed(ds)


def _human(n: int) -> str:
    x = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if x < 1024 or unit == "TB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{n} B"


class _Text(str):
    """A str whose repr is itself, so a REPL shows a table as a table (once)."""

    def __repr__(self) -> str:
        return str(self)
