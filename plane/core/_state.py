"""Manifests: State (one dataset version), TensorPart (one tensor), Commit, and helpers."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import zstandard

from plane.core._layout import (
    COMMITS,
    FORMAT_VERSION,
    PARTS,
    STATES,
    commit_id_of,
    commit_key,
    get_cas_json,
    put_cas_json,
)
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta
from plane.storage import Store

__all__ = ["RowIds", "Patch", "TensorPart", "State", "Commit", "pack_ints", "unpack_ints",
           "new_row_id_base", "NO_ROWS"]

#: an empty sorted set of physical rows
NO_ROWS = np.zeros(0, np.int64)


def pack_ints(a: np.ndarray) -> str:
    """int64 array -> base64(zstd(delta-free little-endian bytes))."""
    raw = np.ascontiguousarray(a, dtype="<i8").tobytes()
    return base64.b64encode(zstandard.ZstdCompressor(level=3).compress(raw)).decode()


def unpack_ints(s: str) -> np.ndarray:
    raw = zstandard.ZstdDecompressor().decompress(base64.b64decode(s))
    return np.frombuffer(raw, "<i8").astype(np.int64)


def live_rows(physical: int, deleted: np.ndarray) -> np.ndarray:
    """Physical row of every row of `physical` not in `deleted`, in order."""
    if not deleted.shape[0]:
        return np.arange(physical, dtype=np.int64)
    mask = np.ones(physical, bool)
    mask[deleted] = False
    return np.flatnonzero(mask).astype(np.int64)


def new_row_id_base() -> int:
    """A random start for a writer's row-id range: ids stay unique across branches and
    processes without coordination (62-bit starts; ranges of a writer are contiguous)."""
    return secrets.randbits(62)


@dataclass
class RowIds:
    """Stable row id of every physical row, run-length encoded as (start, length) runs."""

    starts: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(self.lengths)

    def append(self, first_id: int, n: int) -> None:
        if n <= 0:
            return
        if self.starts and self.starts[-1] + self.lengths[-1] == first_id:
            self.lengths[-1] += n
        else:
            self.starts.append(first_id)
            self.lengths.append(n)

    def extend_ids(self, ids: np.ndarray) -> None:
        """Append explicit ids (runs are found and merged)."""
        if not ids.shape[0]:
            return
        breaks = np.flatnonzero(np.diff(ids) != 1) + 1
        for seg in np.split(ids, breaks):
            self.append(int(seg[0]), int(seg.shape[0]))

    def take(self, positions: np.ndarray) -> np.ndarray:
        if not self.starts:
            return np.zeros(0, np.int64)
        ends = np.cumsum(self.lengths)
        run = np.searchsorted(ends, positions, side="right")
        begin = ends - np.asarray(self.lengths)
        out: np.ndarray = np.asarray(self.starts, np.int64)[run] + (positions - begin[run])
        return out

    def sorted_runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts, lengths, first physical row) of the runs, sorted by start: the map from
        ids back to rows (ids are unique, so runs never overlap)."""
        starts = np.asarray(self.starts, np.int64)
        lengths = np.asarray(self.lengths, np.int64)
        first = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        order = np.argsort(starts, kind="stable")
        return starts[order], lengths[order], first[order]

    def all(self) -> np.ndarray:
        if not self.starts:
            return np.zeros(0, np.int64)
        return np.concatenate([np.arange(s, s + n, dtype=np.int64)
                               for s, n in zip(self.starts, self.lengths)])

    def copy(self) -> RowIds:
        return RowIds(list(self.starts), list(self.lengths))

    def to_dict(self) -> dict[str, Any]:
        return {"starts": self.starts, "lengths": self.lengths}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RowIds:
        return cls([int(x) for x in d["starts"]], [int(x) for x in d["lengths"]])


@dataclass(frozen=True)
class Patch:
    """New values for some physical rows of one tensor, in one small chunk (a delta)."""

    key: str
    nbytes: int
    rows: np.ndarray  # physical rows, in the chunk's sample order
    #: the chunk's bytes when it is small enough to live in the part (format version 2)
    data: bytes | None = None

    @cached_property
    def _packed(self) -> dict[str, Any]:
        d = {"key": self.key, "nbytes": self.nbytes, "rows": pack_ints(self.rows)}
        if self.data is not None:
            d["inline"] = base64.b64encode(self.data).decode()
        return d

    def to_dict(self) -> dict[str, Any]:
        return self._packed

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Patch:
        data = base64.b64decode(d["inline"]) if "inline" in d else None
        return cls(d["key"], int(d["nbytes"]), unpack_ints(d["rows"]), data)

    def moved(self, rows: np.ndarray) -> Patch:
        """The same values for other physical rows (rows shift when a rebase moves them)."""
        return Patch(self.key, self.nbytes, rows, self.data)


def pack_runs(rows: np.ndarray) -> str:
    """Sorted rows -> pack_ints of their runs as (start, length) pairs (a tensor created on
    a million rows is one run, not a million ints)."""
    if not rows.shape[0]:
        return pack_ints(rows)
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = rows[np.concatenate([[0], breaks])]
    ends = np.concatenate([breaks, [rows.shape[0]]])
    lengths = np.diff(np.concatenate([[0], ends]))
    return pack_ints(np.stack([starts, lengths], axis=1).reshape(-1))


