"""Garbage collection: delete objects no ref, tag or commit reaches (dry run by default)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plane._errors import ChecksumError, InvalidArgumentError, ObjectNotFoundError
from plane.core._layout import (
    CHUNKS,
    COMMITS,
    INDEX_REFS,
    INDEXES,
    PARTS,
    STATES,
    VIEWS,
    RefStore,
    chunk_key,
    commit_key,
    get_artifact_json,
    get_cas_json,
    read_dataset_info,
    sealed_format,
)
from plane.core._state import Commit, State, TensorPart
from plane.storage import Store, open_store

__all__ = ["GcReport", "gc", "reachable_objects", "DEFAULT_GRACE_SECONDS"]

#: objects younger than this are never collected: a writer may have stored chunks that its
#: next flush will reference (a session that stays open longer must flush more often)
DEFAULT_GRACE_SECONDS = 7 * 24 * 3600.0
#: swept prefixes, in deletion order: what points at other objects goes before what it points
#: at, so a gc stopped half-way never leaves a pointer to a deleted object
_SWEPT = (INDEX_REFS, INDEXES, COMMITS, STATES, PARTS, CHUNKS)


@dataclass
class GcReport:
    dry_run: bool
    reachable: int = 0
    unreachable: list[str] = field(default_factory=list)
    bytes: int = 0
    kept_young: int = 0
    ref_records_pruned: int = 0
    #: temp files of writes that never finished (a killed writer), older than the grace period
    temporary: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        prune = "to prune" if self.dry_run else "pruned"
        return (f"gc: {self.reachable} objects reachable; {verb} {len(self.unreachable)} "
                f"unreachable objects ({self.bytes / 1e6:.1f} MB) and {len(self.temporary)} "
                f"temp files of unfinished writes; kept {self.kept_young} "
                f"unreachable objects younger than the grace period; "
                f"{self.ref_records_pruned} old ref records {prune}")


def _json(store: Store, key: str, sealed: bool | None) -> Any:
    """A JSON object as readers read it (`sealed`: a named artifact of a format-3 dataset or
    not; None: content-addressed); None if it is missing or damaged."""
    try:
        if sealed is None:
            return get_cas_json(store, key)
        return get_artifact_json(store, key, sealed, "object")
    except (ObjectNotFoundError, ChecksumError):
        return None


def _index_objects(store: Store, commits: set[str], sealed: bool) -> set[str] | None:
    """Index refs of reachable commits, their manifests and partitions; None if an index
    object that matters cannot be read (then gc leaves every index object alone)."""
    keys: set[str] = set()
    for ref in store.list(INDEX_REFS):
        if ref.rsplit("/", 1)[-1] not in commits:
            continue
        body = _json(store, ref, sealed)
        if body is None:
            return None
        manifest = body.get("manifest") if isinstance(body, dict) else None
        if not isinstance(manifest, str):
            return None
        keys.update((ref, manifest))
        info = _json(store, manifest, None)
        if info is None:
            if store.exists(manifest):  # there but unreadable: its partitions are unknown
                return None
            continue  # a dangling ref: nothing more to keep
        try:
            keys.update(str(p["key"]) for p in info["partitions"])
        except (KeyError, TypeError):
            return None
    return keys


def reachable_objects(store: Store, keep_ref_records: int = 8) -> set[str]:
    """Every key reachable from the branch heads (newest records), tags and saved views and
    their history, with the indexes of reachable commits. Keys under ``indexes/`` are all
    included when an index object cannot be read (gc never deletes what it can't follow)."""
    refs = RefStore(store)
    sealed = sealed_format(read_dataset_info(store))
    commits: set[str] = set()
    states: set[str] = set()
    todo: list[str] = []
    for b in refs.branches():
        for rec in refs.records(b, keep_ref_records):
            if rec.get("state"):
                states.add(rec["state"])
            if rec.get("commit"):
                todo.append(rec["commit"])
    todo.extend(str(t["commit"]) for t in refs.tags().values())
    for vkey in store.list(VIEWS):  # a saved view reopens at its commit
        view = _json(store, vkey, sealed)
        if isinstance(view, dict) and isinstance(view.get("commit"), str):
            todo.append(view["commit"])
    while todo:
        c = todo.pop()
        if c in commits:
            continue
        commits.add(c)
        try:
            commit = Commit.load(store, c)
        except ObjectNotFoundError:
            continue
        states.add(commit.state)
        todo.extend(commit.parents)
    keys = {commit_key(c) for c in commits} | set(states)
    for skey in states:
        try:
            state = State.load(store, skey)
        except ObjectNotFoundError:
            continue
        for pkey in state.tensors.values():
            if pkey in keys:
                continue
            keys.add(pkey)
            try:
                part = TensorPart.load(store, pkey)
            except ObjectNotFoundError:
                continue
            keys.update(chunk_key(k) for k in part.index.keys)
            keys.update(chunk_key(p.key) for p in part.patches)
    index_keys = _index_objects(store, commits, sealed)
    keys.update(index_keys if index_keys is not None else store.list(INDEXES))
    return keys


def gc(url: str | os.PathLike[str] | Store, older_than: float = DEFAULT_GRACE_SECONDS,
       dry_run: bool = True, storage_options: Mapping[str, Any] | None = None,
       keep_ref_records: int = 8) -> GcReport:
    """Find (and unless `dry_run`, delete) chunks, parts, states, commits and index objects
    that no branch, tag, saved view or commit reaches, and temp files of writes that never
    finished, when older than `older_than` seconds; prune old ref records beyond the newest
    `keep_ref_records` per branch. Safe beside running readers and writers as long as no
    writer holds unflushed chunks longer than `older_than`."""
    if isinstance(keep_ref_records, bool) or not isinstance(keep_ref_records, int) \
            or keep_ref_records < 1:
        raise InvalidArgumentError(
            f"gc(keep_ref_records={keep_ref_records!r}): keep at least the head record of "
            "each branch; pass an int >= 1 (default 8)")
    store = open_store(url, storage_options)
    read_dataset_info(store)
    keep = reachable_objects(store, keep_ref_records)
    report = GcReport(dry_run, reachable=len(keep))
    now = time.time()
    seen: set[str] = set()
    for prefix in _SWEPT:
        for key, size, mtime in store.list_info(prefix):
            if key in keep or key in seen:
                continue
            seen.add(key)
            if older_than > 0 and (mtime is None or now - mtime < older_than):
                report.kept_young += 1
                continue
            report.unreachable.append(key)
            report.bytes += size or 0
    refs = RefStore(store)
    for b in refs.branches():
        n = max(0, len(refs._seqs(b)) - keep_ref_records)
        report.ref_records_pruned += n
        if not dry_run and n:
            refs.prune(b, keep_ref_records)
    if not dry_run:
        for key in report.unreachable:  # pointers first, what they point at last
            store.delete(key)
    report.temporary = store.clean_temporary(older_than, dry_run)
    return report
