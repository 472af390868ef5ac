"""ds.indexes: the indexes the dataset's current version uses, to list, drop and rebuild."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from plane._errors import IndexNotFoundError

if TYPE_CHECKING:
    from plane.core._snapshot import Snapshot
    from plane.dataset._dataset import Dataset
    from plane.query import IndexInfo

__all__ = ["Indexes", "IndexEntry"]


@dataclass(frozen=True)
class IndexEntry:
    """One index of this version. `name` is ``"<tensor>/<kind>"``; `rows`: rows it covers
    (those of the commit it was built on); `stale`: rows were added or changed since that
    commit (queries search them exactly; ``ds.indexes.optimize()`` folds them in)."""

    name: str
    tensor: str
    kind: str
    metric: str
    rows: int
    commit: str
    stale: bool
    info: IndexInfo = field(repr=False, compare=False)

    def __str__(self) -> str:
        state = "stale" if self.stale else "up to date"
        return (f"{self.name}: {self.kind} ({self.metric}) on {self.tensor!r}, {self.rows:,} "
                f"rows at commit {self.commit[:12]}, {state}")


class Indexes:
    """The indexes of a dataset's current version (a read object: list-like, and
    ``indexes[name]``). Changes: ``ds.create_index(...)``, ``.drop(name)``, ``.optimize()``."""

    def __init__(self, ds: Dataset) -> None:
        self._ds = ds

    def _at(self) -> Snapshot:
        ws = self._ds._ws
        return ws.view() if ws.unflushed else ws.snapshot()

    def _entries(self) -> list[IndexEntry]:
        from plane.query._changes import changed_rows
        from plane.query._indexes import list_indexes

        snap = self._at()
        out = []
        for info in list_indexes(snap):
            stale = False
            if info.state != snap.state_key:
                from plane.core._snapshot import Snapshot

                old = Snapshot.open(snap.store, info.state, commit_id=info.commit)
                gone, new = changed_rows(old, snap, info.tensor, info.source or info.tensor)
                stale = bool(gone.shape[0] or new.shape[0])
            out.append(IndexEntry(f"{info.tensor}/{info.kind}", info.tensor, info.kind,
                                  info.metric, info.rows, info.commit, stale, info))
        return out

    def __iter__(self) -> Iterator[IndexEntry]:
        return iter(self._entries())

    def __len__(self) -> int:
        return len(self._entries())

    def __contains__(self, name: object) -> bool:
        return any(e.name == name for e in self._entries())

    def __getitem__(self, key: str | int) -> IndexEntry:
        entries = self._entries()
        if isinstance(key, int):
            return entries[key]
        for e in entries:
            if e.name == key:
                return e
        have = ", ".join(repr(e.name) for e in entries) or "(none)"
        hint = "" if "/" in str(key) else f" (an index name is '<tensor>/<kind>', e.g. " \
            f"'{key}/hnsw')"
        raise IndexNotFoundError(f"no index {key!r} in {self._ds.url} at this version"
                                 f"{hint}; indexes: {have}. Create one with "
                                 "ds.create_index(tensor, kind=...)")

    def names(self) -> list[str]:
        return [e.name for e in self._entries()]

    def drop(self, name: str) -> None:
        """Stop using index `name` from this version on: its refs are hidden in the working
        state (committed with the next commit, like any change); older versions keep using
        it and nothing is deleted (`plane.gc` reclaims what no version uses)."""
        from plane.query._indexes import index_refs

        ws = self._ds._ws
        ws.check_writable(f"drop index {name!r}")
        entry = self[name]
        ws.hide_indexes(index_refs(self._at(), entry.tensor, (entry.kind,)))

    def optimize(self, tensor: str | None = None, progress: bool | None = None
                 ) -> list[IndexInfo]:
        """Rebuild at the current commit the indexes (of `tensor`, or all) that were built on
        an older one, keeping kind, metric and settings; returns the rebuilt ones."""
        from plane.query._indexes import optimize_indexes

        return optimize_indexes(self._at(), tensor, progress)

    def __repr__(self) -> str:
        entries = self._entries()
        if not entries:
            return "Indexes(none)"
        return "Indexes(\n" + "\n".join(f"  {e}" for e in entries) + "\n)"
