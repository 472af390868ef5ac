"""Dataset: create/open, tensors, append/extend/update/delete, indexing, flush, versions.

Thin: storage, format, version control and reading live in their own layers; this class holds
the working state of one branch (or a read-only commit) and composes them.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import (
    CommitConflictError,
    DatasetExistsError,
    PlaneError,
    ReadOnlyError,
    SampleError,
    SchemaError,
    StoreError,
    TensorNotFoundError,
)
from plane.core._layout import (
    DATASET_KEY,
    DATASET_PREFIXES,
    FORMAT_VERSION,
    RefStore,
    chunk_key,
    read_dataset_info,
    sealed_format,
    write_dataset_info,
)
from plane.core._reader import (
    DEFAULT_CACHE_BYTES,
    ChunkReader,
    PatchMap,
    read_samples,
    read_shapes,
)
from plane.core._state import Patch, State, TensorPart, new_row_id_base
from plane.core._writer import TensorWriter
from plane.dataset._indexing import normalize_index
from plane.dataset._links import LinkResolver, decode_linked
from plane.dataset._tensor import Tensor
from plane.dataset._view import DatasetView
from plane.format._codecs import Block, check_column, encode_batch
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta
from plane.storage import ReadOnlyStore, Store, open_store

if TYPE_CHECKING:
    from plane.core._fragment import Fragment
    from plane.ingest import IngestReport
    from plane.loader import Loader
    from plane.query import IndexInfo, Search, View
    from plane.version import Diff, MergeResult, VersionControl

__all__ = ["Dataset", "create", "open_dataset"]

#: patch chunks up to this size are kept inside the tensor's part (one object fewer per
#: small update; format version 2)
INLINE_PATCH_BYTES = 2048
#: when a working state first updates a tensor whose base lists this many patches, they are
#: folded into one (newest value per row), so a part (rewritten by every commit that touches
#: the tensor) stays small
PATCH_COMPACT_AT = 32

#: a writer that keeps losing the race for the branch ref gives up (CommitConflictError "too
#: many concurrent writers") only after this many attempts *and* this many seconds
_MAX_REBASES = 50
_RETRY_SECONDS = 120.0
#: after each lost race a writer waits uniform(0, min(cap, base * 2**losses)) seconds: full
#: jitter spreads racing writers out, so they take turns instead of colliding again
_BACKOFF_BASE = 0.002
_BACKOFF_CAP = 0.25
_JITTER = random.SystemRandom()  # no shared seed across forked processes


class Dataset:
    """A versioned collection of named tensors in a Store. Use `plane.create` / `plane.open`."""

    def __init__(self, store: Store, version: str | None, read_only: bool,
                 cache_bytes: int = DEFAULT_CACHE_BYTES,
                 link_storage_options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self._store = ReadOnlyStore(store) if read_only and not store.read_only else store
        self._info = read_dataset_info(self._store)
        self._refs = RefStore(self._store, int(self._info.get("format_version", 1)))
        self._reader = ChunkReader(self._store, cache_bytes, sealed_format(self._info))
        own = getattr(store, "storage_options", None)
        self._links = LinkResolver(link_storage_options, (store.url.split("://")[0], own)
                                   if own is not None else None)
        self._id_next = -1
        self._id_left = 0
        from plane.version import VersionControl

        self._versions = VersionControl(self)
        self._versions._goto(version or self._info.get("default_branch", "main"))

    # ---- loading ------------------------------------------------------------------------
    def _set_base(self, branch: str | None, seq: int, commit_id: str | None, key: str,
                  state: State) -> None:
        """Make `state` the base of an empty working state (on `branch`, or detached)."""
        self._branch = branch
        self._seq = seq
        self._commit_id = commit_id
        self._base_key = key
        self._base = state
        self._base_parts = {n: TensorPart.load(self._store, k) for n, k in state.tensors.items()}
        self._writers: dict[str, TensorWriter] = {
            n: TensorWriter(p.meta, p.index.copy(), self._reader, p.patches)
            for n, p in self._base_parts.items()}
        self._part_keys = dict(state.tensors)
        self._mark_clean()
        self._physical = state.physical
        self._row_ids = state.row_ids.copy()
        self._deleted = state.deleted
        self._live: np.ndarray | None = None

    def _mark_clean(self) -> None:
        for w in self._writers.values():
            w.dirty = False
        self._base_entries = {n: w.index.num_entries for n, w in self._writers.items()}
        self._base_npatches = {n: len(w.patches) for n, w in self._writers.items()}
        self._created: set[str] = set()
        self._dropped: set[str] = set()
        self.__dict__.pop("_base_folds", None)  # folds of the previous base's patches

    # ---- properties ---------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self._store.url

    @property
    def store(self) -> Store:
        return self._store

    @property
    def read_only(self) -> bool:
        return self._store.read_only or self._branch is None

    @property
    def current_branch(self) -> str | None:
        """The checked-out branch, or None when a commit or tag is checked out (detached)."""
        return self._branch

    @property
    def commit_id(self) -> str | None:
        """The commit the working state is based on (None before the first commit)."""
        return self._commit_id

    @property
    def versions(self) -> VersionControl:
        """Version control: commit, branches, tags, log, diff, merge, checkout."""
        return self._versions

    @property
    def has_changes(self) -> bool:
        """True if the working state differs from its commit (flushed or not)."""
        if self._unflushed:
            return True
        if self._commit_id is None:
            return bool(self._base.tensors)
        return self._commit_state(self._commit_id) != self._base_key

    @property
    def _unflushed(self) -> bool:
        """True if the in-memory working state differs from `_base_key` (not yet flushed)."""
        return bool(any(w.dirty for w in self._writers.values()) or self._created
                    or self._dropped or (self._deleted is not self._base.deleted
                                         and not np.array_equal(self._deleted,
                                                                self._base.deleted)))

    @property
    def tensors(self) -> dict[str, Tensor]:
        return {n: Tensor(self, n) for n in self._writers}

    @property
    def row_ids(self) -> np.ndarray:
        """Stable row id of every row, in row order."""
        return self._row_ids.take(self._to_physical(np.arange(len(self), dtype=np.int64)))

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
        if self._store.read_only:
            raise ReadOnlyError(f"cannot {what}: {self.url} is open read-only; open it with "
                                "plane.open(url, read_only=False)")
        if self._branch is None:
            raise ReadOnlyError(f"cannot {what}: commit {self._commit_id} is checked out "
                                "(detached, read-only); checkout a branch, or create one here "
                                "with ds.branch(name)")

    # ---- positions ----------------------------------------------------------------------
    def _to_physical(self, positions: np.ndarray) -> np.ndarray:
        if not self._deleted.shape[0]:
            return positions
        if self._live is None:
            mask = np.ones(self._physical, bool)
            mask[self._deleted] = False
            self._live = np.flatnonzero(mask).astype(np.int64)
        out: np.ndarray = self._live[positions]
        return out

    def _read(self, name: str, positions: np.ndarray, decode: bool, aslist: bool,
              links: bool = True) -> Any:
        w = self._writer(name)
        w.seal()
        out = read_samples(self._reader, w.meta, w.index, self._to_physical(positions),
                           decode, aslist, w.patch_map())
        inner = w.meta.link
        if inner is None or not links:
            return out
        where = [f"tensor {name!r}, row {int(p)}" for p in positions]
        out = list(out)
        datas = self._links.fetch_many(out, where)
        if not decode:
            return [d if d is not None else b"" for d in datas]
        from plane.core._reader import _io_pool

        vals = list(_io_pool().map(decode_linked, [inner] * len(out), out, datas, where)) \
            if len(out) > 4 else [decode_linked(inner, u, d, x)
                                  for u, d, x in zip(out, datas, where)]
        if not aslist and vals and all(isinstance(v, np.ndarray) for v in vals) and \
                len({v.shape for v in vals}) == 1:
            return np.stack(vals)
        return vals

    def _shapes(self, name: str, positions: np.ndarray) -> np.ndarray:
        w = self._writer(name)
        w.seal()
        return read_shapes(self._reader, w.meta, w.index, self._to_physical(positions),
                           w.patch_map())

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
        self._add_tensor(meta)
        return Tensor(self, name)

    def _add_tensor(self, meta: TensorMeta) -> None:
        w = TensorWriter(meta, ChunkIndex(), self._reader)
        w.add_fill(self._physical)
        w.dirty = True
        self._writers[meta.name] = w
        self._created.add(meta.name)
        self._dropped.discard(meta.name)
        self._base_entries[meta.name] = w.index.num_entries
        self._base_npatches[meta.name] = 0

    def delete_tensor(self, name: str) -> None:
        """Remove a tensor from this branch (its chunks stay for older commits)."""
        self._check_writable(f"delete tensor {name!r}")
        self._writer(name)
        del self._writers[name]
        if name in self._created:
            self._created.discard(name)
        else:
            self._dropped.add(name)

    # ---- writing ------------------------------------------------------------------------
    def _alloc_ids(self, n: int) -> np.ndarray:
        if self._id_left < n:
            self._id_next, self._id_left = new_row_id_base(), 1 << 40
        ids = np.arange(self._id_next, self._id_next + n, dtype=np.int64)
        self._id_next += n
        self._id_left -= n
        return ids

    def append(self, sample: Mapping[str, Any]) -> None:
        """Add one row: ``{"tensor": value, ...}`` with a value for every tensor."""
        if not isinstance(sample, Mapping):
            raise SampleError("append takes one row as a dict {tensor: value}")
        self.extend({k: [v] for k, v in sample.items()})

    def extend(self, columns: Mapping[str, Any], *, _row_ids: np.ndarray | None = None) -> None:
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
        for k, v in columns.items():
            check_column(k, v)
        lengths = {k: len(v) for k, v in columns.items()}
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
            raise SampleError(f"column lengths differ: {desc}; give every tensor the same "
                              "number of samples")
        n = next(iter(lengths.values()), 0)
        if n == 0:
            return
        row0 = len(self)
        plans = {}
        for name, values in columns.items():
            w = self._writers[name]
            block, meta = encode_batch(w.meta, values, row0)
            plans[name] = w.plan(block, meta)
        chunks = {chunk_key(k): v for p in plans.values() for k, v in p.chunks.items()}
        self._store.put_many(chunks)
        for name, plan in plans.items():
            self._writers[name].apply(plan)
        self._row_ids.extend_ids(_row_ids if _row_ids is not None else self._alloc_ids(n))
        self._physical += n
        self._live = None

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

        return extend_from(self, parquet=parquet, arrow=arrow, images=images, **options)

    def materialize(self, name: str, batch_rows: int = 256) -> None:
        """Copy the objects a ``link[...]`` tensor points to into chunks: the tensor becomes
        a stored tensor of the linked htype (same rows, same name), its bytes kept as they
        are (JPEG stays JPEG). All or nothing: a missing or undecodable object raises, naming
        its row and URI, and the tensor is left as it was. Commit afterwards."""
        self._check_writable(f"materialize {name!r}")
        w = self._writer(name)
        inner = w.meta.link
        if inner is None:
            raise SchemaError(f"tensor {name!r} is {w.meta.htype}, not a link[...] tensor; "
                              "only link tensors can be materialized")
        from plane.core._fragment import FragmentWriter
        from plane.dataset._links import compression_of

        w.seal()
        phys = np.arange(self._physical, dtype=np.int64)
        dead = np.zeros(self._physical, bool)
        dead[self._deleted] = True
        uris = list(read_samples(self._reader, w.meta, w.index, phys, True, True,
                                 w.patch_map()))
        fw: FragmentWriter | None = None
        comp: str | None = None
        for s in range(0, len(uris), batch_rows):
            part = [None if dead[s + i] else u for i, u in enumerate(uris[s:s + batch_rows])]
            where = [f"tensor {name!r}, row {s + i}" for i in range(len(part))]
            datas = self._links.fetch_many(part, where)
            for u, d, x in zip(part, datas, where):
                if d is None or inner == "binary":
                    continue
                c = compression_of(str(u), d)
                if comp is None:
                    comp = c
                elif c != comp:
                    raise SampleError(f"{x}: {u} is {c}, earlier rows are {comp}: one "
                                      "tensor keeps one compression; re-encode the outliers")
            if fw is None:
                meta = TensorMeta.build(name, inner, sample_compression=None
                                        if inner == "binary" else comp,
                                        chunk_bytes=w.meta.chunk_bytes)
                fw = FragmentWriter(self._store, f"materialize-{name}", {name: meta},
                                    self._reader.footer_sums)
            fw.add(fw.encode({name: datas}))
        if fw is None:  # no rows: just the new schema
            meta = TensorMeta.build(name, inner, chunk_bytes=w.meta.chunk_bytes,
                                    sample_compression=None if inner != "image" else "jpeg")
            fw = FragmentWriter(self._store, f"materialize-{name}", {name: meta},
                                self._reader.footer_sums)
        frag = fw.finish()
        new = TensorWriter(TensorMeta.from_dict(frag.metas[name]), ChunkIndex(), self._reader)
        for rows, keys, sizes in frag.entries[name]:
            new.index.append(rows, keys, sizes)
        new.dirty = True
        self._writers[name] = new
        self._created.add(name)
        self._base_entries[name] = 0
        self._base_npatches[name] = 0

    def apply_fragments(self, fragments: Sequence[Fragment]) -> int:
        """Append rows that workers already wrote as fragments (see plane.write_fragment), in
        the given order; returns the number of rows added. Commit afterwards."""
        self._check_writable("apply fragments")
        names = set(self._writers)
        for f in fragments:
            if set(f.metas) != names:
                raise SchemaError(f"fragment {f.fragment_id} has tensors {sorted(f.metas)}, the "
                                  f"dataset has {sorted(names)}")
        metas = {n: w.meta for n, w in self._writers.items()}
        for f in fragments:  # validate every schema before changing anything
            for n in names:
                metas[n] = _fragment_meta(metas[n], TensorMeta.from_dict(f.metas[n]),
                                          f.fragment_id)
        total = 0
        for f in fragments:
            for n, w in self._writers.items():
                w.seal()
                w.reopenable = None
                for rows, keys, sizes in f.entries[n]:
                    w.index.append(rows, keys, sizes)
                w.meta = metas[n]
                w.dirty = True
            self._row_ids.extend_ids(self._alloc_ids(f.rows))
            self._physical += f.rows
            total += f.rows
        self._live = None
        return total

    def _update(self, name: str, positions: np.ndarray, values: Any) -> None:
        """``ds[name][positions] = values``: one small patch chunk, all or nothing."""
        self._check_writable(f"update tensor {name!r}")
        w = self._writer(name)
        if len(values) != positions.shape[0]:
            raise SampleError(f"tensor {name!r}: {positions.shape[0]} rows selected but "
                              f"{len(values)} values given; give one value per row")
        if not positions.shape[0]:
            return
        try:
            block, meta = encode_batch(w.meta, values, 0)
        except SampleError as e:  # name the dataset row, not the position in this call
            msg = re.sub(r"at row (\d+)", lambda m: f"at row {positions[int(m.group(1))]}",
                         str(e))
            raise SampleError(msg) from None
        phys = self._to_physical(positions)
        order = np.argsort(phys, kind="stable")
        if not np.all(order == np.arange(order.shape[0])):
            block = _reorder(block, order)
            phys = phys[order]
        if len(w.patches) >= PATCH_COMPACT_AT and \
                len(w.patches) == self._base_npatches.get(name, -1):
            self._fold_base_patches(name)  # before our first patch of this working state
        self._add_patch(w, phys, block, meta)

    def _add_patch(self, w: TensorWriter, phys: np.ndarray, block: Block, meta: TensorMeta
                   ) -> None:
        patch, data = w.plan_patch(phys, block, meta)
        if len(data) <= INLINE_PATCH_BYTES and int(self._info.get("format_version", 1)) >= 2:
            patch = Patch(patch.key, patch.nbytes, patch.rows, data)  # lives in the part
        else:
            self._store.put(chunk_key(patch.key), data)
        w.apply_patch(patch, data, meta)

    def _fold_base_patches(self, name: str) -> None:
        """Replace the patches this working state started from with one patch holding the
        newest value of each row they touch (same values; a bounded part). Only the base's
        patches are folded, so what this writer changed stays a patch list of its own, and a
        concurrent writer that folded the same base produced the same patch (same key)."""
        w = self._writers[name]
        folded = _fold(self._reader, w.meta, w.index, w.patches)
        if folded is None:
            return
        rows, block, meta = folded
        w.set_patches([])
        self._add_patch(w, rows, block, meta)
        self._base_npatches[name] = 1
        self.__dict__.setdefault("_base_folds", {})[name] = w.patches[0].key

    def _base_fold_key(self, name: str) -> str | None:
        """The key of the fold of this working state's base patches of `name`."""
        known: dict[str, str] = self.__dict__.get("_base_folds", {})
        if name in known:
            return known[name]
        part = self._base_parts.get(name)
        if part is None or not part.patches:
            return None
        w = self._writers.get(name)
        if w is None:
            return None
        folded = _fold(self._reader, part.meta, part.index, part.patches)
        if folded is None:
            return None
        rows, block, meta = folded
        return w.plan_patch(rows, block, meta)[0].key

    def delete(self, rows: Any) -> None:
        """Delete rows (int, slice, list, mask) from every tensor; kept by older commits."""
        self._check_writable("delete rows")
        pos, _ = normalize_index(rows, len(self))
        if not pos.shape[0]:
            return
        phys = self._to_physical(pos)
        self._deleted = np.union1d(self._deleted, phys).astype(np.int64)
        self._live = None

    def flush(self) -> None:
        """Make every write durable and the branch point at it (atomic; rebases if needed)."""
        if self.read_only:
            return
        self._publish(None)

    def _store_pending(self) -> None:
        pending: dict[str, bytes] = {}
        taken: dict[str, list[str]] = {}
        for name, w in self._writers.items():
            got = w.take_unwritten()
            pending.update({chunk_key(k): v for k, v in got.items()})
            taken[name] = list(got)
        self._store.put_many(pending)
        for name, keys in taken.items():
            self._writers[name].stored(keys)

    def _working_state(self) -> State:
        tensors = {}
        for name, w in self._writers.items():
            if w.dirty or name not in self._part_keys:
                self._part_keys[name] = TensorPart(w.meta, w.index, w.patches).save(self._store)
            tensors[name] = self._part_keys[name]
        return State(tensors, self._physical, self._row_ids.copy(), self._deleted,
                     version=int(self._info.get("format_version", 1)))

    def _publish(self, message: str | None, parents: Sequence[str] = (),
                 allow_empty: bool = False) -> str | None:
        """Store pending chunks, write the working state and move the branch ref to it,
        with a new commit when `message` is given. Returns the commit id (or None)."""
        from plane.core._state import Commit

        self._store_pending()
        started = time.monotonic()
        for attempt in itertools.count():
            state = self._working_state()
            key = state.save(self._store)
            commit_id = self._commit_id
            if message is not None:
                prev = self._commit_state(commit_id)
                if key == prev and not allow_empty and not parents:
                    raise PlaneError("nothing to commit: the working state equals commit "
                                     f"{commit_id}; pass allow_empty=True for an empty commit")
                own = (commit_id,) if commit_id else ()
                commit_id = Commit(key, own + tuple(parents), message, _author(),
                                   time.time()).save(self._store).id
            elif key == self._base_key:
                return commit_id
            assert self._branch is not None
            rec = {"commit": commit_id, "state": key}
            if self._refs.advance(self._branch, self._seq + 1, rec):
                self._seq += 1
                self._commit_id = commit_id
                if message is not None:  # a new commit: its state is the one just written
                    self.__dict__.setdefault("_commit_states", {})[commit_id] = key
                self._base_key, self._base = key, state
                self._base_parts = {n: TensorPart(w.meta, w.index.copy(), list(w.patches))
                                    for n, w in self._writers.items()}
                self._mark_clean()
                return commit_id
            waited = time.monotonic() - started
            if attempt + 1 >= _MAX_REBASES and waited >= _RETRY_SECONDS:
                raise CommitConflictError(
                    f"could not move branch {self._branch!r} of {self.url} after {attempt + 1} "
                    f"attempts in {waited:.0f} s: too many concurrent writers; nothing was "
                    "written. Retry later, or write to separate branches and merge")
            time.sleep(_JITTER.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** attempt)))
            self._rebase()
        raise AssertionError("unreachable")

    def _changed_since_base(self, name: str, theirs: TensorPart, rows: np.ndarray
                            ) -> np.ndarray:
        """Those of the shared physical `rows` whose newest value in `theirs` differs from
        the one in this working state's base (values, as diff and merge compare them)."""
        if not rows.shape[0]:
            return rows
        got = []
        for part in (self._base_parts[name], theirs):
            self._reader.inline.update((p.key, p.data) for p in part.patches
                                       if p.data is not None)
            pm = PatchMap.build(part.patches) if part.patches else None
            raw = part.meta.sample_compression is not None
            got.append(list(read_samples(self._reader, part.meta, part.index, rows, not raw,
                                         True, pm)))
        differ = [i for i, (a, b) in enumerate(zip(*got)) if not _same_value(a, b)]
        return rows[np.asarray(differ, np.int64)] if differ else np.zeros(0, np.int64)

    def _commit_state(self, commit_id: str | None) -> str | None:
        """The state key of a commit (cached: commits are immutable)."""
        from plane.core._state import Commit

        if commit_id is None:
            return None
        cache = self.__dict__.setdefault("_commit_states", {})
        if commit_id not in cache:
            cache[commit_id] = Commit.load(self._store, commit_id).state
        return cache[commit_id]  # type: ignore[no-any-return]

    def _rebase(self) -> None:
        """Replay this writer's changes on top of the branch head another writer just moved.

        Appended rows move after theirs; patches and deletes on shared rows are kept; a row
        both sides changed (or one deleted and the other updated) is a CommitConflictError.
        """
        assert self._branch is not None
        head = self._refs.head(self._branch)
        if head is None:
            raise CommitConflictError(f"branch {self._branch!r} was deleted concurrently")
        seq, rec = head
        theirs = State.load(self._store, rec["state"])
        base = self._base
        shift = theirs.physical - base.physical
        ours_n = self._physical - base.physical
        if shift < 0:
            raise CommitConflictError(f"branch {self._branch!r} was compacted concurrently; "
                                      "reopen the dataset and redo the change")

        def moved(rows: np.ndarray) -> np.ndarray:
            return np.where(rows >= base.physical, rows + shift, rows)

        def shared(rows: np.ndarray) -> np.ndarray:
            """Rows both sides had: each side's appended rows (numbered from base.physical
            on both sides) are its own and can clash with nothing."""
            return rows[rows < base.physical]

        our_del_all = np.setdiff1d(self._deleted, base.deleted)
        our_del = shared(our_del_all)
        their_del = np.setdiff1d(theirs.deleted, base.deleted)
        conflicts: dict[str, list[int]] = {}
        their_parts = {n: TensorPart.load(self._store, k) for n, k in theirs.tensors.items()}
        our_changed = {n: shared(_patch_rows(w.patches[self._base_npatches[n]:]))
                       for n, w in self._writers.items() if n in self._base_npatches}
        their_touched: dict[str, np.ndarray] = {}
        for name, tp in their_parts.items():
            base_p = self._base_parts[name].patches if name in self._base_parts else []
            nb = len(base_p)
            touched = _patch_rows(tp.patches[nb:])
            if [p.key for p in tp.patches[:nb]] != [p.key for p in base_p]:
                if tp.patches and tp.patches[0].key == self._base_fold_key(name):
                    touched = _patch_rows(tp.patches[1:])  # they folded our base: same values
                else:  # the base's patches were rewritten (a fold of a later base): of the
                    # rows we changed too, those whose value they changed count
                    mine = np.union1d(our_changed.get(name, np.zeros(0, np.int64)), our_del)
                    touched = self._changed_since_base(
                        name, tp, np.intersect1d(_patch_rows(tp.patches), mine))
            their_touched[name] = touched
        new_writers: dict[str, TensorWriter] = {}
        same: set[str] = set()  # tensors this writer left as they were: their part is ours
        base_entries: dict[str, int] = {}
        base_npatches: dict[str, int] = {}
        for name, tp in their_parts.items():
            if name in self._created:
                raise CommitConflictError(f"tensor {name!r} was created concurrently on branch "
                                          f"{self._branch!r}; reopen the dataset and retry")
            if name in self._dropped:
                continue  # we deleted this tensor; their changes to it go with it
            index = tp.index.copy()
            meta, patches = tp.meta, list(tp.patches)
            if name in self._writers:
                w = self._writers[name]
                meta = _merge_meta(self._base_parts[name].meta, meta, w.meta, self._branch)
                base_entries[name], base_npatches[name] = index.num_entries, len(patches)
                _append_entries(index, w.index, self._base_entries[name])
                ours = w.patches[self._base_npatches[name]:]
                our_rows = our_changed[name]
                clash = np.union1d(np.intersect1d(our_rows, their_touched[name]),
                                   np.intersect1d(our_rows, their_del))
                if clash.shape[0]:
                    conflicts[name] = self._row_ids.take(clash).tolist()
                patches += [p.moved(moved(p.rows)) for p in ours]
                if not ours and meta == tp.meta and index.num_entries == base_entries[name]:
                    same.add(name)
            else:  # a tensor they created: our appended rows are empty in it
                if ours_n:
                    index.append(ours_n)
                else:
                    same.add(name)
                base_entries[name], base_npatches[name] = index.num_entries, len(patches)
            new_writers[name] = TensorWriter(meta, index, self._reader, patches)
        for name in self._created:
            w = self._writers[name]
            index = ChunkIndex()
            if theirs.physical:
                index.append(theirs.physical)
            base_entries[name], base_npatches[name] = index.num_entries, 0
            _append_entries(index, w.index, self._base_entries[name])
            patches = [p.moved(moved(p.rows)) for p in w.patches]
            new_writers[name] = TensorWriter(w.meta, index, self._reader, patches)
        touched_any = np.concatenate([np.zeros(0, np.int64), *their_touched.values()])
        clash = np.intersect1d(our_del, touched_any)
        if clash.shape[0]:
            conflicts["<deleted rows>"] = self._row_ids.take(clash).tolist()
        if conflicts:
            desc = "; ".join(f"{t!r}: row ids {ids[:10]}" for t, ids in conflicts.items())
            raise CommitConflictError(f"concurrent changes on branch {self._branch!r} touch the "
                                      f"same rows ({desc}); nothing was written. Reopen the "
                                      "dataset and redo the change")
        row_ids = theirs.row_ids.copy()
        row_ids.extend_ids(self._row_ids.take(np.arange(base.physical, self._physical)))
        self._seq = seq
        self._commit_id = rec.get("commit")
        self._base_key, self._base = rec["state"], theirs
        self._base_parts = their_parts
        self._writers = new_writers
        self._part_keys = {n: theirs.tensors[n] for n in same}  # nothing of ours in them
        for name, w in self._writers.items():
            w.dirty = name not in same
        # what is "ours" stays ours: entries/patches past the new base, created/dropped tensors
        self._base_entries, self._base_npatches = base_entries, base_npatches
        self.__dict__.pop("_base_folds", None)
        self._physical = theirs.physical + ours_n
        self._row_ids = row_ids
        self._deleted = np.union1d(theirs.deleted, moved(our_del_all)).astype(np.int64)
        self._live = None

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
        deterministic per (seed, epoch), resumable, rank-aware; see plane.loader."""
        from plane.loader import make_loader

        return make_loader(self, "torch", batch_size=batch_size, shuffle=shuffle, **options)

    def numpy(self, batch_size: int = 64, shuffle: bool = True, **options: Any) -> Loader:
        """Like pytorch(), yielding dicts of numpy arrays."""
        from plane.loader import make_loader

        return make_loader(self, "numpy", batch_size=batch_size, shuffle=shuffle, **options)

    def jax(self, batch_size: int = 64, shuffle: bool = True, **options: Any) -> Loader:
        """Like pytorch(), yielding dicts of jax arrays (needs jax)."""
        from plane.loader import make_loader

        return make_loader(self, "jax", batch_size=batch_size, shuffle=shuffle, **options)

    def to_ray(self, tensors: Sequence[str] | None = None,
               override_num_blocks: int | None = None) -> Any:
        """This version as a `ray.data.Dataset` read by a Datasource, one block per chunk
        (needs `tensorplane[ray]`; the store must be reachable from the Ray workers)."""
        try:
            from plane.loader._ray import to_ray
        except ImportError as e:
            raise PlaneError(f"ds.to_ray() needs Ray ({e}): pip install 'tensorplane[ray]'"
                             ) from None
        return to_ray(self, tensors, override_num_blocks)

    # ---- query --------------------------------------------------------------------------
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> View:
        """Run a query (vector + scalar + full text in one plan; README "Query"): e.g.
        ``SELECT id, caption, score WHERE labels = 'dog' AND CONTAINS(caption, 'red car')
        ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 10`` with params={"q": vec}.
        Returns a View of the result rows at this version."""
        from plane.query import run_sql

        return run_sql(self, sql, params)

    def search(self) -> Search:
        """The builder face: ``ds.search().where("...").match("caption", "red car")
        .nearest("embedding", vec).limit(10).run()``."""
        from plane.query import Search

        return Search(self)

    def explain(self, sql: str | Search, params: Mapping[str, Any] | None = None) -> str:
        """The plan a query runs: filters, indexes used, partitions, exact fallbacks, fusion."""
        from plane.query import explain_sql

        return explain_sql(self, sql, params)

    def create_index(self, tensor: str, kind: str = "hnsw", metric: str = "cosine",
                     **options: Any) -> IndexInfo:
        """Build a vector (faiss: flat, ivf_flat, ivf_pq, hnsw; metric cosine/l2/ip) or
        full-text (bm25) index of `tensor` at the current commit. Options: params (faiss
        settings), partition_rows, progress. Queries on later commits use it for unchanged
        rows and search newer ones exactly; build again to fold them in."""
        from plane.query._indexes import create_index

        return create_index(self, tensor, kind, metric, **options)

    def optimize_index(self, tensor: str | None = None, progress: bool | None = None
                       ) -> list[IndexInfo]:
        """Rebuild at the current commit the indexes (of `tensor`, or all) that were built on
        an older one, keeping kind, metric and settings; returns the rebuilt ones."""
        from plane.query._indexes import optimize_indexes

        return optimize_indexes(self, tensor, progress)

    # ---- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._physical - int(self._deleted.shape[0])

    def __contains__(self, name: object) -> bool:
        return name in self._writers

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            self._writer(key)
            return Tensor(self, key)
        pos, scalar = normalize_index(key, len(self))
        return DatasetView(self, pos, scalar)

    def __iter__(self) -> Iterator[DatasetView]:
        for i in range(len(self)):
            yield DatasetView(self, np.array([i], np.int64), True)

    def summary(self) -> str:
        """A table of tensors (htype, dtype, shape, rows, chunks, bytes): a str that a REPL
        shows as the table (print it in a script). It printed and returned the text, which a
        REPL then showed twice."""
        rows = [("tensor", "htype", "dtype", "shape", "compression", "chunks", "bytes")]
        for name, w in self._writers.items():
            t = Tensor(self, name)
            m = w.meta
            comp = m.sample_compression or m.chunk_compression or "none"
            dt = np.dtype(m.dtype).name if m.kind == "array" and m.dtype else str(m.dtype or "?")
            rows.append((name, m.htype, dt, str(t.shape), comp, str(t.num_chunks),
                         _human(w.index.nbytes)))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        where = f"branch {self._branch!r}" if self._branch else f"commit {self._commit_id}"
        lines = [f"Dataset {self.url} ({where}, {len(self)} rows)"]
        for j, r in enumerate(rows):
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        return _Text("\n".join(lines))

    def __repr__(self) -> str:
        where = f"branch={self._branch!r}" if self._branch else f"commit={self._commit_id!r}"
        return f"Dataset({self.url!r}, {where}, rows={len(self)}, tensors={list(self._writers)})"

    def __enter__(self) -> Dataset:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.flush()


def _author() -> str:
    env = os.environ.get("PLANE_AUTHOR")
    if env:
        return env
    return _login()


@functools.cache
def _login() -> str:
    try:
        import getpass

        return getpass.getuser()
    except Exception:
        return "unknown"


def _fold(reader: ChunkReader, meta: TensorMeta, index: ChunkIndex, patches: list[Patch]
          ) -> tuple[np.ndarray, Block, TensorMeta] | None:
    """(rows, block, meta) of one patch holding the newest value of every row `patches`
    touch, encoded deterministically (the same patches give the same bytes)."""
    if not patches:
        return None
    pm = PatchMap.build(patches)
    raw = meta.sample_compression is not None
    vals = list(read_samples(reader, meta, index, pm.rows, not raw, True, pm))
    if raw:  # an emptied sample reads as no bytes: it is written back as empty
        vals = [None if not len(v) else v for v in vals]
    block, meta = encode_batch(meta, vals, 0)
    return pm.rows, block, meta


def _patch_rows(patches: Sequence[Patch]) -> np.ndarray:
    """Every physical row the patches write (with repeats)."""
    return (np.concatenate([p.rows for p in patches]) if patches
            else np.zeros(0, np.int64))


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b))
    return bool(a == b)


def _reorder(block: Block, order: np.ndarray) -> Block:
    parts = [bytes(block.data[int(block.offsets[i]):int(block.offsets[i + 1])]) for i in order]
    sizes = np.array([len(p) for p in parts], np.int64)
    return Block(memoryview(b"".join(parts)), np.concatenate([[0], np.cumsum(sizes)]),
                 np.asarray(block.shapes)[order])


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


def _fragment_meta(have: TensorMeta, frag: TensorMeta, fragment_id: str) -> TensorMeta:
    """The tensor's meta after taking a fragment written with `frag`; SchemaError if the
    fragment was written for another schema."""
    where = f"fragment {fragment_id!r}, tensor {have.name!r}"
    for field_ in ("htype", "sample_compression", "shape", "max_shape", "chunk_compression"):
        a, b = getattr(have, field_), getattr(frag, field_)
        if a != b:
            raise SchemaError(f"{where}: {field_} is {b!r} in the fragment but {a!r} in the "
                              "dataset; rewrite the fragment with the dataset's schema")
    out = have
    for field_ in ("dtype", "ndim"):
        a, b = getattr(have, field_), getattr(frag, field_)
        if a is None:
            out = out.evolve(**{field_: b})
        elif b is not None and a != b:
            raise SchemaError(f"{where}: {field_} is {b!r} in the fragment but {a!r} in the "
                              "dataset; cast the fragment's values and rewrite it")
    an, fn = have.class_names, frag.class_names
    if fn[: len(an)] != an:
        raise SchemaError(f"{where}: class names {list(fn)} do not extend the dataset's "
                          f"{list(an)}; write fragments with the dataset's class names")
    return out.evolve(class_names=fn) if len(fn) > len(an) else out


def create(url: str | os.PathLike[str] | Store, overwrite: bool = False,
           storage_options: Mapping[str, Any] | None = None,
           cache_bytes: int = DEFAULT_CACHE_BYTES,
           link_storage_options: Mapping[str, Mapping[str, Any]] | None = None) -> Dataset:
    """Create an empty dataset at `url` (a path, ``mem://name``, ``s3://bucket/prefix`` ...)."""
    with _storage_errors("create a dataset", url):
        return _create(url, overwrite, storage_options, cache_bytes, link_storage_options)


def _create(url: str | os.PathLike[str] | Store, overwrite: bool,
            storage_options: Mapping[str, Any] | None, cache_bytes: int,
            link_storage_options: Mapping[str, Mapping[str, Any]] | None) -> Dataset:
    store = open_store(url, storage_options)
    if store.exists(DATASET_KEY):
        if not overwrite:
            raise DatasetExistsError(f"a dataset already exists at {store.url}; open it with "
                                     "plane.open(url) or pass overwrite=True to replace it")
        read_dataset_info(store)  # only ever wipe something that is a dataset
        store.delete(DATASET_KEY)  # from here on it is no dataset
        for prefix in DATASET_PREFIXES:  # what the dataset wrote; other files stay
            store.delete_prefix(prefix)
    elif next(iter(store.list("")), None) is not None:
        raise DatasetExistsError(f"{store.url} is not empty and holds no tensorplane dataset; "
                                 "choose an empty location")
    refs = RefStore(store, FORMAT_VERSION)
    key = State().save(store)
    if not refs.advance("main", 0, {"commit": None, "state": key}):
        raise DatasetExistsError(f"another process is creating a dataset at {store.url}")
    write_dataset_info(store, {"format": "tensorplane", "format_version": FORMAT_VERSION,
                               "created": time.time(), "default_branch": "main"})
    return Dataset(store, "main", read_only=False, cache_bytes=cache_bytes,
                   link_storage_options=link_storage_options)


def open_dataset(url: str | os.PathLike[str] | Store, read_only: bool = False,
                 version: str | None = None, storage_options: Mapping[str, Any] | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES,
                 link_storage_options: Mapping[str, Mapping[str, Any]] | None = None
                 ) -> Dataset:
    """Open the dataset at `url` at `version`: a branch (default main, writable), a tag or a
    commit id (read-only). `link_storage_options` maps URL prefixes of linked objects
    (``{"s3://lake": {...}}``) to their store options (default: the dataset's own options
    for links of the same protocol)."""
    with _storage_errors("open the dataset", url):
        store = open_store(url, storage_options)
        return Dataset(store, version, read_only, cache_bytes, link_storage_options)


@contextlib.contextmanager
def _storage_errors(what: str, url: Any) -> Iterator[None]:
    """Turn an OSError that is not a PlaneError (a local path the OS refuses: too long, no
    permission, ...) into a StoreError naming the URL and the fix."""
    try:
        yield
    except PlaneError:
        raise
    except OSError as e:
        where = url.url if isinstance(url, Store) else os.fspath(url)
        raise StoreError(f"cannot {what} at {where}: {e.strerror or e}; check the path (it "
                         "must be writable to create or write) or choose another") from e


class _Text(str):
    """A str whose repr is itself, so a REPL shows a table as a table (once)."""

    def __repr__(self) -> str:
        return str(self)
