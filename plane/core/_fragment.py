"""Fragments: rows written to chunks by one worker, committed later by a coordinator.

A worker encodes its rows and stores their chunks directly (content-addressed, so a retried
task rewrites identical objects); it returns a small, picklable `Fragment` describing them.
A single coordinator applies fragments to a branch in a deterministic order and commits once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plane._errors import SampleError
from plane.core._layout import chunk_key
from plane.core._reader import ChunkReader
from plane.core._writer import TensorWriter
from plane.format._codecs import encode_batch
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta
from plane.storage import Store

__all__ = ["Fragment", "write_fragment"]


@dataclass(frozen=True)
class Fragment:
    """`rows` new rows: per tensor its (possibly learned) meta and chunk-index entries."""

    fragment_id: str
    rows: int
    metas: dict[str, dict[str, Any]]
    entries: dict[str, list[tuple[int, list[str], list[int]]]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(b for ents in self.entries.values() for _, _, nb in ents for b in nb)


def write_fragment(store: Store, fragment_id: str, metas: dict[str, TensorMeta],
                   columns: dict[str, Any]) -> Fragment:
    """Encode `columns` (every tensor of `metas`), store their chunks, describe them."""
    missing = [k for k in metas if k not in columns]
    extra = [k for k in columns if k not in metas]
    if missing or extra:
        raise SampleError(f"fragment {fragment_id}: columns must match the tensors; missing "
                          f"{missing}, unknown {extra}")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise SampleError(f"fragment {fragment_id}: column lengths differ")
    n = lengths.pop() if lengths else 0
    reader = ChunkReader(store, 0)
    out_metas: dict[str, dict[str, Any]] = {}
    entries: dict[str, list[tuple[int, list[str], list[int]]]] = {}
    chunks: dict[str, bytes] = {}
    for name, meta in metas.items():
        w = TensorWriter(meta, ChunkIndex(), reader)
        block, meta2 = encode_batch(meta, columns[name], 0)
        plan = w.plan(block, meta2)
        chunks.update(plan.chunks)
        w.apply(plan)
        chunks.update(w.take_unwritten())
        reader.local.clear()
        idx = w.index
        entries[name] = [(int(idx.rows[e]), idx.entry_keys(e), idx.entry_nbytes(e))
                         for e in range(idx.num_entries)]
        out_metas[name] = w.meta.to_dict()
    store.put_many({chunk_key(k): v for k, v in chunks.items()})
    return Fragment(fragment_id, n, out_metas, entries)


def fragment_row_count(frags: list[Fragment]) -> int:
    return int(np.sum([f.rows for f in frags])) if frags else 0
