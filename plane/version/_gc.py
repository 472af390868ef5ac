"""Garbage collection: delete objects no ref, tag or commit reaches (dry run by default)."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from plane._errors import ObjectNotFoundError
from plane.core._layout import RefStore, chunk_key, read_dataset_info
from plane.core._state import Commit, State, TensorPart
from plane.storage import Store, open_store

__all__ = ["GcReport", "gc", "DEFAULT_GRACE_SECONDS"]

#: objects younger than this are never collected: a writer may have stored chunks that its
#: next flush will reference (a session that stays open longer must flush more often)
DEFAULT_GRACE_SECONDS = 7 * 24 * 3600.0
_SWEPT = ("commits/", "states/", "parts/", "chunks/")


@dataclass
class GcReport:
    dry_run: bool
    reachable: int = 0
    unreachable: list[str] = field(default_factory=list)
    bytes: int = 0
    kept_young: int = 0
    ref_records_pruned: int = 0

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        prune = "to prune" if self.dry_run else "pruned"
        return (f"gc: {self.reachable} objects reachable; {verb} {len(self.unreachable)} "
                f"unreachable objects ({self.bytes / 1e6:.1f} MB); kept {self.kept_young} "
                f"unreachable objects younger than the grace period; "
                f"{self.ref_records_pruned} old ref records {prune}")


def reachable_objects(store: Store, keep_ref_records: int = 8) -> set[str]:
    """Every key reachable from the branch heads (newest records), tags and their history."""
    refs = RefStore(store)
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
    keys = {f"commits/{c}.json" for c in commits} | set(states)
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
    return keys


def gc(url: str | os.PathLike[str] | Store, older_than: float = DEFAULT_GRACE_SECONDS,
       dry_run: bool = True, storage_options: Mapping[str, Any] | None = None,
       keep_ref_records: int = 8) -> GcReport:
    """Find (and unless `dry_run`, delete) chunks, parts, states and commits that no branch,
    tag or commit reaches and that are older than `older_than` seconds; prune old ref records
    beyond the newest `keep_ref_records` per branch. Safe beside running readers and writers
    as long as no writer holds unflushed chunks longer than `older_than`."""
    store = open_store(url, storage_options)
    read_dataset_info(store)
    keep = reachable_objects(store, keep_ref_records)
    report = GcReport(dry_run, reachable=len(keep))
    now = time.time()
    for prefix in _SWEPT:
        for key, size, mtime in store.list_info(prefix):
            if key in keep:
                continue
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
        for key in report.unreachable:  # history roots first, chunks last
            store.delete(key)
    return report
