"""Query results: a view of some rows of one version, in result order, with their scores.

A view reads like a dataset (``view["caption"]``, ``len(view)``, ``view.rows()``), streams
with ``view.pytorch()`` / ``view.numpy()``, and saves by name (``view.save("hard_negatives")``)
to be reopened later, at the same version, with ``plane.load_view(ds, name)``. A saved view is
sealed (format version 3 on) and verified when loaded.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import (
    ChecksumError,
    MissingDependencyError,
    ObjectNotFoundError,
    PlaneError,
    QueryError,
    ReadOnlyError,
    VersionNotFoundError,
)
from plane.core._layout import (
    VIEWS,
    get_artifact_json,
    put_artifact_json,
    read_dataset_info,
    sealed_format,
    view_key,
    view_name_of,
)
from plane.core._nulls import cells, with_nulls
from plane.core._snapshot import Snapshot
from plane.core._state import Commit

if TYPE_CHECKING:
    from plane.loader import Loader

__all__ = ["View", "list_views", "load_view"]

_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
#: a view is the object views/<name>.json: the name stays well inside a file name's 255 bytes
MAX_VIEW_NAME = 200


def check_view_name(name: Any) -> str:
    """`name` if it can name a saved view, else QueryError saying why and what to use."""
    fix = f"use 1 to {MAX_VIEW_NAME} letters, digits, '_', '-' and '.'"
    if not isinstance(name, str):
        raise QueryError(f"invalid view name {name!r}: a name is a str, got "
                         f"{type(name).__name__}; {fix}")
    shown = repr(name) if len(name) <= 80 else repr(name[:77]) + "..."
    if not name or set(name) - _NAME_OK:
        raise QueryError(f"invalid view name {shown}: {fix}")
    if len(name) > MAX_VIEW_NAME:
        raise QueryError(f"invalid view name {shown}: it has {len(name)} characters; {fix}")
    return name


class View:
    """Rows (by position in version `snapshot`) in result order, with scores (or None).
    Later writes to the dataset do not move the view's rows: a Snapshot never changes."""

    def __init__(self, snapshot: Snapshot, positions: np.ndarray, scores: np.ndarray | None,
                 columns: list[str] | None = None, query: str = "",
                 score_name: str = "score", ids: np.ndarray | None = None) -> None:
        self.snapshot = snapshot
        self.positions = np.asarray(positions, np.int64)
        self._ids = ids
        self.scores = scores
        self.columns = columns
        self.query = query
        self.score_name = score_name

    # ---- reading --------------------------------------------------------------------------
    @property
    def ids(self) -> np.ndarray:
        """Stable row ids of the result rows, in order."""
        if self._ids is None:
            self._ids = self.snapshot.ids_at(self.positions)
        return self._ids

    @property
    def commit_id(self) -> str | None:
        """The commit the view's rows come from (None: an uncommitted state)."""
        return self.snapshot.commit_id

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    def __getitem__(self, tensor: str) -> Any:
        """The values of `tensor` for the result rows, in order (ndarray or list); null rows
        are None in a list, masked in an array (`numpy.ma.MaskedArray`)."""
        if tensor == self.score_name and self.scores is not None:
            return self.scores
        snap = self.snapshot
        if tensor not in snap:
            raise QueryError(f"no tensor {tensor!r}; tensors: {', '.join(snap.tensor_names)}")
        return with_nulls(snap.read(tensor, self.positions, True, False),
                          snap.null_mask(tensor, self.positions))

    def arrays(self, tensors: list[str] | None = None) -> dict[str, Any]:
        """The result's values as a dict {tensor: ndarray or list} (the selected tensors, or
        `tensors`), plus the scores; as ``ds[a:b].arrays()``. ``view.numpy()`` is a loader."""
        names = tensors or (self.columns if self.columns is not None
                           else list(self.snapshot.tensor_names))
        out = {n: self[n] for n in names if n != self.score_name or self.scores is None}
        if self.scores is not None and tensors is None:
            out[self.score_name] = self.scores
        return out

    def rows(self) -> list[dict[str, Any]]:
        """One dict per result row: the selected tensors, `id` and the score."""
        snap = self.snapshot
        cols = self.columns if self.columns is not None else list(snap.tensor_names)
        data = {c: cells(self[c]) for c in cols if c in snap}  # None for a null row
        for c in data:  # class ids read as their names
            names = snap.meta(c).class_names
            if names:
                data[c] = [None if v is None else names[int(v)] if 0 <= int(v) < len(names)
                           else int(v) for v in data[c]]
        out = []
        for i in range(len(self)):
            r: dict[str, Any] = {"id": int(self.ids[i])}
            for c, v in data.items():
                r[c] = v[i]
            if self.scores is not None:
                r[self.score_name] = float(self.scores[i])
            out.append(r)
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.rows())

    def __repr__(self) -> str:
        return (f"View({len(self)} rows of {self.snapshot.url} at "
                f"{(self.commit_id or 'uncommitted')[:12]})")

    def __str__(self) -> str:
        rows = self.rows()[:20]
        if not rows:
            return "(no rows)"
        cols = list(rows[0])

        def cell(v: Any) -> str:
            if isinstance(v, float):
                return f"{v:.4f}"
            if isinstance(v, np.ndarray):
                return f"<{v.dtype} {v.shape}>" if v.size > 4 else str(v.tolist())
            s = str(v)
            return s if len(s) <= 40 else s[:37] + "..."
        table = [[cell(r[c]) for c in cols] for r in rows]
        w = [max(len(c), *(len(t[i]) for t in table)) for i, c in enumerate(cols)]
        lines = [" | ".join(c.ljust(w[i]) for i, c in enumerate(cols)),
                 "-+-".join("-" * x for x in w)]
        lines += [" | ".join(t[i].ljust(w[i]) for i in range(len(cols))) for t in table]
        if len(self) > 20:
            lines.append(f"... {len(self) - 20} more rows")
        return "\n".join(lines)

    # ---- streaming ------------------------------------------------------------------------
    def pytorch(self, batch_size: int = 64, shuffle: bool = True, **options: Any) -> Loader:
        """A loader over only these rows (same options as `Dataset.pytorch`)."""
        return _stream(self.snapshot, "torch", self.positions, batch_size=batch_size,
                       shuffle=shuffle, **options)

    def numpy(self, batch_size: int = 64, shuffle: bool = True, **options: Any) -> Loader:
        """A numpy loader (shuffled batches) over these rows, as `Dataset.numpy`; the values
        as one dict of arrays are `view.arrays()`."""
        return _stream(self.snapshot, "numpy", self.positions, batch_size=batch_size,
                       shuffle=shuffle, **options)

    # ---- export ---------------------------------------------------------------------------
    def _export(self, tensors: list[str] | None) -> tuple[list[str], dict[str, np.ndarray]]:
        """(tensors, extra columns) an export of this view holds: the selected tensors (or
        `tensors`) and, when `tensors` is not given, the scores."""
        names = tensors or (self.columns if self.columns is not None
                            else list(self.snapshot.tensor_names))
        names = [n for n in names if n != self.score_name or self.scores is None]
        for n in names:
            if n not in self.snapshot:
                raise QueryError(f"no tensor {n!r}; tensors: "
                                 f"{', '.join(self.snapshot.tensor_names)}")
        extra = {self.score_name: self.scores} if self.scores is not None and \
            tensors is None else {}
        return names, extra

    def to_batches(self, tensors: list[str] | None = None, **options: Any) -> Iterator[Any]:
        """The result rows, in order, as `pyarrow.RecordBatch`es (bounded memory; options as
        `Dataset.to_arrow`): the selected tensors, then the score."""
        from plane.export._arrow import to_batches

        names, extra = self._export(tensors)
        return to_batches(self.snapshot, names, self.positions, extra=extra, **options)

    def to_arrow(self, tensors: list[str] | None = None, **options: Any) -> Any:
        """The result rows, in order, as a `pyarrow.Table` (see `to_batches`)."""
        from plane.export._arrow import to_arrow

        names, extra = self._export(tensors)
        return to_arrow(self.snapshot, names, self.positions, extra=extra, **options)

    def to_pandas(self, tensors: list[str] | None = None, **options: Any) -> Any:
        """The result rows as a pandas DataFrame (see `to_arrow`)."""
        from plane.export._arrow import to_pandas

        names, extra = self._export(tensors)
        return to_pandas(self.snapshot, names, self.positions, extra=extra, **options)

    def to_ray(self, tensors: list[str] | None = None,
               override_num_blocks: int | None = None) -> Any:
        """The result rows, in order, as a `ray.data.Dataset` read by Ray workers (as
        `Dataset.to_ray`; needs `tensorplane[ray]`), with the score column."""
        try:
            from plane.loader._ray import to_ray
        except ImportError as e:
            raise MissingDependencyError(f"view.to_ray() needs Ray ({e}): pip install "
                                         "'tensorplane[ray]'") from None
        names, extra = self._export(tensors)
        return to_ray(self.snapshot, names, override_num_blocks, self.positions, extra)

    # ---- saving ---------------------------------------------------------------------------
    def save(self, name: str) -> str:
        """Store this view as `views/<name>.json` in the dataset (row ids, scores, the version
        and the query); returns the key. The version must be committed."""
        check_view_name(name)
        store = self.snapshot.store
        if self.commit_id is None:
            raise PlaneError("a view is saved against a commit: commit the dataset first")
        if store.read_only:
            raise ReadOnlyError(f"cannot save view {name!r}: the dataset is open read-only")
        body = {"v": 1, "name": name, "commit": self.commit_id, "query": self.query,
                "columns": self.columns, "score_name": self.score_name,
                "row_ids": self.ids.tolist(),
                "scores": None if self.scores is None else self.scores.tolist(),
                "time": time.time()}
        key = view_key(name)
        put_artifact_json(store, key, body, sealed_format(self.snapshot.info))
        store.sync()
        return key


