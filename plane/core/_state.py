"""Manifests: a State (root of one dataset version) and its TensorParts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plane.core._layout import FORMAT_VERSION, get_cas_json, put_cas_json
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta
from plane.storage import Store

__all__ = ["RowIds", "TensorPart", "State"]


@dataclass
class RowIds:
    """Stable row ids, run-length encoded: row ids of position p come from runs (start, len)."""

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

    def take(self, positions: np.ndarray) -> np.ndarray:
        if not self.starts:
            return np.zeros(0, np.int64)
        ends = np.cumsum(self.lengths)
        run = np.searchsorted(ends, positions, side="right")
        begin = ends - np.asarray(self.lengths)
        out: np.ndarray = np.asarray(self.starts, np.int64)[run] + (positions - begin[run])
        return out

    def copy(self) -> RowIds:
        return RowIds(list(self.starts), list(self.lengths))

    def to_dict(self) -> dict[str, Any]:
        return {"starts": self.starts, "lengths": self.lengths}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RowIds:
        return cls([int(x) for x in d["starts"]], [int(x) for x in d["lengths"]])


@dataclass
class TensorPart:
    meta: TensorMeta
    index: ChunkIndex

    def to_dict(self) -> dict[str, Any]:
        return {"meta": self.meta.to_dict(), "index": self.index.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorPart:
        return cls(TensorMeta.from_dict(d["meta"]), ChunkIndex.from_dict(d["index"]))

    def save(self, store: Store) -> str:
        return put_cas_json(store, "parts", self.to_dict())

    @classmethod
    def load(cls, store: Store, key: str) -> TensorPart:
        return cls.from_dict(get_cas_json(store, key))


@dataclass
class State:
    """One immutable version of the dataset: tensor parts by name, length, row ids."""

    tensors: dict[str, str] = field(default_factory=dict)  # name -> part key
    length: int = 0
    row_ids: RowIds = field(default_factory=RowIds)
    next_row_id: int = 0
    parent: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION,
                "tensors": [[k, v] for k, v in self.tensors.items()], "length": self.length,
                "row_ids": self.row_ids.to_dict(), "next_row_id": self.next_row_id,
                "parent": self.parent}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> State:
        return cls({k: v for k, v in d["tensors"]}, int(d["length"]),
                   RowIds.from_dict(d["row_ids"]),
                   int(d["next_row_id"]), d.get("parent"))

    def save(self, store: Store) -> str:
        return put_cas_json(store, "states", self.to_dict())

    @classmethod
    def load(cls, store: Store, key: str) -> State:
        return cls.from_dict(get_cas_json(store, key))
