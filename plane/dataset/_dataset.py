"""Dataset: create/open, tensors, append/extend, indexing, flush. Thin: it composes layers."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from plane._errors import (
    CommitConflictError,
    DatasetExistsError,
    PlaneError,
    ReadOnlyError,
    SampleError,
    SchemaError,
    TensorNotFoundError,
)
from plane.core._layout import (
    DATASET_KEY,
    FORMAT_VERSION,
    RefStore,
    chunk_key,
    read_dataset_info,
    write_dataset_info,
)
from plane.core._reader import DEFAULT_CACHE_BYTES, ChunkReader
from plane.core._state import State, TensorPart
from plane.core._writer import TensorWriter
from plane.dataset._indexing import normalize_index
from plane.dataset._tensor import Tensor
from plane.dataset._view import DatasetView
from plane.format._codecs import encode_batch
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta
from plane.storage import ReadOnlyStore, Store, open_store

__all__ = ["Dataset", "create", "open_dataset"]

_MAX_REBASES = 50


class Dataset:
    """A versioned collection of named tensors in a Store. Use `plane.create` / `plane.open`."""

    def __init__(self, store: Store, branch: str, read_only: bool,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self._store = ReadOnlyStore(store) if read_only and not store.read_only else store
        self._info = read_dataset_info(self._store)
        self._refs = RefStore(self._store)
        self._branch = branch
        self._reader = ChunkReader(self._store, cache_bytes)
        self._load_head()

    # ---- loading ------------------------------------------------------------------------
    def _load_head(self) -> None:
        head = self._refs.head(self._branch)
        if head is None:
            raise PlaneError(f"{self.url} has no branch {self._branch!r}; branches: "
                             f"{', '.join(self._refs.branches()) or '(none)'}")
        self._seq, rec = head
        self._set_base(rec["state"], State.load(self._store, rec["state"]))

    def _set_base(self, key: str, state: State) -> None:
        self._base_key = key
        self._base = state
        self._writers: dict[str, TensorWriter] = {}
        self._part_keys = dict(state.tensors)
        for name, pkey in state.tensors.items():
            part = TensorPart.load(self._store, pkey)
            self._writers[name] = TensorWriter(part.meta, part.index.copy(), self._reader)
        self._base_entries = {n: w.index.num_entries for n, w in self._writers.items()}
        self._base_meta = {n: w.meta for n, w in self._writers.items()}
        self._created: set[str] = set()
        self._length = state.length
        self._row_ids = state.row_ids.copy()
        self._next_row_id = state.next_row_id

    # ---- properties ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._store.url

    @property
    def store(self) -> Store:
        return self._store

    @property
    def read_only(self) -> bool:
        return self._store.read_only

    @property
    def branch(self) -> str:
        return self._branch

    @property
    def tensors(self) -> dict[str, Tensor]:
        return {n: Tensor(self, n) for n in self._writers}

    @property
    def row_ids(self) -> np.ndarray:
        """Stable row id of every row, in row order."""
        return self._row_ids.take(np.arange(self._length, dtype=np.int64))

    def _writer(self, name: str) -> TensorWriter:
        try:
            return self._writers[name]
        except KeyError:
            raise TensorNotFoundError(self._no_tensor(name)) from None

    def _no_tensor(self, name: str) -> str:
        have = ", ".join(self._writers) or "(none)"
        return (f"no tensor {name!r} in {self.url}; tensors: {have}; create it with "
                f"ds.create_tensor({name!r}, ...)")

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"cannot {what}: {self.url} is open read-only; open it with "
                                "plane.open(url, read_only=False)")

    # ---- schema -------------------------------------------------------------------------
    def create_tensor(self, name: str, htype: str = "generic", dtype: Any = None,
                      shape: Any = None, max_shape: Any = None,
                      sample_compression: str | None = None, chunk_compression: Any = "auto",
                      class_names: Sequence[str] = (), chunk_bytes: int | None = None) -> Tensor:
        """Add a tensor. Rows that already exist read as empty samples in it."""
        self._check_writable(f"create tensor {name!r}")
        if name in self._writers:
            raise SchemaError(f"tensor {name!r} already exists in {self.url}")
        meta = TensorMeta.build(name, htype, dtype, shape, max_shape, sample_compression,
                                chunk_compression, class_names, chunk_bytes)
        w = TensorWriter(meta, ChunkIndex(), self._reader)
        w.add_fill(self._length)
        w.dirty = True
        self._writers[name] = w
        self._created.add(name)
        self._base_entries[name] = w.index.num_entries
        return Tensor(self, name)

    # ---- writing ------------------------------------------------------------------------
    def append(self, sample: Mapping[str, Any]) -> None:
        """Add one row: ``{"tensor": value, ...}`` with a value for every tensor."""
        self.extend({k: [v] for k, v in sample.items()})

    def extend(self, columns: Mapping[str, Any]) -> None:
        """Add rows column-wise: ``{"tensor": [values...], ...}``; all or nothing."""
        self._check_writable("extend")
        if not isinstance(columns, Mapping):
            raise SampleError("extend takes a dict of columns {tensor: [values, ...]}; "
                              "for one row use ds.append({tensor: value})")
        unknown = [k for k in columns if k not in self._writers]
        if unknown:
            raise TensorNotFoundError(self._no_tensor(unknown[0]))
        missing = [k for k in self._writers if k not in columns]
        if missing:
            raise SampleError(f"no values for tensor(s) {', '.join(map(repr, missing))}; give "
                              "every tensor a value per row (None stores an empty sample)")
        lengths = {k: len(v) for k, v in columns.items()}
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
            raise SampleError(f"column lengths differ: {desc}; give every tensor the same "
                              "number of samples")
        n = next(iter(lengths.values()), 0)
        if n == 0:
            return
        row0 = self._length
        plans = {}
        for name, values in columns.items():
            w = self._writers[name]
            block, meta = encode_batch(w.meta, values, row0)
            plans[name] = w.plan(block, meta)
        chunks = {chunk_key(k): v for p in plans.values() for k, v in p.chunks.items()}
        self._store.put_many(chunks)
        for name, plan in plans.items():
            self._writers[name].apply(plan)
        self._row_ids.append(self._next_row_id, n)
        self._next_row_id += n
        self._length += n

    def flush(self) -> None:
        """Make every write durable and the branch head point at it (atomic, rebases if needed).
        """
        if self.read_only:
            return
        changed = [n for n, w in self._writers.items() if w.dirty]
        if not changed and set(self._writers) == set(self._base.tensors):
            return
        pending: dict[str, bytes] = {}
        taken: dict[str, list[str]] = {}
        for name in changed:
            got = self._writers[name].take_unwritten()
            pending.update({chunk_key(k): v for k, v in got.items()})
            taken[name] = list(got)
        self._store.put_many(pending)
        for name, keys in taken.items():
            self._writers[name].stored(keys)
        self._publish()

    def _state_from_writers(self, base_key: str) -> State:
        tensors = {}
        for name, w in self._writers.items():
            if w.dirty or name not in self._part_keys:
                self._part_keys[name] = TensorPart(w.meta, w.index).save(self._store)
            tensors[name] = self._part_keys[name]
        return State(tensors, self._length, self._row_ids.copy(), self._next_row_id, base_key)

    def _publish(self) -> None:
        for _ in range(_MAX_REBASES):
            state = self._state_from_writers(self._base_key)
            key = state.save(self._store)
            if self._refs.advance(self._branch, self._seq + 1, {"state": key}):
                self._seq += 1
                self._accept(key, state)
                return
            self._rebase()
        raise CommitConflictError(f"could not move branch {self._branch!r} of {self.url} after "
                                  f"{_MAX_REBASES} attempts: too many concurrent writers")

    def _accept(self, key: str, state: State) -> None:
        self._base_key, self._base = key, state
        for w in self._writers.values():
            w.dirty = False
        self._base_entries = {n: w.index.num_entries for n, w in self._writers.items()}
        self._base_meta = {n: w.meta for n, w in self._writers.items()}
        self._created = set()

    def _rebase(self) -> None:
        """Replay our appended rows on top of the branch head another writer just moved."""
        head = self._refs.head(self._branch)
        assert head is not None
        seq, rec = head
        theirs = State.load(self._store, rec["state"])
        ours_n = self._length - self._base.length
        new_writers: dict[str, TensorWriter] = {}
        for name, pkey in theirs.tensors.items():
            tpart = TensorPart.load(self._store, pkey)
            index = tpart.index.copy()
            meta = tpart.meta
            if name in self._created:
                raise CommitConflictError(f"tensor {name!r} was created concurrently on branch "
                                          f"{self._branch!r}; reopen the dataset and retry")
            if name in self._writers:
                w = self._writers[name]
                meta = _merge_meta(self._base_meta[name], meta, w.meta, self._branch)
                _append_entries(index, w.index, self._base_entries[name])
            else:
                index.append(ours_n)
            new_writers[name] = TensorWriter(meta, index, self._reader)
            new_writers[name].dirty = True
        for name in self._created:
            w = self._writers[name]
            index = ChunkIndex()
            index.append(theirs.length) if theirs.length else None
            _append_entries(index, w.index, self._base_entries[name])
            new_writers[name] = TensorWriter(w.meta, index, self._reader)
            new_writers[name].dirty = True
        self._seq = seq
        self._base_key, self._base = rec["state"], theirs
        self._writers = new_writers
        self._part_keys = dict(theirs.tensors)
        self._base_entries = {n: w.index.num_entries for n, w in self._writers.items()}
        self._length = theirs.length + ours_n
        self._row_ids = theirs.row_ids.copy()
        self._row_ids.append(theirs.next_row_id, ours_n)
        self._next_row_id = theirs.next_row_id + ours_n

    # ---- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._length

    def __contains__(self, name: object) -> bool:
        return name in self._writers

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            self._writer(key)
            return Tensor(self, key)
        pos, scalar = normalize_index(key, self._length)
        return DatasetView(self, pos, scalar)

    def __iter__(self) -> Iterator[DatasetView]:
        for i in range(self._length):
            yield DatasetView(self, np.array([i], np.int64), True)

    def summary(self) -> str:
        """A table of tensors (htype, dtype, shape, rows, chunks, bytes); also printed."""
        rows = [("tensor", "htype", "dtype", "shape", "compression", "chunks", "bytes")]
        for name, w in self._writers.items():
            t = Tensor(self, name)
            m = w.meta
            comp = m.sample_compression or m.chunk_compression or "none"
            dt = np.dtype(m.dtype).name if m.kind == "array" and m.dtype else str(m.dtype or "?")
            rows.append((name, m.htype, dt, str(t.shape), comp,
                         str(t.num_chunks), _human(w.index.nbytes)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [f"Dataset {self.url} (branch {self._branch!r}, {self._length} rows)"]
        for j, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        text = "\n".join(lines)
        print(text)
        return text

    def __repr__(self) -> str:
        return (f"Dataset({self.url!r}, branch={self._branch!r}, rows={self._length}, "
                f"tensors={list(self._writers)})")

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()


def _human(n: int) -> str:
    x = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if x < 1024 or unit == "TB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{n} B"


def _append_entries(dst: ChunkIndex, src: ChunkIndex, start: int) -> None:
    for e in range(start, src.num_entries):
        dst.append(int(src.rows[e]), src.entry_keys(e), src.entry_nbytes(e))


def _merge_meta(base: TensorMeta, theirs: TensorMeta, ours: TensorMeta, branch: str
                ) -> TensorMeta:
    """Combine what two writers learned about a tensor (dtype, ndim, class names)."""
    out = theirs
    for field_ in ("dtype", "ndim"):
        a, b = getattr(theirs, field_), getattr(ours, field_)
        if a is None:
            out = out.evolve(**{field_: b})
        elif b is not None and a != b:
            raise CommitConflictError(f"tensor {theirs.name!r}: concurrent writers on branch "
                                      f"{branch!r} stored {field_} {a} and {b}")
    tn, on = theirs.class_names, ours.class_names
    if tn[: len(on)] == on or on[: len(tn)] == tn:
        out = out.evolve(class_names=tn if len(tn) >= len(on) else on)
    else:
        raise CommitConflictError(f"tensor {theirs.name!r}: concurrent writers on branch "
                                  f"{branch!r} added different class names; reopen and retry")
    return out


def create(url: str | os.PathLike[str] | Store, overwrite: bool = False,
           storage_options: Mapping[str, Any] | None = None,
           cache_bytes: int = DEFAULT_CACHE_BYTES) -> Dataset:
    """Create an empty dataset at `url` (a path, ``mem://name``, ``s3://bucket/prefix`` ...)."""
    store = open_store(url, storage_options)
    if store.exists(DATASET_KEY):
        if not overwrite:
            raise DatasetExistsError(f"a dataset already exists at {store.url}; open it with "
                                     "plane.open(url) or pass overwrite=True to replace it")
        read_dataset_info(store)  # only ever wipe something that is a dataset
        store.delete(DATASET_KEY)
        store.delete_prefix("")
    elif next(iter(store.list("")), None) is not None:
        raise DatasetExistsError(f"{store.url} is not empty and holds no tensorplane dataset; "
                                 "choose an empty location")
    refs = RefStore(store)
    key = State().save(store)
    if not refs.advance("main", 0, {"state": key}):
        raise DatasetExistsError(f"another process is creating a dataset at {store.url}")
    write_dataset_info(store, {"format": "tensorplane", "format_version": FORMAT_VERSION,
                               "created": time.time(), "default_branch": "main"})
    return Dataset(store, "main", read_only=False, cache_bytes=cache_bytes)


def open_dataset(url: str | os.PathLike[str] | Store, read_only: bool = False,
                 version: str | None = None, storage_options: Mapping[str, Any] | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES) -> Dataset:
    """Open an existing dataset at `url`; `version` names a branch (default: main)."""
    store = open_store(url, storage_options)
    info = read_dataset_info(store)
    return Dataset(store, version or info.get("default_branch", "main"), read_only,
                   cache_bytes)
