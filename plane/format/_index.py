"""The sample -> chunk index of one tensor: compact arrays, O(log chunks) lookup.

An *entry* covers `rows[e]` consecutive samples and names `keys[key_ptr[e]:key_ptr[e+1]]`:
one key for an ordinary chunk, several for one tiled sample (rows == 1), none for a run of
empty (fill) samples. Stored as base64 of little-endian arrays, never one row per sample.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import zstandard

__all__ = ["ChunkIndex"]


def _b64(a: np.ndarray, dtype: str) -> str:
    raw = np.ascontiguousarray(a, dtype=dtype).tobytes()
    return base64.b64encode(zstandard.ZstdCompressor(level=3).compress(raw)).decode()


def _unb64(s: str, dtype: str) -> np.ndarray:
    raw = zstandard.ZstdDecompressor().decompress(base64.b64decode(s))
    return np.frombuffer(raw, dtype=dtype).astype(np.int64)


@dataclass
class ChunkIndex:
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    key_ptr: np.ndarray = field(default_factory=lambda: np.zeros(1, np.int64))
    keys: list[str] = field(default_factory=list)
    key_nbytes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    _ends: np.ndarray | None = field(default=None, repr=False, compare=False)
    #: (rows, key_ptr, key_nbytes, number of keys, to_dict()) of the last encoding: mutators
    #: replace the arrays, so an identical identity means an identical index
    _encoded: tuple[Any, ...] | None = field(default=None, repr=False, compare=False)

    # ---- construction -------------------------------------------------------------------
    def copy(self) -> ChunkIndex:
        return ChunkIndex(self.rows.copy(), self.key_ptr.copy(), list(self.keys),
                          self.key_nbytes.copy())

    def append(self, rows: int, keys: Sequence[str] = (), nbytes: Sequence[int] = ()) -> None:
        """Add an entry at the end."""
        self.extend_entries([rows], [list(keys)], [list(nbytes)])

    def extend_entries(self, rows: Sequence[int], keys: Sequence[Sequence[str]],
                       nbytes: Sequence[Sequence[int]]) -> None:
        if not len(rows):
            return
        counts = np.array([len(k) for k in keys], np.int64)
        self.rows = np.concatenate([self.rows, np.asarray(rows, np.int64)])
        self.key_ptr = np.concatenate([self.key_ptr, self.key_ptr[-1] + np.cumsum(counts)])
        for k in keys:
            self.keys.extend(k)
        flat = [b for nb in nbytes for b in nb]
        self.key_nbytes = np.concatenate([self.key_nbytes, np.asarray(flat, np.int64)])
        self._ends = None

    def pop_last(self) -> tuple[int, list[str], list[int]]:
        """Remove and return the last entry."""
        e = self.num_entries - 1
        a, b = int(self.key_ptr[e]), int(self.key_ptr[e + 1])
        out = int(self.rows[e]), self.keys[a:b], [int(x) for x in self.key_nbytes[a:b]]
        self.rows = self.rows[:e]
        self.key_ptr = self.key_ptr[: e + 1]
        del self.keys[a:]
        self.key_nbytes = self.key_nbytes[:a]
        self._ends = None
        return out

    # ---- queries --------------------------------------------------------------------------
    @property
    def num_entries(self) -> int:
        return int(self.rows.shape[0])

    @property
    def num_rows(self) -> int:
        return int(self.ends[-1]) if self.num_entries else 0

    @property
    def num_chunks(self) -> int:
        return len(self.keys)

    @property
    def nbytes(self) -> int:
        return int(self.key_nbytes.sum())

    @property
    def ends(self) -> np.ndarray:
        """Exclusive end row of each entry (cumulative rows)."""
        if self._ends is None:
            self._ends = np.asarray(np.cumsum(self.rows), np.int64)
        ends: np.ndarray = self._ends
        return ends

    def starts(self) -> np.ndarray:
        out: np.ndarray = self.ends - self.rows
        return out

    def locate(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entry index and row-within-entry of each position (vectorised binary search)."""
        ent = np.searchsorted(self.ends, positions, side="right")
        local = positions - (self.ends[ent] - self.rows[ent])
        return ent, local

    def entry_keys(self, e: int) -> list[str]:
        return self.keys[int(self.key_ptr[e]): int(self.key_ptr[e + 1])]

    def entry_nbytes(self, e: int) -> list[int]:
        return [int(x) for x in self.key_nbytes[int(self.key_ptr[e]): int(self.key_ptr[e + 1])]]

    # ---- (de)serialisation ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        e = self._encoded
        if e is not None and e[0] is self.rows and e[1] is self.key_ptr \
                and e[2] is self.key_nbytes and e[3] == len(self.keys):
            return dict(e[4])
        raw_keys = b"".join(bytes.fromhex(k) for k in self.keys)
        d = {
            "rows": _b64(self.rows, "<i8"),
            "key_ptr": _b64(self.key_ptr, "<i8"),
            "keys": base64.b64encode(raw_keys).decode(),
            "key_nbytes": _b64(self.key_nbytes, "<i8"),
        }
        self._remember(d)
        return dict(d)

    def _remember(self, d: dict[str, Any]) -> None:
        self._encoded = (self.rows, self.key_ptr, self.key_nbytes, len(self.keys), dict(d))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChunkIndex:
        raw = base64.b64decode(d["keys"])
        keys = [raw[i: i + 16].hex() for i in range(0, len(raw), 16)]
        idx = cls(_unb64(d["rows"], "<i8"), _unb64(d["key_ptr"], "<i8"), keys,
                  _unb64(d["key_nbytes"], "<i8"))
        if idx.key_ptr.shape[0] != idx.num_entries + 1 or int(idx.key_ptr[-1]) != len(keys) \
                or idx.key_nbytes.shape[0] != len(keys):
            raise ValueError("inconsistent chunk index arrays")
        idx._remember({k: d[k] for k in ("rows", "key_ptr", "keys", "key_nbytes")})
        return idx
