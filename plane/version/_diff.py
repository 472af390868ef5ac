"""Row-level diff between two versions: rows added, updated, deleted per tensor; schema changes.

Rows are matched by stable row id. A row is *updated* when its value changed: candidates are
rows whose value comes from a different place (another chunk slot or a patch), confirmed by
comparing the values, so compaction or a write of an equal value is not reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plane.core._nulls import is_in
from plane.core._reader import read_samples
from plane.core._snapshot import Snapshot

__all__ = ["Diff", "TensorDiff", "compute_diff", "live_ids", "physical_of", "renamed_tensors"]


@dataclass
class TensorDiff:
    """Row ids added, updated and deleted in one tensor between two versions."""

    added: np.ndarray
    updated: np.ndarray
    deleted: np.ndarray

    def __bool__(self) -> bool:
        return bool(self.added.shape[0] or self.updated.shape[0] or self.deleted.shape[0])

    def to_dict(self) -> dict[str, list[int]]:
        return {"added": self.added.tolist(), "updated": self.updated.tolist(),
                "deleted": self.deleted.tolist()}


@dataclass
class Diff:
    """The differences from version `a` to version `b`."""

    a: str
    b: str
    tensors: dict[str, TensorDiff]
    tensors_added: list[str] = field(default_factory=list)
    tensors_removed: list[str] = field(default_factory=list)
    schema_changed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    rows_added: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    rows_deleted: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: old name -> new name of the tensors renamed from a to b (their rows are in `tensors`
    #: under the new name, compared with the old name's values)
    tensors_renamed: dict[str, str] = field(default_factory=dict)
    #: ds.info keys whose value changed: key -> (old, new); None stands for absent
    info_changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    _old: Snapshot | None = field(default=None, repr=False)
    _new: Snapshot | None = field(default=None, repr=False)

    def __bool__(self) -> bool:
        return bool(any(self.tensors.values()) or self.tensors_added or self.tensors_removed
                    or self.schema_changed or self.tensors_renamed or self.info_changed)

    def values(self, tensor: str, row_ids: Any = None) -> list[tuple[int, Any, Any]]:
        """(row id, old value, new value) for updated rows of `tensor` (or the given ids);
        None stands for "absent in that version"."""
        assert self._old is not None and self._new is not None
        ids = self.tensors[tensor].updated if row_ids is None else np.asarray(row_ids, np.int64)
        was = {n: o for o, n in self.tensors_renamed.items()}.get(tensor, tensor)
        old = _values_by_id(self._old, was, ids)
        new = _values_by_id(self._new, tensor, ids)
        return [(int(i), o, n) for i, o, n in zip(ids, old, new)]

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b,
                "tensors": {k: v.to_dict() for k, v in self.tensors.items()},
                "tensors_added": self.tensors_added, "tensors_removed": self.tensors_removed,
                "schema_changed": {k: {"old": o, "new": n}
                                   for k, (o, n) in self.schema_changed.items()},
                "tensors_renamed": self.tensors_renamed,
                "info_changed": {k: {"old": o, "new": n}
                                 for k, (o, n) in self.info_changed.items()},
                "rows_added": self.rows_added.tolist(), "rows_deleted": self.rows_deleted.tolist()}

    def __str__(self) -> str:
        lines = [f"diff {self.a} -> {self.b}"]
        lines.append(f"  rows: +{self.rows_added.shape[0]} -{self.rows_deleted.shape[0]}")
        for t in self.tensors_added:
            lines.append(f"  + tensor {t}")
        for t in self.tensors_removed:
            lines.append(f"  - tensor {t}")
        for old_name, new_name in self.tensors_renamed.items():
            lines.append(f"  ~ tensor {old_name} renamed to {new_name}")
        for k in self.info_changed:
            lines.append(f"  ~ info[{k!r}] changed")
        for t, (o, n) in self.schema_changed.items():
            changed = sorted(k for k in set(o) | set(n) if o.get(k) != n.get(k)
                             and k != "name")  # a new name is listed as a rename
            lines.append(f"  ~ tensor {t}: schema changed ({', '.join(changed)})")
        for t, d in self.tensors.items():
            if d.updated.shape[0]:
                ids = ", ".join(str(i) for i in d.updated[:8].tolist())
                more = " ..." if d.updated.shape[0] > 8 else ""
                lines.append(f"  ~ {t}: {d.updated.shape[0]} rows updated ({ids}{more})")
        if not self:
            lines.append("  (no changes)")
        return "\n".join(lines)


def renamed_tensors(old: Snapshot, new: Snapshot) -> dict[str, str]:
    """old name -> new name of the tensors of `old` that `new` has under another name (the
    state's `renames` remember a tensor's former names)."""
    out: dict[str, str] = {}
    for t, former in new.state.renames.items():
        if t in new and t not in old:
            f = next((f for f in former if f in old and f not in new and f not in out), None)
            if f is not None:
                out[f] = t
    return out


def _info_changes(a: dict[str, Any], b: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {k: (a.get(k), b.get(k)) for k in dict.fromkeys([*a, *b]) if a.get(k) != b.get(k)
            or (k in a) != (k in b)}


def live_ids(snap: Snapshot) -> tuple[np.ndarray, np.ndarray]:
    """(row ids, physical rows) of every live row of `snap`, in row order."""
    phys = snap.to_physical(np.arange(len(snap), dtype=np.int64))
    return snap.state.row_ids.take(phys), phys


def physical_of(snap: Snapshot, ids: np.ndarray) -> np.ndarray:
    """Physical rows of `ids` in `snap` (-1 where absent)."""
    rid, phys = live_ids(snap)
    order = np.argsort(rid, kind="stable")
    srt = rid[order]
    at = np.searchsorted(srt, ids)
    at_c = np.minimum(at, max(srt.shape[0] - 1, 0))
    found = (at < srt.shape[0]) & (srt[at_c] == ids) if srt.shape[0] else np.zeros(
        ids.shape[0], bool)
    out: np.ndarray = np.where(found, phys[order][at_c] if srt.shape[0] else -1, -1)
    return out


def read_physical(snap: Snapshot, tensor: str, phys: np.ndarray, decode: bool = True
                  ) -> list[Any]:
    """Values of `tensor` at physical rows `phys` (compressed samples as stored bytes; None
    for a null row)."""
    meta = snap.meta(tensor)
    raw = meta.sample_compression is not None
    out = list(read_samples(snap.reader, meta, snap.index(tensor), phys, decode and not raw,
                            True, snap.patch_map(tensor)))
    nulls = snap.part(tensor).nulls
    if nulls.shape[0]:
        for i in np.flatnonzero(is_in(phys, nulls)).tolist():
            out[i] = None
    return out


def _values_by_id(snap: Snapshot, tensor: str, ids: np.ndarray) -> list[Any]:
    if tensor not in snap:
        return [None] * ids.shape[0]
    phys = physical_of(snap, ids)
    out: list[Any] = [None] * ids.shape[0]
    ok = np.flatnonzero(phys >= 0)
    for j, v in zip(ok, read_physical(snap, tensor, phys[ok])):
        out[int(j)] = v
    return out


def _sources(snap: Snapshot, tensor: str, phys: np.ndarray, codes: dict[str, int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """Where each physical row's value lives: (object code, slot) — equal means same value."""
    idx = snap.index(tensor)
    first = [codes.setdefault(idx.keys[int(idx.key_ptr[e])], len(codes))
             if idx.key_ptr[e + 1] > idx.key_ptr[e] else -1 for e in range(idx.num_entries)]
    ent, local = idx.locate(phys)
    code = np.asarray(first, np.int64)[ent] if ent.shape[0] else np.zeros(0, np.int64)
    local = np.where(code < 0, 0, local)
    pm = snap.patch_map(tensor)
    if pm is not None:
        sel, at = pm.hits(phys)
        pcodes = np.asarray([codes.setdefault(k, len(codes)) for k in pm.keys], np.int64)
        code[sel] = pcodes[pm.which[at]]
        local[sel] = pm.local[at]
    return code, local