def _stream(snap: Snapshot, kind: str, positions: np.ndarray, **options: Any) -> Loader:
    """A loader of `kind` over rows `positions` of `snap`."""
    from plane.loader import make_loader

    return make_loader(snap, kind, positions=positions, **options)


def list_views(at: Any) -> list[str]:
    """The names of the views saved in the dataset of `at` (a Dataset or a Snapshot)."""
    return sorted(view_name_of(k) for k in at.store.list(VIEWS) if k.endswith(".json"))


def load_view(at: Any, name: str) -> View:
    """Reopen a saved view of dataset `at` (or of any Snapshot of it) at the commit it was
    saved on, whatever version `at` reads."""
    check_view_name(name)
    store = at.store
    key = view_key(name)
    info = at.info if isinstance(at, Snapshot) else read_dataset_info(store)
    try:
        body = get_artifact_json(store, key, sealed_format(info), "view")
    except ObjectNotFoundError:
        have = list_views(at)
        raise PlaneError(f"no view {name!r} in {store.url}; views: "
                         f"{', '.join(have) or '(none)'}") from None
    try:  # sealed views cannot fail these; unsealed (format <= 2) ones may be damaged
        commit = body["commit"]
        ids = np.asarray(body["row_ids"], np.int64).reshape(-1)
        scores = None if body["scores"] is None else \
            np.asarray(body["scores"], np.float32).reshape(-1)
        columns, query = body.get("columns"), str(body.get("query", ""))
        score_name = str(body.get("score_name", "score"))
        if not isinstance(commit, str):
            raise TypeError(f"commit {commit!r}")
        if scores is not None and scores.shape != ids.shape:
            raise ValueError(f"{ids.shape[0]} rows but {scores.shape[0]} scores")
        if columns is not None and not (isinstance(columns, list)
                                        and all(isinstance(c, str) for c in columns)):
            raise TypeError(f"columns {columns!r}")
    except (KeyError, TypeError, ValueError, OverflowError) as e:
        raise ChecksumError(f"view {store.url}/{key} is corrupt ({type(e).__name__}: {e}); "
                            "delete it and save the view again") from None
    snap = Snapshot.open(store, _commit_state(store, commit), commit_id=commit)
    all_ids = snap.row_ids
    order = np.argsort(all_ids, kind="stable")
    at_pos = np.searchsorted(all_ids[order], ids)
    pos = order[np.clip(at_pos, 0, max(0, len(order) - 1))]
    if ids.shape[0] and not np.array_equal(all_ids[pos], ids):
        raise PlaneError(f"view {name!r} names rows missing from commit {commit}")
    return View(snap, pos, scores, columns, query, score_name)


def _commit_state(store: Any, commit: str) -> str:
    """The state key of `commit` (VersionNotFoundError if there is no such commit)."""
    try:
        return Commit.load(store, commit).state
    except ObjectNotFoundError:
        raise VersionNotFoundError(f"no commit {commit!r} in {store.url}: the commit a saved "
                                   "view names is gone (garbage collected?)") from None
