"""Three-way merge from the common ancestor, in row ids, with conflict policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import InvalidArgumentError, MergeConflictError
from plane.version._diff import Diff, _equal, compute_diff, physical_of, read_physical

if TYPE_CHECKING:
    from plane.dataset._dataset import Dataset

__all__ = ["MergeResult", "merge_into", "POLICIES"]

POLICIES = ("fail", "ours", "theirs")


@dataclass
class MergeResult:
    """What a merge did. `conflicts` lists the conflicting row ids per tensor (resolved by the
    policy, or the reason a "fail" merge raised)."""

    commit: str | None
    fast_forward: bool = False
    up_to_date: bool = False
    rows_added: int = 0
    rows_updated: dict[str, int] = field(default_factory=dict)
    rows_deleted: int = 0
    tensors_added: list[str] = field(default_factory=list)
    tensors_removed: list[str] = field(default_factory=list)
    conflicts: dict[str, list[int]] = field(default_factory=dict)

    def __str__(self) -> str:
        if self.up_to_date:
            return "already up to date"
        if self.fast_forward:
            return f"fast-forward to {self.commit}"
        upd = sum(self.rows_updated.values())
        text = (f"merge commit {self.commit}: +{self.rows_added} rows, {upd} updated, "
                f"-{self.rows_deleted} deleted")
        if self.tensors_added:
            text += f", tensors added {self.tensors_added}"
        if self.conflicts:
            n = sum(len(v) for v in self.conflicts.values())
            text += f", {n} conflicts resolved"
        return text


def _conflicts(d_ours: Diff, d_theirs: Diff, ours: Dataset, theirs: Dataset
               ) -> dict[str, dict[str, np.ndarray]]:
    """Per tensor: rows updated on both sides differently, and delete-vs-update rows."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for t, dt in d_theirs.tensors.items():
        do = d_ours.tensors.get(t)
        if do is None or t in d_theirs.tensors_added:
            continue
        both = np.intersect1d(dt.updated, do.updated)
        differ = np.zeros(0, np.int64)
        if both.shape[0]:
            vo = read_physical(ours, t, physical_of(ours, both))
            vt = read_physical(theirs, t, physical_of(theirs, both))
            differ = both[[not _equal(a, b) for a, b in zip(vo, vt)]]
        kinds = {"both_updated": differ,
                 "they_deleted_we_updated": np.intersect1d(d_theirs.rows_deleted, do.updated),
                 "we_deleted_they_updated": np.intersect1d(d_ours.rows_deleted, dt.updated)}
        if any(v.shape[0] for v in kinds.values()):
            out[t] = kinds
    return out


