"""Three-way merge from the common ancestor, in row ids, with conflict policies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plane._errors import InvalidArgumentError, MergeConflictError
from plane.core._info import merge_info
from plane.core._nulls import encode_nullable
from plane.core._snapshot import Snapshot
from plane.core._working import WorkingState, merge_meta
from plane.version._diff import Diff, _equal, compute_diff, physical_of, read_physical

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


def _conflicts(d_ours: Diff, d_theirs: Diff, ours: Snapshot, theirs: Snapshot,
               alias: dict[str, str]) -> dict[str, dict[str, np.ndarray]]:
    """Per tensor: rows updated on both sides differently, and delete-vs-update rows
    (`alias`: their name -> our name of a tensor one side renamed)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for t, dt in d_theirs.tensors.items():
        on = alias.get(t, t)
        do = d_ours.tensors.get(on)
        if do is None or t in d_theirs.tensors_added:
            continue
        both = np.intersect1d(dt.updated, do.updated)
        differ = np.zeros(0, np.int64)
        if both.shape[0]:
            vo = read_physical(ours, on, physical_of(ours, both))
            vt = read_physical(theirs, t, physical_of(theirs, both))
            differ = both[[not _equal(a, b) for a, b in zip(vo, vt)]]
        kinds = {"both_updated": differ,
                 "they_deleted_we_updated": np.intersect1d(d_theirs.rows_deleted, do.updated),
                 "we_deleted_they_updated": np.intersect1d(d_ours.rows_deleted, dt.updated)}
        if any(v.shape[0] for v in kinds.values()):
            out[t] = kinds
    return out


def _renames(d_ours: Diff, d_theirs: Diff, label: str, branch: str | None,
             ours_names: tuple[str, ...]) -> tuple[dict[str, str], dict[str, str]]:
    """(renames of theirs to apply here: old -> new, their name -> our name of the tensors
    one side renamed). A tensor renamed on one side and changed, deleted or renamed
    otherwise on the other is a MergeConflictError naming the fix."""
    apply: dict[str, str] = {}
    alias: dict[str, str] = {}

    def changed(d: Diff, t: str) -> bool:
        td = d.tensors.get(t)
        return bool(td is not None and td.updated.shape[0]) or t in d.schema_changed

    def refuse(a: str, b: str, side: str, other: str, what: str) -> MergeConflictError:
        return MergeConflictError(
            f"tensor {a!r} was renamed to {b!r} on {side} and {what} on {other}; nothing was "
            f"changed. Rename it on {other} too (ds.rename_tensor({a!r}, {b!r})), commit, and "
            "merge again", {a: []})

    ours_name = f"branch {branch!r}"
    for a, b in d_theirs.tensors_renamed.items():
        if a in d_ours.tensors_renamed:
            if d_ours.tensors_renamed[a] != b:
                raise MergeConflictError(
                    f"tensor {a!r} was renamed to {b!r} on {label} and to "
                    f"{d_ours.tensors_renamed[a]!r} on {ours_name}; nothing was changed. "
                    "Rename it to the same name on both, commit, and merge again", {a: []})
            continue  # the same rename on both sides: one tensor `b` on each
        if a in d_ours.tensors_removed:
            raise refuse(a, b, label, ours_name, "deleted")
        if changed(d_ours, a):
            raise refuse(a, b, label, ours_name, "changed")
        if b in ours_names:
            raise MergeConflictError(
                f"tensor {a!r} was renamed to {b!r} on {label}, but {ours_name} has another "
                f"tensor {b!r}; nothing was changed. Rename or delete one of them, commit, "
                "and merge again", {b: []})
        apply[a] = b
        alias[b] = a
    for a, b in d_ours.tensors_renamed.items():
        if a in d_theirs.tensors_renamed:
            continue
        if a in d_theirs.tensors_removed:
            raise refuse(a, b, ours_name, label, "deleted")
        if changed(d_theirs, a):
            raise refuse(a, b, ours_name, label, "changed")
        alias[a] = b
    return apply, alias


