"""WorkingState: the write side of one branch (or a read-only commit) of a dataset.

It holds the base the writes started from, the tensors' writers (indexes, open chunks,
patches), the rows, their ids and deletions, and it owns the write protocol: appends,
patches and their folding, publishing a state (and commit) by moving the branch ref, and
rebasing on a branch another writer moved. `Dataset` and `VersionControl` drive it; every
reader gets a `Snapshot` of it (`view()` in memory, `snapshot()` stored, unpublished).
"""

from __future__ import annotations

import functools
import itertools
import os
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from plane._errors import (
    CommitConflictError,
    PlaneError,
    ReadOnlyError,
    SampleError,
    SchemaError,
    TensorNotFoundError,
)
from plane.core._fragment import Fragment
from plane.core._info import merge_info
from plane.core._layout import RefStore, chunk_key, read_dataset_info, sealed_format
from plane.core._links import LinkResolver
from plane.core._nulls import encode_nullable, is_in, set_rows
from plane.core._reader import ChunkReader, PatchMap, read_samples, read_shapes
from plane.core._snapshot import Snapshot, _link_resolver, no_tensor, read_rows
from plane.core._state import (
    Commit,
    Patch,
    RowIds,
    State,
    TensorPart,
    live_rows,
    new_row_id_base,
)
from plane.core._writer import TensorWriter
from plane.format._codecs import Block, check_column, encode_batch
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta, check_tensor_name
from plane.storage import Store

__all__ = ["WorkingState", "INLINE_PATCH_BYTES", "PATCH_COMPACT_AT"]

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