def _equal(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.shape(a) == np.shape(b) and np.array_equal(a, b))
    return bool(a == b)


def updated_rows(old: Snapshot, new: Snapshot, tensor: str, common: np.ndarray,
                 pa: np.ndarray, pb: np.ndarray, old_name: str | None = None) -> np.ndarray:
    """Row ids among `common` (physical pa in old, pb in new) whose value differs;
    `old_name`: the tensor's name in `old` when it was renamed since."""
    was = old_name or tensor
    codes: dict[str, int] = {}
    ca, la = _sources(old, was, pa, codes)
    cb, lb = _sources(new, tensor, pb, codes)
    cand = np.flatnonzero((ca != cb) | (la != lb))
    if not cand.shape[0]:
        return np.zeros(0, np.int64)
    va = read_physical(old, was, pa[cand])
    vb = read_physical(new, tensor, pb[cand])
    diff = [i for i, x, y in zip(cand, va, vb) if not _equal(x, y)]
    return np.sort(common[np.asarray(diff, np.int64)]) if diff else np.zeros(0, np.int64)


def compute_diff(old: Snapshot, new: Snapshot, a: str, b: str) -> Diff:
    """The diff from version `old` (labelled `a`) to version `new` (labelled `b`)."""
    ida, pha = live_ids(old)
    idb, phb = live_ids(new)
    added = np.setdiff1d(idb, ida, assume_unique=True)
    deleted = np.setdiff1d(ida, idb, assume_unique=True)
    common, ia, ib = np.intersect1d(ida, idb, assume_unique=True, return_indices=True)
    pa, pb = pha[ia], phb[ib]
    ta, tb = list(old.tensor_names), list(new.tensor_names)
    renamed = renamed_tensors(old, new)
    was = {n: o for o, n in renamed.items()}
    out = Diff(a, b, {}, [t for t in tb if t not in ta and t not in was],
               [t for t in ta if t not in tb and t not in renamed],
               rows_added=added, rows_deleted=deleted, tensors_renamed=renamed,
               info_changed=_info_changes(old.state.info, new.state.info), _old=old, _new=new)
    for t in tb:
        o = was.get(t, t)
        if o not in ta:
            out.tensors[t] = TensorDiff(idb.copy(), np.zeros(0, np.int64),
                                        np.zeros(0, np.int64))
            continue
        ma, mb = old.meta(o).to_dict(), new.meta(t).to_dict()
        if {**ma, "name": t} != mb:
            out.schema_changed[t] = (ma, mb)
        out.tensors[t] = TensorDiff(added, updated_rows(old, new, t, common, pa, pb, o),
                                    deleted)
    for t in out.tensors_removed:
        out.tensors[t] = TensorDiff(np.zeros(0, np.int64), np.zeros(0, np.int64), ida.copy())
    return out