def unpack_runs(s: str) -> np.ndarray:
    pairs = unpack_ints(s).reshape(-1, 2)
    if not pairs.shape[0]:
        return NO_ROWS
    starts, lengths = pairs[:, 0], pairs[:, 1]
    before = np.cumsum(lengths) - lengths  # rows listed before each run
    out: np.ndarray = np.arange(int(lengths.sum()), dtype=np.int64) + \
        np.repeat(starts - before, lengths)
    return out


@dataclass
class TensorPart:
    """One tensor of a version: schema, chunk index, patches and `nulls`, the sorted
    physical rows that have no value (each still has an empty sample stored)."""

    meta: TensorMeta
    index: ChunkIndex
    patches: list[Patch] = field(default_factory=list)
    nulls: np.ndarray = field(default_factory=lambda: NO_ROWS)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"meta": self.meta.to_dict(), "index": self.index.to_dict()}
        if self.patches:
            d["patches"] = [p.to_dict() for p in self.patches]
        if self.nulls.shape[0]:
            d["nulls"] = pack_runs(self.nulls)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorPart:
        nulls = unpack_runs(d["nulls"]) if "nulls" in d else NO_ROWS
        return cls(TensorMeta.from_dict(d["meta"]), ChunkIndex.from_dict(d["index"]),
                   [Patch.from_dict(p) for p in d.get("patches", [])], nulls)

    def save(self, store: Store) -> str:
        return put_cas_json(store, PARTS, self.to_dict())

    @classmethod
    def load(cls, store: Store, key: str) -> TensorPart:
        return cls.from_dict(get_cas_json(store, key))


@dataclass
class State:
    """One immutable version of the dataset.

    `physical` rows exist in every tensor's chunk index; `deleted` (sorted physical rows) are
    hidden, so the dataset has ``physical - len(deleted)`` rows.
    """

    tensors: dict[str, str] = field(default_factory=dict)  # name -> part key, creation order
    physical: int = 0
    row_ids: RowIds = field(default_factory=RowIds)
    deleted: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    parent: str | None = None
    #: the format version of the dataset it belongs to: a dataset keeps writing its own, so an
    #: unchanged state of an older dataset keeps the key its commit has
    version: int = FORMAT_VERSION
    #: the dataset's info dict (description, license, ...; JSON values), versioned
    info: dict[str, Any] = field(default_factory=dict)
    #: tensor name -> the names it had before, newest first (ds.rename_tensor)
    renames: dict[str, list[str]] = field(default_factory=dict)
    #: index refs (tensor, kind, commit) this version no longer uses (ds.indexes.drop)
    hidden_indexes: tuple[tuple[str, str, str], ...] = ()

    @property
    def length(self) -> int:
        return self.physical - int(self.deleted.shape[0])

    def live(self) -> np.ndarray:
        """Physical row of every live row, in order."""
        return live_rows(self.physical, self.deleted)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "format_version": self.version,
            "tensors": [[k, v] for k, v in self.tensors.items()],
            "physical": self.physical, "length": self.length,
            "row_ids": self.row_ids.to_dict(), "parent": self.parent}
        if self.deleted.shape[0]:
            d["deleted"] = pack_ints(self.deleted)
        if self.info:  # optional keys, absent when empty: older states keep their keys
            d["info"] = self.info
        if self.renames:
            d["renames"] = self.renames
        if self.hidden_indexes:
            d["hidden_indexes"] = [list(t) for t in sorted(self.hidden_indexes)]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> State:
        deleted = unpack_ints(d["deleted"]) if "deleted" in d else np.zeros(0, np.int64)
        return cls({k: v for k, v in d["tensors"]}, int(d["physical"]),
                   RowIds.from_dict(d["row_ids"]), deleted, d.get("parent"),
                   int(d.get("format_version", 1)), dict(d.get("info", {})),
                   {k: list(v) for k, v in d.get("renames", {}).items()},
                   tuple((str(t), str(k), str(c)) for t, k, c in d.get("hidden_indexes", [])))

    def save(self, store: Store) -> str:
        return put_cas_json(store, STATES, self.to_dict())

    @classmethod
    def load(cls, store: Store, key: str) -> State:
        return cls.from_dict(get_cas_json(store, key))


@dataclass(frozen=True)
class Commit:
    """An immutable, content-addressed commit: a state, its parents and a message."""

    state: str
    parents: tuple[str, ...]
    message: str
    author: str
    time: float
    id: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "parents": list(self.parents), "message": self.message,
                "author": self.author, "time": self.time}

    def save(self, store: Store) -> Commit:
        key = put_cas_json(store, COMMITS, self.to_dict())
        return Commit(self.state, self.parents, self.message, self.author, self.time,
                      commit_id_of(key))

    @classmethod
    def load(cls, store: Store, commit_id: str) -> Commit:
        d = get_cas_json(store, commit_key(commit_id))
        return cls(d["state"], tuple(d["parents"]), d["message"], d["author"], float(d["time"]),
                   commit_id)