class WorkingState:
    """The working state of one dataset handle: base version, writers and rows."""

    def __init__(self, store: Store, cache_bytes: int,
                 link_storage_options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.store = store
        self.info: dict[str, Any] = read_dataset_info(store)
        self.refs = RefStore(store, self.format_version)
        self.reader = ChunkReader(store, cache_bytes, sealed_format(self.info))
        self.link_storage_options = link_storage_options
        self.links: LinkResolver = _link_resolver(store, link_storage_options)
        # the base: what the branch ref pointed at when these writes started
        self.branch: str | None = None
        self.seq = -1
        self.commit_id: str | None = None
        self.base_key = ""
        self.base = State()
        self.base_parts: dict[str, TensorPart] = {}
        self.base_entries: dict[str, int] = {}
        self.base_npatches: dict[str, int] = {}
        self.base_folds: dict[str, str] = {}  # tensor -> key of the fold of the base patches
        self.commit_states: dict[str, str] = {}  # commit id -> state key (immutable)
        # the writes
        self.writers: dict[str, TensorWriter] = {}
        self.part_keys: dict[str, str] = {}
        self.created: set[str] = set()
        self.dropped: set[str] = set()
        self.physical = 0
        self.row_ids = RowIds()
        self.deleted = np.zeros(0, np.int64)
        self._live: np.ndarray | None = None
        self._view: Snapshot | None = None
        self._snapshot: Snapshot | None = None
        self._id_next = -1
        self._id_left = 0
        # versioned dataset-level fields of the state (State.info / renames / hidden_indexes)
        self.user_info: dict[str, Any] = {}
        self.renames: dict[str, list[str]] = {}
        self.hidden_indexes: frozenset[tuple[str, str, str]] = frozenset()
        self.renamed = False  # a tensor was renamed since the last publish

    @property
    def format_version(self) -> int:
        return int(self.info.get("format_version", 1))

    @property
    def url(self) -> str:
        return self.store.url

    # ---- base -----------------------------------------------------------------------------
    def set_base(self, branch: str | None, seq: int, commit_id: str | None, key: str,
                 state: State) -> None:
        """Make `state` the base of an empty working state (on `branch`, or detached)."""
        self.branch = branch
        self.seq = seq
        self.commit_id = commit_id
        self.base_key = key
        self.base = state
        self.base_parts = {n: TensorPart.load(self.store, k) for n, k in state.tensors.items()}
        self.writers = {n: TensorWriter(p.meta, p.index.copy(), self.reader, p.patches,
                                        p.nulls) for n, p in self.base_parts.items()}
        self.part_keys = dict(state.tensors)
        self.mark_clean()
        self.physical = state.physical
        self.row_ids = state.row_ids.copy()
        self.deleted = state.deleted
        self.user_info = dict(state.info)
        self.renames = {k: list(v) for k, v in state.renames.items()}
        self.hidden_indexes = frozenset(state.hidden_indexes)
        self.changed()

    def mark_clean(self) -> None:
        for w in self.writers.values():
            w.dirty = False
        self.base_entries = {n: w.index.num_entries for n, w in self.writers.items()}
        self.base_npatches = {n: len(w.patches) for n, w in self.writers.items()}
        self.created = set()
        self.dropped = set()
        self.base_folds = {}
        self.renamed = False

    def changed(self) -> None:
        """Forget what was derived from the rows or writers (call after every change)."""
        self._live = None
        self._view = None
        self._snapshot = None

    # ---- state ----------------------------------------------------------------------------
    @property
    def unflushed(self) -> bool:
        """True if the in-memory working state differs from `base_key` (not yet flushed)."""
        return bool(any(w.dirty for w in self.writers.values()) or self.created
                    or self.dropped or self.user_info != self.base.info
                    or self.renames != self.base.renames
                    or self.hidden_indexes != frozenset(self.base.hidden_indexes)
                    or (self.deleted is not self.base.deleted
                                        and not np.array_equal(self.deleted,
                                                               self.base.deleted)))

    @property
    def has_changes(self) -> bool:
        """True if the working state differs from its commit (flushed or not)."""
        if self.unflushed:
            return True
        if self.commit_id is None:
            return bool(self.base.tensors)
        return self.commit_state(self.commit_id) != self.base_key

    def commit_state(self, commit_id: str | None) -> str | None:
        """The state key of a commit (cached: commits are immutable)."""
        if commit_id is None:
            return None
        if commit_id not in self.commit_states:
            self.commit_states[commit_id] = Commit.load(self.store, commit_id).state
        return self.commit_states[commit_id]

    def __len__(self) -> int:
        return self.physical - int(self.deleted.shape[0])

    def writer(self, name: str) -> TensorWriter:
        try:
            return self.writers[name]
        except KeyError:
            raise TensorNotFoundError(self.no_tensor(name)) from None

    def no_tensor(self, name: str) -> str:
        return no_tensor(self.url, name, self.writers)

    def metas(self) -> dict[str, TensorMeta]:
        return {n: w.meta for n, w in self.writers.items()}

    def check_writable(self, what: str) -> None:
        if self.store.read_only:
            raise ReadOnlyError(f"cannot {what}: {self.url} is open read-only; open it with "
                                "plane.open(url, read_only=False)")
        if self.branch is None:
            raise ReadOnlyError(f"cannot {what}: commit {self.commit_id} is checked out "
                                "(detached, read-only); checkout a branch, or create one here "
                                "with ds.branch(name)")

    # ---- reading --------------------------------------------------------------------------
    def to_physical(self, positions: np.ndarray) -> np.ndarray:
        if not self.deleted.shape[0]:
            return positions
        if self._live is None:
            self._live = live_rows(self.physical, self.deleted)
        out: np.ndarray = self._live[positions]
        return out

    def read(self, name: str, positions: np.ndarray, decode: bool = True,
             aslist: bool = False, links: bool = True) -> Any:
        w = self.writer(name)
        w.seal()
        return read_rows(self.reader, self.links if links else None, name, w.meta, w.index,
                         w.patch_map(), self.to_physical(positions), positions, decode,
                         aslist)

    def null_mask(self, name: str, positions: np.ndarray) -> np.ndarray | None:
        """As `Snapshot.null_mask`, unflushed writes included."""
        nulls = self.writer(name).nulls
        if not nulls.shape[0]:
            return None
        mask = is_in(self.to_physical(positions), nulls)
        return mask if mask.any() else None

    def shapes(self, name: str, positions: np.ndarray) -> np.ndarray:
        w = self.writer(name)
        w.seal()
        return read_shapes(self.reader, w.meta, w.index, self.to_physical(positions),
                           w.patch_map())

    def view(self) -> Snapshot:
        """The working state as it is now, unflushed writes included, as an in-memory
        Snapshot (not stored, not picklable; valid until the next change)."""
        if self._view is None:
            for w in self.writers.values():
                w.seal()
            state = State({n: "" for n in self.writers}, self.physical, self.row_ids,
                          self.deleted, version=self.format_version, **self._state_fields())
            parts = {n: TensorPart(w.meta, w.index, w.patches, w.nulls)
                     for n, w in self.writers.items()}
            self._view = Snapshot(self.store, None if self.unflushed else self.base_key,
                                  state, parts, commit_id=self.commit_id, branch=self.branch,
                                  info=self.info, reader=self.reader, links=self.links,
                                  link_storage_options=self.link_storage_options)
        return self._view

    def snapshot(self) -> Snapshot:
        """A stored, picklable Snapshot of the working state: unflushed writes are stored as
        unpublished objects (chunks, parts, a state) — the branch does not move."""
        if self._snapshot is None:
            if not self.unflushed:
                key = self.base_key
                state = self.base
            else:
                self.store_pending()
                state = self.working_state()
                key = state.save(self.store)
            parts = {n: TensorPart(w.meta, w.index.copy(), list(w.patches), w.nulls)
                     for n, w in self.writers.items()}
            commit = self.commit_id if key == self.commit_state(self.commit_id) else None
            self._snapshot = Snapshot(self.store, key, state, parts, commit_id=commit,
                                      branch=self.branch, base_commit=self.commit_id,
                                      info=self.info, reader=self.reader,
                                      links=self.links,
                                      link_storage_options=self.link_storage_options)
        return self._snapshot

    # ---- schema ---------------------------------------------------------------------------
    def add_tensor(self, meta: TensorMeta) -> None:
        w = TensorWriter(meta, ChunkIndex(), self.reader)
        w.add_fill(self.physical)
        w.dirty = True
        self.writers[meta.name] = w
        self.renames.pop(meta.name, None)  # a new tensor: no former names
        self.created.add(meta.name)
        self.dropped.discard(meta.name)
        self.base_entries[meta.name] = w.index.num_entries
        self.base_npatches[meta.name] = 0
        self.changed()

    def drop_tensor(self, name: str) -> None:
        self.writer(name)
        del self.writers[name]
        self.renames.pop(name, None)
        if name in self.created:
            self.created.discard(name)
        else:
            self.dropped.add(name)
        self.changed()

    def rename_tensor(self, old: str, new: str) -> None:
        """Give tensor `old` the name `new` (same chunks, same place in the tensor order);
        the state remembers the former name (`renames`) so diff, merge and indexes follow."""
        w = self.writer(old)
        check_tensor_name(new)
        if new in self.writers:
            raise SchemaError(f"cannot rename tensor {old!r} to {new!r}: {self.url} already "
                              f"has a tensor {new!r}; delete it first or pick another name")
        if new == old:
            return
        w.meta = w.meta.evolve(name=new)
        w.dirty = True
        self.writers = {new if n == old else n: x for n, x in self.writers.items()}
        for counts in (self.base_entries, self.base_npatches):
            if old in counts:
                counts[new] = counts.pop(old)
        if old in self.base_folds:
            self.base_folds[new] = self.base_folds.pop(old)
        self.part_keys.pop(old, None)
        if old in self.created:
            self.created.discard(old)
            self.created.add(new)
        self.renames[new] = [old] + [x for x in self.renames.pop(old, []) if x != new]
        self.renamed = True
        self.changed()

    def set_info(self, info: dict[str, Any]) -> None:
        """Replace the dataset's info dict (already checked: see core._info)."""
        self.user_info = info
        self.changed()

    def hide_indexes(self, refs: Sequence[tuple[str, str, str]]) -> None:
        """Stop using the index refs (tensor, kind, commit) from this version on."""
        self.hidden_indexes = self.hidden_indexes | frozenset(refs)
        self.changed()

    def replace_tensor(self, name: str, writer: TensorWriter) -> None:
        """Swap in a rewritten tensor (same rows), as if created by this working state."""
        writer.dirty = True
        self.writers[name] = writer
        self.created.add(name)
        self.base_entries[name] = 0
        self.base_npatches[name] = 0
        self.changed()

    # ---- appends --------------------------------------------------------------------------
    def alloc_ids(self, n: int) -> np.ndarray:
        if self._id_left < n:
            self._id_next, self._id_left = new_row_id_base(), 1 << 40
        ids = np.arange(self._id_next, self._id_next + n, dtype=np.int64)
        self._id_next += n
        self._id_left -= n
        return ids

    def extend(self, columns: Mapping[str, Any], n: int,
               row_ids: np.ndarray | None = None) -> None:
        """Append `n` rows given as checked columns (one per tensor), with new row ids
        unless `row_ids` are given (a merge carries the other side's ids). A None is a null
        (`plane.core._nulls`)."""
        row0 = len(self)
        plans = {}
        nulls: dict[str, np.ndarray] = {}
        fills: list[str] = []
        for name, values in columns.items():
            w = self.writers[name]
            block, meta, nulls[name] = encode_nullable(w.meta, values, row0)
            if block is None:
                fills.append(name)
            else:
                plans[name] = w.plan(block, meta)
        chunks = {chunk_key(k): v for p in plans.values() for k, v in p.chunks.items()}
        self.store.put_many(chunks)
        for name, plan in plans.items():
            self.writers[name].apply(plan)
        for name in fills:
            self.writers[name].add_fill(n)
        for name, at in nulls.items():
            if at.shape[0] and name not in fills:
                w = self.writers[name]
                w.nulls = np.union1d(w.nulls, self.physical + at).astype(np.int64)
        self.row_ids.extend_ids(row_ids if row_ids is not None else self.alloc_ids(n))
        self.physical += n
        self.changed()

    def apply_fragments(self, fragments: Sequence[Fragment]) -> int:
        """Append rows that workers already wrote as fragments, in order; all or nothing."""
        names = set(self.writers)
        for f in fragments:
            if set(f.metas) != names:
                raise SchemaError(f"fragment {f.fragment_id} has tensors {sorted(f.metas)}, the "
                                  f"dataset has {sorted(names)}")
        metas = self.metas()
        for f in fragments:  # validate every schema before changing anything
            for n in names:
                metas[n] = fragment_meta(metas[n], TensorMeta.from_dict(f.metas[n]),
                                         f.fragment_id)
        total = 0
        for f in fragments:
            for n, w in self.writers.items():
                w.seal()
                w.reopenable = None
                for rows, keys, sizes in f.entries[n]:
                    w.index.append(rows, keys, sizes)
                if f.nulls.get(n):
                    at = np.asarray(f.nulls[n], np.int64) + self.physical
                    w.nulls = np.union1d(w.nulls, at).astype(np.int64)
                w.meta = metas[n]
                w.dirty = True
            self.row_ids.extend_ids(self.alloc_ids(f.rows))
            self.physical += f.rows
            total += f.rows
        self.changed()
        return total

    # ---- updates and deletes --------------------------------------------------------------
    def check_columns(self, columns: Mapping[str, Any]) -> int:
        """The number of rows in `columns` (one per tensor, equal lengths), else the error."""
        return _checked_rows(self, columns)

    def update(self, name: str, phys: np.ndarray, block: Block, meta: TensorMeta,
               null: np.ndarray | None = None) -> None:
        """New values (an encoded block, in `phys` order) for physical rows `phys`; `null`
        (a mask in `phys` order) marks those written as null, the others get a value."""
        order = np.argsort(phys, kind="stable")
        if not np.all(order == np.arange(order.shape[0])):
            block = _reorder(block, order)
            phys = phys[order]
            null = null[order] if null is not None else None
        w = self.writers[name]
        if len(w.patches) >= PATCH_COMPACT_AT and \
                len(w.patches) == self.base_npatches.get(name, -1):
            self.fold_base_patches(name)  # before our first patch of this working state
        self._add_patch(w, phys, block, meta)
        w.nulls = set_rows(w.nulls, phys, null)
        self.changed()

    def mark_null(self, name: str, phys: np.ndarray) -> None:
        """Make physical rows `phys` null without writing samples: for Nones written to a
        tensor with no layout yet, whose rows are all empty samples already."""
        w = self.writers[name]
        w.nulls = np.union1d(w.nulls, phys).astype(np.int64)
        w.dirty = True
        self.changed()

    def _add_patch(self, w: TensorWriter, phys: np.ndarray, block: Block, meta: TensorMeta
                   ) -> None:
        patch, data = w.plan_patch(phys, block, meta)
        if len(data) <= INLINE_PATCH_BYTES and self.format_version >= 2:
            patch = Patch(patch.key, patch.nbytes, patch.rows, data)  # lives in the part
        else:
            self.store.put(chunk_key(patch.key), data)
        w.apply_patch(patch, data, meta)

    def fold_base_patches(self, name: str) -> None:
        """Replace the patches this working state started from with one patch holding the
        newest value of each row they touch (same values; a bounded part). Only the base's
        patches are folded, so what this writer changed stays a patch list of its own, and a
        concurrent writer that folded the same base produced the same patch (same key)."""
        w = self.writers[name]
        folded = _fold(self.reader, w.meta, w.index, w.patches)
        if folded is None:
            return
        rows, block, meta = folded
        w.set_patches([])
        self._add_patch(w, rows, block, meta)
        self.base_npatches[name] = 1
        self.base_folds[name] = w.patches[0].key

    def _base_fold_key(self, name: str) -> str | None:
        """The key of the fold of this working state's base patches of `name`."""
        if name in self.base_folds:
            return self.base_folds[name]
        part = self.base_parts.get(name)
        if part is None or not part.patches:
            return None
        w = self.writers.get(name)
        if w is None:
            return None
        folded = _fold(self.reader, part.meta, part.index, part.patches)
        if folded is None:
            return None
        rows, block, meta = folded
        return w.plan_patch(rows, block, meta)[0].key

    def delete(self, phys: np.ndarray) -> None:
        """Delete physical rows `phys`."""
        self.deleted = np.union1d(self.deleted, phys).astype(np.int64)
        self.changed()

    # ---- publishing -----------------------------------------------------------------------
    def store_pending(self) -> None:
        """Store every chunk the writers still hold in memory."""
        pending: dict[str, bytes] = {}
        taken: dict[str, list[str]] = {}
        for name, w in self.writers.items():
            got = w.take_unwritten()
            pending.update({chunk_key(k): v for k, v in got.items()})
            taken[name] = list(got)
        self.store.put_many(pending)
        for name, keys in taken.items():
            self.writers[name].stored(keys)

    def working_state(self) -> State:
        """The working state as a State, its changed parts saved (chunks must be stored)."""
        tensors = {}
        for name, w in self.writers.items():
            if w.dirty or name not in self.part_keys:
                self.part_keys[name] = TensorPart(w.meta, w.index, w.patches,
                                                  w.nulls).save(self.store)
            tensors[name] = self.part_keys[name]
        return State(tensors, self.physical, self.row_ids.copy(), self.deleted,
                     version=self.format_version, **self._state_fields())

    def _state_fields(self) -> dict[str, Any]:
        return {"info": dict(self.user_info),
                "renames": {k: list(v) for k, v in self.renames.items()},
                "hidden_indexes": tuple(sorted(self.hidden_indexes))}

    def publish(self, message: str | None, parents: Sequence[str] = (),
                allow_empty: bool = False) -> str | None:
        """Store pending chunks, write the working state and move the branch ref to it,
        with a new commit when `message` is given. Returns the commit id (or None)."""
        self.store_pending()
        started = time.monotonic()
        for attempt in itertools.count():
            state = self.working_state()
            key = state.save(self.store)
            commit_id = self.commit_id
            if message is not None:
                prev = self.commit_state(commit_id)
                if key == prev and not allow_empty and not parents:
                    raise PlaneError("nothing to commit: the working state equals commit "
                                     f"{commit_id}; pass allow_empty=True for an empty commit")
                own = (commit_id,) if commit_id else ()
                commit_id = Commit(key, own + tuple(parents), message, _author(),
                                   time.time()).save(self.store).id
            elif key == self.base_key:
                return commit_id
            assert self.branch is not None
            rec = {"commit": commit_id, "state": key}
            if self.refs.advance(self.branch, self.seq + 1, rec):
                self.seq += 1
                self.commit_id = commit_id
                if message is not None:  # a new commit: its state is the one just written
                    self.commit_states[commit_id] = key  # type: ignore[index]
                self.base_key, self.base = key, state
                self.base_parts = {n: TensorPart(w.meta, w.index.copy(), list(w.patches),
                                                 w.nulls) for n, w in self.writers.items()}
                self.mark_clean()
                self.changed()
                return commit_id
            waited = time.monotonic() - started
            if attempt + 1 >= _MAX_REBASES and waited >= _RETRY_SECONDS:
                raise CommitConflictError(
                    f"could not move branch {self.branch!r} of {self.url} after {attempt + 1} "
                    f"attempts in {waited:.0f} s: too many concurrent writers; nothing was "
                    "written. Retry later, or write to separate branches and merge")
            time.sleep(_JITTER.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** attempt)))
            self.rebase()
        raise AssertionError("unreachable")

    def _changed_since_base(self, name: str, theirs: TensorPart, rows: np.ndarray
                            ) -> np.ndarray:
        """Those of the shared physical `rows` whose newest value in `theirs` differs from
        the one in this working state's base (values, as diff and merge compare them)."""
        if not rows.shape[0]:
            return rows
        got = []
        for part in (self.base_parts[name], theirs):
            self.reader.inline.update((p.key, p.data) for p in part.patches
                                      if p.data is not None)
            pm = PatchMap.build(part.patches) if part.patches else None
            raw = part.meta.sample_compression is not None
            got.append(list(read_samples(self.reader, part.meta, part.index, rows, not raw,
                                         True, pm)))
        differ = [i for i, (a, b) in enumerate(zip(*got)) if not _same_value(a, b)]
        return rows[np.asarray(differ, np.int64)] if differ else np.zeros(0, np.int64)

    def rebase(self) -> None:
        """Replay this writer's changes on top of the branch head another writer just moved.

        Appended rows move after theirs; patches and deletes on shared rows are kept; a row
        both sides changed (or one deleted and the other updated) is a CommitConflictError.
        """
        assert self.branch is not None
        if self.renamed:
            raise CommitConflictError(f"branch {self.branch!r} of {self.url} moved while this "
                                      "handle renamed a tensor; nothing was written. Reopen "
                                      "the dataset and rename again")
        head = self.refs.head(self.branch)
        if head is None:
            raise CommitConflictError(f"branch {self.branch!r} was deleted concurrently")
        seq, rec = head
        theirs = State.load(self.store, rec["state"])
        base = self.base
        shift = theirs.physical - base.physical
        ours_n = self.physical - base.physical
        if shift < 0:
            raise CommitConflictError(f"branch {self.branch!r} was compacted concurrently; "
                                      "reopen the dataset and redo the change")

        def moved(rows: np.ndarray) -> np.ndarray:
            return np.where(rows >= base.physical, rows + shift, rows)

        def shared(rows: np.ndarray) -> np.ndarray:
            """Rows both sides had: each side's appended rows (numbered from base.physical
            on both sides) are its own and can clash with nothing."""
            return rows[rows < base.physical]

        our_del_all = np.setdiff1d(self.deleted, base.deleted)
        our_del = shared(our_del_all)
        their_del = np.setdiff1d(theirs.deleted, base.deleted)
        conflicts: dict[str, list[int]] = {}
        their_parts = {n: TensorPart.load(self.store, k) for n, k in theirs.tensors.items()}
        for name, w in self.writers.items():  # a tensor they renamed that we wrote to
            new = next((t for t, former in theirs.renames.items() if name in former
                        and t in their_parts), None)
            if name not in their_parts and name not in self.created and new is not None and \
                    (ours_n or w.dirty):
                raise CommitConflictError(f"tensor {name!r} was renamed to {new!r} "
                                          f"concurrently on branch {self.branch!r}; nothing was "
                                          "written. Reopen the dataset and redo the change")
        our_changed = {n: shared(_patch_rows(w.patches[self.base_npatches[n]:]))
                       for n, w in self.writers.items() if n in self.base_npatches}
        their_touched: dict[str, np.ndarray] = {}
        for name, tp in their_parts.items():
            base_p = self.base_parts[name].patches if name in self.base_parts else []
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
            if name in self.created:
                raise CommitConflictError(f"tensor {name!r} was created concurrently on branch "
                                          f"{self.branch!r}; reopen the dataset and retry")
            if name in self.dropped:
                continue  # we deleted this tensor; their changes to it go with it
            index = tp.index.copy()
            meta, patches, nulls = tp.meta, list(tp.patches), tp.nulls
            if name in self.writers:
                w = self.writers[name]
                meta = merge_meta(meta, w.meta, self.branch)
                base_entries[name], base_npatches[name] = index.num_entries, len(patches)
                _append_entries(index, w.index, self.base_entries[name])
                ours = w.patches[self.base_npatches[name]:]
                our_rows = our_changed[name]
                clash = np.union1d(np.intersect1d(our_rows, their_touched[name]),
                                   np.intersect1d(our_rows, their_del))
                if clash.shape[0]:
                    conflicts[name] = self.row_ids.take(clash).tolist()
                patches += [p.moved(moved(p.rows)) for p in ours]
                nulls = _rebased_nulls(self.base_parts[name].nulls, w.nulls, tp.nulls, moved)
                if not ours and meta == tp.meta and index.num_entries == base_entries[name] \
                        and np.array_equal(nulls, tp.nulls):
                    same.add(name)
            else:  # a tensor they created: our appended rows are null in it
                if ours_n:
                    index.append(ours_n)
                    nulls = np.union1d(nulls, np.arange(theirs.physical, theirs.physical + ours_n,
                                                        dtype=np.int64))
                else:
                    same.add(name)
                base_entries[name], base_npatches[name] = index.num_entries, len(patches)
            new_writers[name] = TensorWriter(meta, index, self.reader, patches, nulls)
        for name in self.created:
            w = self.writers[name]
            index = ChunkIndex()
            # the fill covers the rows that existed when we created it: the base's, theirs
            # (now under it) and any we appended before creating it
            filled = sum(int(w.index.rows[e]) for e in range(self.base_entries[name]))
            if filled + shift:
                index.append(filled + shift)
            base_entries[name], base_npatches[name] = index.num_entries, 0
            _append_entries(index, w.index, self.base_entries[name])
            patches = [p.moved(moved(p.rows)) for p in w.patches]
            # rows they appended are null in it; ours keep what we wrote (moved after theirs)
            nulls = np.union1d(np.arange(base.physical, theirs.physical, dtype=np.int64),
                               moved(w.nulls)).astype(np.int64)
            new_writers[name] = TensorWriter(w.meta, index, self.reader, patches, nulls)
        touched_any = np.concatenate([np.zeros(0, np.int64), *their_touched.values()])
        clash = np.intersect1d(our_del, touched_any)
        if clash.shape[0]:
            conflicts["<deleted rows>"] = self.row_ids.take(clash).tolist()
        if conflicts:
            desc = "; ".join(f"{t!r}: row ids {ids[:10]}" for t, ids in conflicts.items())
            raise CommitConflictError(f"concurrent changes on branch {self.branch!r} touch the "
                                      f"same rows ({desc}); nothing was written. Reopen the "
                                      "dataset and redo the change")
        info, clash_keys = merge_info(base.info, self.user_info, theirs.info)
        if clash_keys:
            raise CommitConflictError(f"concurrent writers on branch {self.branch!r} set "
                                      f"ds.info key(s) {clash_keys} differently; nothing was "
                                      "written. Reopen the dataset and set them again")
        row_ids = theirs.row_ids.copy()
        row_ids.extend_ids(self.row_ids.take(np.arange(base.physical, self.physical)))
        self.seq = seq
        self.commit_id = rec.get("commit")
        self.base_key, self.base = rec["state"], theirs
        self.base_parts = their_parts
        self.writers = new_writers
        self.part_keys = {n: theirs.tensors[n] for n in same}  # nothing of ours in them
        for name, w in self.writers.items():
            w.dirty = name not in same
        # what is "ours" stays ours: entries/patches past the new base, created/dropped tensors
        self.base_entries, self.base_npatches = base_entries, base_npatches
        self.base_folds = {}
        self.physical = theirs.physical + ours_n
        self.row_ids = row_ids
        self.deleted = np.union1d(theirs.deleted, moved(our_del_all)).astype(np.int64)
        self.user_info = info
        self.hidden_indexes = frozenset(theirs.hidden_indexes) | (
            self.hidden_indexes - frozenset(base.hidden_indexes))
        self.renames = {k: list(v) for k, v in theirs.renames.items()
                        if k in self.writers and k not in self.created}
        self.changed()