def merge_into(ws: WorkingState, theirs: Snapshot, base: Snapshot, their_commit: str,
               label: str, policy: str, message: str | None) -> MergeResult:
    """Apply base->theirs changes onto the working state `ws` (a writable, clean branch) and
    commit (a merge commit whose second parent is `their_commit`)."""
    if policy not in POLICIES:
        raise InvalidArgumentError(f"conflicts={policy!r}: use one of {', '.join(POLICIES)}")
    ours = ws.view()
    d_theirs = compute_diff(base, theirs, "base", label)
    d_ours = compute_diff(base, ours, "base", "ours")
    renames, alias = _renames(d_ours, d_theirs, label, ws.branch, ours.tensor_names)
    info, info_clash = merge_info(base.state.info, ours.state.info, theirs.state.info)
    if info_clash and policy == "fail":
        raise MergeConflictError(
            f"merge of {label} into {ws.branch!r}: ds.info key(s) {info_clash} were set "
            "differently on both sides; nothing was changed. Resolve with conflicts='ours' or "
            "conflicts='theirs', or set them equal on one branch and merge again",
            {"<info>": []})
    if policy == "theirs":
        info.update({k: theirs.state.info[k] for k in info_clash if k in theirs.state.info})
        for k in info_clash:
            if k not in theirs.state.info:
                info.pop(k, None)
    found = _conflicts(d_ours, d_theirs, ours, theirs, alias)
    same_new = [t for t in d_theirs.tensors_added if t in d_ours.tensors_added]
    for t in same_new:
        if ours.meta(t).to_dict() != theirs.meta(t).to_dict():
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
            f"merge of {label} into {ws.branch!r} has conflicts ({desc}); nothing was "
            "changed. Resolve with conflicts='ours' or conflicts='theirs', or fix the rows on "
            "one branch and merge again", flat)
    res = MergeResult(None, conflicts=flat)
    # from here on `ours` (a view of the working state before the merge) is not read again:
    # the rows and tensors are the working state's own

    # 0. what is not rows: tensors they renamed, the info dict, the indexes they dropped
    for a, b in renames.items():
        ws.rename_tensor(a, b)
    if info != ws.user_info:
        ws.set_info(info)
    ws.hide_indexes(sorted(set(theirs.state.hidden_indexes) - set(base.state.hidden_indexes)))

    # 1. tensors created on their side
    for t in d_theirs.tensors_added:
        if t not in ws.writers:
            ws.add_tensor(theirs.meta(t))
            res.tensors_added.append(t)
    for t in d_theirs.tensors_removed:
        if t in ws.writers and not d_ours.tensors.get(t) and t not in d_ours.schema_changed:
            ws.drop_tensor(t)
            res.tensors_removed.append(t)
    for t in d_theirs.schema_changed:
        if t in ws.writers:  # class names / learned dtype: take the richer side
            w = ws.writers[t]
            w.meta = merge_meta(w.meta, theirs.meta(t), label)
            w.dirty = True
            ws.changed()

    # 2. rows they appended (and, with "theirs", rows we deleted that they updated)
    add_set = np.setdiff1d(d_theirs.rows_added, _live(ws)[0], assume_unique=True)
    if policy == "theirs":
        revive = np.concatenate([k["we_deleted_they_updated"] for k in found.values()]
                                or [np.zeros(0, np.int64)])
        add_set = np.union1d(add_set, revive)
    their_order = theirs.row_ids
    add_ids = their_order[np.isin(their_order, add_set)]  # in their row order
    if add_ids.shape[0]:
        tp = physical_of(theirs, add_ids)
        cols: dict[str, Any] = {}
        for t in ws.writers:
            tn = {o: n for n, o in alias.items()}.get(t, t)  # its name on their side
            cols[t] = read_physical(theirs, tn, tp, decode=True) if tn in theirs \
                else [None] * add_ids.shape[0]
        ws.extend(cols, len(add_ids), row_ids=add_ids)
        res.rows_added = int(add_ids.shape[0])

    # 3. rows they updated (and every existing row of a tensor they created)
    for t, dt in d_theirs.tensors.items():
        if t not in ws.writers:
            continue
        ids = dt.updated
        if t in d_theirs.tensors_added and t in res.tensors_added:
            ids = np.setdiff1d(theirs.row_ids, add_ids, assume_unique=True)
        if t in found and policy != "theirs":
            ids = np.setdiff1d(ids, found[t]["both_updated"], assume_unique=True)
        ids = np.setdiff1d(ids, np.setdiff1d(d_ours.rows_deleted, add_ids), assume_unique=True)
        if not ids.shape[0]:
            continue
        phys = physical_in(ws, ids)
        keep = phys >= 0
        ids, phys = ids[keep], phys[keep]
        if ids.shape[0]:
            order = np.argsort(phys, kind="stable")  # a patch lists its rows in order
            ids, phys = ids[order], phys[order]
            vals = read_physical(theirs, t, physical_of(theirs, ids), decode=True)
            block, meta, nulls = encode_nullable(ws.writers[t].meta, vals, 0)
            null = np.zeros(len(vals), bool)
            null[nulls] = True
            if block is None:  # nothing but nulls in a tensor with no layout yet
                ws.mark_null(t, phys)
            else:
                ws.update(t, phys, block, meta, null)
            res.rows_updated[t] = int(ids.shape[0])

    # 4. rows they deleted
    dels = d_theirs.rows_deleted
    if policy == "ours":
        protected = np.unique(np.concatenate([k["they_deleted_we_updated"]
                                              for k in found.values()]
                                             or [np.zeros(0, np.int64)]))
        dels = np.setdiff1d(dels, protected, assume_unique=True)
    phys = physical_in(ws, dels)
    phys = phys[phys >= 0]
    if phys.shape[0]:
        ws.delete(phys)
        res.rows_deleted = int(phys.shape[0])
    msg = message or f"Merge {label} into {ws.branch}"
    res.commit = ws.publish(msg, parents=(their_commit,))
    return res


def _live(ws: WorkingState) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, physical rows) of the live rows of the working state, in row order."""
    phys = ws.to_physical(np.arange(len(ws), dtype=np.int64))
    return ws.row_ids.take(phys), phys


def physical_in(ws: WorkingState, ids: np.ndarray) -> np.ndarray:
    """Physical rows of `ids` among the live rows of `ws` (-1 where absent)."""
    rid, live = _live(ws)
    order = np.argsort(rid, kind="stable")
    srt = rid[order]
    if not srt.shape[0]:
        return np.full(ids.shape[0], -1, np.int64)
    at = np.searchsorted(srt, ids)
    at_c = np.minimum(at, srt.shape[0] - 1)
    found = (at < srt.shape[0]) & (srt[at_c] == ids)
    out: np.ndarray = np.where(found, live[order[at_c]], -1).astype(np.int64)
    return out