def merge_into(ours: Dataset, theirs: Dataset, base: Dataset, their_commit: str,
               label: str, policy: str, message: str | None) -> MergeResult:
    """Apply base->theirs changes onto `ours` (a writable, clean branch) and commit."""
    if policy not in POLICIES:
        raise InvalidArgumentError(f"conflicts={policy!r}: use one of {', '.join(POLICIES)}")
    d_theirs = compute_diff(base, theirs, "base", label)
    d_ours = compute_diff(base, ours, "base", "ours")
    found = _conflicts(d_ours, d_theirs, ours, theirs)
    same_new = [t for t in d_theirs.tensors_added if t in d_ours.tensors_added]
    for t in same_new:
        if ours._writers[t].meta.to_dict() != theirs._writers[t].meta.to_dict():
            raise MergeConflictError(f"tensor {t!r} was created on both sides with different "
                                     "schemas; rename or delete one and merge again",
                                     {t: []})
    flat = {t: sorted(set(np.concatenate(list(k.values())).tolist())) for t, k in found.items()}
    if found and policy == "fail":
        desc = "; ".join(
            f"{t}: " + ", ".join(f"{kind.replace('_', ' ')} {v[:10].tolist()}"
                                 for kind, v in k.items() if v.shape[0])
            for t, k in found.items())
        raise MergeConflictError(
            f"merge of {label} into {ours.current_branch!r} has conflicts ({desc}); nothing was "
            "changed. Resolve with conflicts='ours' or conflicts='theirs', or fix the rows on "
            "one branch and merge again", flat)
    res = MergeResult(None, conflicts=flat)

    # 1. tensors created on their side
    for t in d_theirs.tensors_added:
        if t not in ours._writers:
            ours._add_tensor(theirs._writers[t].meta)
            res.tensors_added.append(t)
    for t in d_theirs.tensors_removed:
        if t in ours._writers and not d_ours.tensors.get(t) and t not in d_ours.schema_changed:
            ours.delete_tensor(t)
            res.tensors_removed.append(t)
    for t in d_theirs.schema_changed:
        if t in ours._writers:  # class names / learned dtype: take the richer side
            from plane.core._working import merge_meta

            w = ours._writers[t]
            w.meta = merge_meta(w.meta, theirs._writers[t].meta, label)
            w.dirty = True

    # 2. rows they appended (and, with "theirs", rows we deleted that they updated)
    add_set = np.setdiff1d(d_theirs.rows_added, physical_ids(ours), assume_unique=True)
    if policy == "theirs":
        revive = np.concatenate([k["we_deleted_they_updated"] for k in found.values()]
                                or [np.zeros(0, np.int64)])
        add_set = np.union1d(add_set, revive)
    their_order = live_ids_of(theirs)
    add_ids = their_order[np.isin(their_order, add_set)]  # in their row order
    if add_ids.shape[0]:
        tp = physical_of(theirs, add_ids)
        cols: dict[str, Any] = {}
        for t in ours._writers:
            cols[t] = read_physical(theirs, t, tp, decode=True) if t in theirs._writers \
                else [None] * add_ids.shape[0]
        ours._ws.extend(cols, len(add_ids), row_ids=add_ids)
        res.rows_added = int(add_ids.shape[0])

    # 3. rows they updated (and every existing row of a tensor they created)
    for t, dt in d_theirs.tensors.items():
        if t not in ours._writers:
            continue
        ids = dt.updated
        if t in d_theirs.tensors_added and t in res.tensors_added:
            ids = np.setdiff1d(live_ids_of(theirs), add_ids, assume_unique=True)
        if t in found and policy != "theirs":
            ids = np.setdiff1d(ids, found[t]["both_updated"], assume_unique=True)
        ids = np.setdiff1d(ids, np.setdiff1d(d_ours.rows_deleted, add_ids), assume_unique=True)
        if not ids.shape[0]:
            continue
        pos = logical_of(ours, ids)
        keep = pos >= 0
        ids, pos = ids[keep], pos[keep]
        if ids.shape[0]:
            vals = read_physical(theirs, t, physical_of(theirs, ids), decode=True)
            ours._update(t, pos, vals)
            res.rows_updated[t] = int(ids.shape[0])

    # 4. rows they deleted
    dels = d_theirs.rows_deleted
    if policy == "ours":
        protected = np.unique(np.concatenate([k["they_deleted_we_updated"]
                                              for k in found.values()]
                                             or [np.zeros(0, np.int64)]))
        dels = np.setdiff1d(dels, protected, assume_unique=True)
    pos = logical_of(ours, dels)
    pos = pos[pos >= 0]
    if pos.shape[0]:
        ours.delete(pos)
        res.rows_deleted = int(pos.shape[0])
    msg = message or f"Merge {label} into {ours.current_branch}"
    res.commit = ours._publish(msg, parents=(their_commit,))
    return res


def physical_ids(ds: Dataset) -> np.ndarray:
    return live_ids_of(ds)


def live_ids_of(ds: Dataset) -> np.ndarray:
    return ds._row_ids.take(ds._to_physical(np.arange(len(ds), dtype=np.int64)))


def logical_of(ds: Dataset, ids: np.ndarray) -> np.ndarray:
    """Row positions of `ids` in `ds` (-1 where absent)."""
    rid = live_ids_of(ds)
    order = np.argsort(rid, kind="stable")
    srt = rid[order]
    if not srt.shape[0]:
        return np.full(ids.shape[0], -1, np.int64)
    at = np.searchsorted(srt, ids)
    at_c = np.minimum(at, srt.shape[0] - 1)
    found = (at < srt.shape[0]) & (srt[at_c] == ids)
    out: np.ndarray = np.where(found, order[at_c], -1).astype(np.int64)
    return out