def merge_meta(theirs: TensorMeta, ours: TensorMeta, branch: str) -> TensorMeta:
    """Combine what two writers learned about a tensor (dtype, ndim, class names)."""
    def conflict(field_: str, a: Any, b: Any) -> Exception:
        if field_ == "class_names":
            return CommitConflictError(f"tensor {theirs.name!r}: concurrent writers on branch "
                                       f"{branch!r} added different class names; reopen and "
                                       "retry")
        return CommitConflictError(f"tensor {theirs.name!r}: concurrent writers on branch "
                                   f"{branch!r} stored {field_} {a} and {b}")

    return theirs.combine(ours, conflict)


def fragment_meta(have: TensorMeta, frag: TensorMeta, fragment_id: str) -> TensorMeta:
    """The tensor's meta after taking a fragment written with `frag`; SchemaError if the
    fragment was written for another schema."""
    where = f"fragment {fragment_id!r}, tensor {have.name!r}"

    def conflict(field_: str, a: Any, b: Any) -> Exception:
        if field_ == "class_names":
            return SchemaError(f"{where}: class names {list(b)} do not extend the dataset's "
                               f"{list(a)}; write fragments with the dataset's class names")
        fix = ("cast the fragment's values and rewrite it" if field_ in ("dtype", "ndim", "width")
               else "rewrite the fragment with the dataset's schema")
        return SchemaError(f"{where}: {field_} is {b!r} in the fragment but {a!r} in the "
                           f"dataset; {fix}")

    return have.combine(frag, conflict, same=("htype", "sample_compression", "shape",
                                              "max_shape", "chunk_compression"), one_way=True)


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


