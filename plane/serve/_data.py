"""The server's view of one dataset, through the public API only: versions, rows, edits."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import plane
from plane._errors import InvalidArgumentError, VersionNotFoundError

__all__ = ["DataAccess", "MergePreview", "check_version"]

_MAX_VERSION = 300


def check_version(v: str) -> str:
    """`v` if it can name a branch, tag or commit; refuse internal forms ("state:KEY")."""
    if not v or len(v) > _MAX_VERSION or v.startswith("state:") or any(
            ord(c) < 32 for c in v):
        raise VersionNotFoundError(f"no branch, tag or commit {v[:80]!r}: give a branch, tag "
                                   "or commit id as listed on the overview page")
    return v


@dataclass
class MergePreview:
    """What merging `theirs` into `ours` would do, computed from the two diffs from the base."""

    ours: str
    theirs: str
    base: str | None
    up_to_date: bool = False
    fast_forward: bool = False
    rows_added: int = 0
    rows_deleted: int = 0
    rows_updated: dict[str, int] = field(default_factory=dict)
    tensors_added: list[str] = field(default_factory=list)
    #: tensor -> kind -> row ids
    conflicts: dict[str, dict[str, list[int]]] = field(default_factory=dict)


class DataAccess:
    """Opens the dataset at the versions pages ask for (cached per commit) and applies edits.

    Every dataset call runs under one lock: Dataset objects are not shared across threads.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None,
                 read_only: bool = False, cache: int = 8, version: str | None = None
                 ) -> None:
        self.url = url
        self.storage_options = dict(storage_options) if storage_options else None
        self.read_only = read_only
        self.lock = threading.RLock()
        self.root = plane.open(url, read_only=True, storage_options=self.storage_options,
                               version=check_version(version) if version else None)
        self.default = version or self.root.current_branch or "main"
        self._cache: OrderedDict[tuple[str, str | None], plane.Dataset] = OrderedDict()
        self._max = cache
        self._ids: OrderedDict[tuple[str, str | None, int], np.ndarray] = OrderedDict()

    # ---- versions -------------------------------------------------------------------------
    def resolve(self, v: str | None) -> tuple[str, str | None, str | None]:
        """(version, branch or None, commit or None)."""
        v = check_version(v or self.default)
        branch, commit = self.root.versions.resolve(v)
        return v, branch, commit

    def at(self, v: str | None) -> plane.Dataset:
        """A read-only dataset at version `v` (default: the default branch)."""
        with self.lock:
            v, _, commit = self.resolve(v)
            key = (v, commit)
            ds = self._cache.get(key)
            if ds is None:
                ds = plane.open(self.url, read_only=True, version=v,
                                storage_options=self.storage_options)
                self._cache[key] = ds
                if len(self._cache) > self._max:
                    self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(key)
            return ds

    def row_ids(self, v: str | None, ds: plane.Dataset) -> np.ndarray:
        """Row ids of every row of `ds` (cached per version and commit)."""
        with self.lock:
            v, _, commit = self.resolve(v)
            key = (v, commit, len(ds))
            ids = self._ids.get(key)
            if ids is None:
                ids = ds.row_ids
                self._ids[key] = ids
                if len(self._ids) > self._max:
                    self._ids.popitem(last=False)
            return ids

    def positions_of(self, v: str | None, ds: plane.Dataset, ids: np.ndarray) -> np.ndarray:
        """Row positions of row ids in `ds`; InvalidArgumentError names ids that are absent."""
        return positions_of(self.row_ids(v, ds), ids, v or self.default)

    # ---- merge preview --------------------------------------------------------------------
    def merge_preview(self, ours: str, theirs: str) -> MergePreview:
        """Rows a merge of `theirs` into `ours` would add/update/delete and the conflicting
        rows, without writing: the two diffs from the merge base, as `merge` compares them."""
        from plane.version import merge_base

        with self.lock:
            _, _, oc = self.resolve(ours)
            _, _, tc = self.resolve(theirs)
            out = MergePreview(ours, theirs, None)
            if tc is None:
                raise InvalidArgumentError(f"{theirs!r} has no commits to merge")
            if oc == tc:
                out.up_to_date = True
                return out
            base = merge_base(self.root.store, oc, tc) if oc else None
            out.base = base
            if base == tc:
                out.up_to_date = True
                return out
            vc = self.root.versions
            d_theirs = vc.diff(base, theirs) if base else None
            if base == oc or oc is None:
                out.fast_forward = True
            if d_theirs is None:
                return out
            d_ours = vc.diff(base, ours)
            out.rows_added = int(d_theirs.rows_added.shape[0])
            out.rows_deleted = int(d_theirs.rows_deleted.shape[0])
            out.tensors_added = list(d_theirs.tensors_added)
            for t, dt in d_theirs.tensors.items():
                if dt.updated.shape[0]:
                    out.rows_updated[t] = int(dt.updated.shape[0])
                do = d_ours.tensors.get(t)
                if out.fast_forward or do is None or t in d_theirs.tensors_added:
                    continue
                both = np.intersect1d(dt.updated, do.updated)
                differ: list[int] = []
                if both.shape[0]:
                    mine = d_ours.values(t, both)
                    other = d_theirs.values(t, both)
                    differ = [rid for (rid, _, a), (_, _, b) in zip(mine, other)
                              if not _same(a, b)]
                kinds = {"both updated": differ,
                         "they deleted, we updated":
                             np.intersect1d(d_theirs.rows_deleted, do.updated).tolist(),
                         "we deleted, they updated":
                             np.intersect1d(d_ours.rows_deleted, dt.updated).tolist()}
                if any(kinds.values()):
                    out.conflicts[t] = {k: v for k, v in kinds.items() if v}
            return out

    # ---- edits ----------------------------------------------------------------------------
    def edit(self, branch: str, action: str, ids: np.ndarray, tensor: str | None,
             label: str | None, message: str, new_branch: str | None = None) -> str:
        """Relabel or delete rows (by row id) on `branch` and commit; the commit id.

        The same calls as Python (`ds[t][rows] = label`, `ds.delete(rows)`, `ds.commit`), on a
        freshly opened writable dataset: on any error nothing is committed."""
        if self.read_only:
            raise plane.ReadOnlyError("this server was started with --read-only: edits are off")
        if action not in ("relabel", "delete"):
            raise InvalidArgumentError(f"unknown edit {action!r}: use relabel or delete")
        if ids.shape[0] == 0:
            raise InvalidArgumentError("no rows selected: tick the rows to edit first")
        with self.lock:
            check_version(branch)
            if new_branch:
                w = plane.open(self.url, version=None, storage_options=self.storage_options)
                w.versions.create_branch(new_branch, branch)
                branch = new_branch
            ds = plane.open(self.url, version=branch, storage_options=self.storage_options)
            if ds.current_branch is None:
                raise plane.ReadOnlyError(f"{branch!r} is a tag or commit: edits go on a "
                                          "branch; give a branch name or a new branch")
            pos = positions_of(ds.row_ids, ids, branch)
            if action == "relabel":
                if not tensor or tensor not in ds.tensors:
                    raise plane.TensorNotFoundError(
                        f"no tensor {tensor!r} to relabel; tensors: {', '.join(ds.tensors)}")
                if ds[tensor].htype != "class_label":
                    raise InvalidArgumentError(f"tensor {tensor!r} is {ds[tensor].htype}, not "
                                               "class_label: only class labels are relabelled")
                if not label:
                    raise InvalidArgumentError("no label given: pick a class name")
                ds[tensor][pos] = [label] * int(pos.shape[0])
            else:
                ds.delete(pos)
            what = (f"relabel {pos.shape[0]} row(s) of {tensor} as {label!r}"
                    if action == "relabel" else f"delete {pos.shape[0]} row(s)")
            cid: str = ds.commit(message or f"{what} (plane serve)")
            return cid

    def save_view(self, v: str, sql: str, params: Mapping[str, Any] | None, name: str) -> str:
        """Run the query at `v` and save its rows as view `name`; the view's key."""
        if self.read_only:
            raise plane.ReadOnlyError("this server was started with --read-only: saving "
                                      "views is off")
        with self.lock:
            v = check_version(v)
            ds = plane.open(self.url, version=v, storage_options=self.storage_options,
                            read_only=False)
            res = ds.query(sql, params)
            if not isinstance(res, plane.View):
                raise plane.QueryError("a grouped query (COUNT / GROUP BY) returns groups, not "
                                       "rows: only a query of rows can be saved as a view")
            key: str = res.save(name)
            return key


def positions_of(all_ids: np.ndarray, ids: np.ndarray, where: str) -> np.ndarray:
    order = np.argsort(all_ids, kind="stable")
    srt = all_ids[order]
    at = np.searchsorted(srt, ids)
    at = np.minimum(at, max(srt.shape[0] - 1, 0))
    found = (srt.shape[0] > 0) & (srt[at] == ids) if srt.shape[0] else np.zeros(ids.shape, bool)
    if not np.all(found):
        missing = ids[~found][:10].tolist()
        raise InvalidArgumentError(f"row id(s) {missing} are not in {where!r} (deleted or "
                                   "never there); reload the page")
    out: np.ndarray = order[at].astype(np.int64)
    return out


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    return bool(a == b)
