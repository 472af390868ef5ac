"""Per-chunk min/max statistics of scalar numeric tensors, used to skip chunks in filters.

Built by ``ds.create_index("width", kind="minmax")``. Statistics are keyed by chunk content
address, so they stay valid for every version that shares those chunks: a query prunes the
chunks it has statistics for, reads the rest (rows appended since), and always re-checks rows
changed by patches. Range predicates (``< <= > >= = BETWEEN IN``) prune; others read all.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

from plane._errors import QueryError

if TYPE_CHECKING:
    from plane.core._snapshot import Snapshot

__all__ = ["ChunkStats", "build_minmax", "candidate_positions", "is_scalar"]


class ChunkStats:
    """{chunk key: (min, max)} of one tensor's chunks (float64)."""

    def __init__(self, keys: list[str], mins: np.ndarray, maxs: np.ndarray) -> None:
        self.keys = keys
        self.mins = np.asarray(mins, np.float64)
        self.maxs = np.asarray(maxs, np.float64)
        self.at = {k: i for i, k in enumerate(keys)}

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, keys=np.asarray(self.keys, dtype="S"), mins=self.mins, maxs=self.maxs)
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ChunkStats:
        z = np.load(io.BytesIO(data), allow_pickle=False)
        return cls([k.decode() for k in z["keys"].tolist()], z["mins"], z["maxs"])


def is_scalar(snap: Snapshot, tensor: str) -> bool:
    """One number per row: a class_label, or an uncompressed array tensor of shape ()."""
    m = snap.meta(tensor)
    return m.kind == "array" and not m.sample_compression and \
        (m.htype == "class_label" or m.shape == () or m.ndim == 0)


def build_minmax(snap: Snapshot, tensor: str) -> ChunkStats:
    """Min and max of every chunk of `tensor` in version `snap`."""
    if not is_scalar(snap, tensor):
        m = snap.meta(tensor)
        raise QueryError(f"a minmax index needs a scalar numeric tensor (shape ()); {tensor!r} "
                         f"is {m.htype} with shape {m.shape}")
    idx = snap.index(tensor)
    keys, mins, maxs = [], [], []
    dt = snap.meta(tensor).np_dtype
    for e in range(idx.num_entries):
        ks = idx.entry_keys(e)
        if len(ks) != 1:
            continue  # empty fill or a tiled sample: no statistics, always read
        c = snap.reader.chunk(ks[0], f"tensor {tensor!r}")
        if not c.footer.n:
            continue
        v = c.array(dt).reshape(-1)
        if v.shape[0] != c.footer.n:
            continue
        vals = v.astype(np.float64)
        keys.append(ks[0])
        mins.append(np.nanmin(vals) if vals.size else np.inf)
        maxs.append(np.nanmax(vals) if vals.size else -np.inf)
    return ChunkStats(keys, np.asarray(mins), np.asarray(maxs))


def candidate_positions(snap: Snapshot, tensor: str, stats: ChunkStats, lo: float,
                        hi: float, live_phys: np.ndarray) -> tuple[np.ndarray, int, int]:
    """(sorted live positions that may hold a value in [lo, hi], chunks kept, chunks)."""
    idx = snap.index(tensor)
    patches = snap.part(tensor).patches
    ends = idx.ends
    starts = ends - idx.rows
    keep = np.ones(idx.num_entries, bool)
    for e in range(idx.num_entries):
        ks = idx.entry_keys(e)
        if len(ks) == 1:
            i = stats.at.get(ks[0])
            if i is not None and (stats.maxs[i] < lo or stats.mins[i] > hi):
                keep[e] = False
    a = np.searchsorted(live_phys, starts[keep])
    b = np.searchsorted(live_phys, ends[keep])
    parts = [np.arange(x, y, dtype=np.int64) for x, y in zip(a, b) if y > x]
    if patches:  # patched rows may hold any value now
        rows = np.unique(np.concatenate([p.rows for p in patches]))
        at = np.searchsorted(live_phys, rows)
        ok = (at < live_phys.shape[0]) & (live_phys[np.minimum(at, live_phys.shape[0] - 1)]
                                          == rows)
        parts.append(at[ok].astype(np.int64))
    pos = np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    return pos, int(keep.sum()), int(idx.num_entries)