def _rebased_nulls(base: np.ndarray, ours: np.ndarray, theirs: np.ndarray,
                   moved: Any) -> np.ndarray:
    """A tensor's nulls after a rebase: theirs, with the rows we made null (ours moved after
    theirs) added and those we gave a value removed. Rows both changed are a conflict
    (caught on their patches), so the two sets of changes are disjoint."""
    if not (base.shape[0] or ours.shape[0] or theirs.shape[0]):
        return theirs
    cleared = np.setdiff1d(base, ours)
    added = np.setdiff1d(ours, base)
    out = np.union1d(np.setdiff1d(theirs, cleared), moved(added))
    return out.astype(np.int64)


def _patch_rows(patches: Sequence[Patch]) -> np.ndarray:
    """Every physical row the patches write (with repeats)."""
    return (np.concatenate([p.rows for p in patches]) if patches
            else np.zeros(0, np.int64))


def _same_value(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b))
    return bool(a == b)


def _append_entries(dst: ChunkIndex, src: ChunkIndex, start: int) -> None:
    for e in range(start, src.num_entries):
        dst.append(int(src.rows[e]), src.entry_keys(e), src.entry_nbytes(e))


def _checked_rows(ws: WorkingState, columns: Mapping[str, Any]) -> int:
    """The number of rows in `columns` (one per tensor, equal lengths), else the error."""
    if not isinstance(columns, Mapping):
        raise SampleError("extend takes a dict of columns {tensor: [values, ...]}; "
                          "for one row use ds.append({tensor: value})")
    unknown = [k for k in columns if k not in ws.writers]
    if unknown:
        raise TensorNotFoundError(ws.no_tensor(unknown[0]))
    missing = [k for k in ws.writers if k not in columns]
    if missing:
        raise SampleError(f"no values for tensor(s) {', '.join(map(repr, missing))}; give "
                          "every tensor a value per row (None for a missing value: a null)")
    for k, v in columns.items():
        check_column(k, v)
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise SampleError(f"column lengths differ: {desc}; give every tensor the same "
                          "number of samples")
    return next(iter(lengths.values()), 0)


def _reorder(block: Block, order: np.ndarray) -> Block:
    parts = [bytes(block.data[int(block.offsets[i]):int(block.offsets[i + 1])]) for i in order]
    sizes = np.array([len(p) for p in parts], np.int64)
    return Block(memoryview(b"".join(parts)), np.concatenate([[0], np.cumsum(sizes)]),
                 np.asarray(block.shapes)[order])
