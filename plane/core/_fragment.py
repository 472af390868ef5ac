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
from plane.core._layout import chunk_key, read_dataset_info, sealed_format
from plane.core._nulls import encode_nullable
from plane.core._reader import ChunkReader
from plane.core._writer import TensorWriter
from plane.format._codecs import check_column
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta
from plane.storage import Store

__all__ = ["Fragment", "FragmentWriter", "write_fragment"]


@dataclass(frozen=True)
class Fragment:
    """`rows` new rows: per tensor its (possibly learned) meta, chunk-index entries and the
    rows (0 = the fragment's first) that are null."""

    fragment_id: str
    rows: int
    metas: dict[str, dict[str, Any]]
    entries: dict[str, list[tuple[int, list[str], list[int]]]] = field(default_factory=dict)
    nulls: dict[str, list[int]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(b for ents in self.entries.values() for _, _, nb in ents for b in nb)


class FragmentWriter:
    """Streams rows into one fragment: full chunks are stored as they fill, so memory stays
    at about one chunk per tensor however many rows go through. `finish` stores the tails.
    `footer_sums`: write chunks in the dataset's format (None: read it from the store)."""

    def __init__(self, store: Store, fragment_id: str, metas: dict[str, TensorMeta],
                 footer_sums: bool | None = None) -> None:
        self.store = store
        self.fragment_id = fragment_id
        if footer_sums is None:
            footer_sums = sealed_format(read_dataset_info(store))
        self.reader = ChunkReader(store, 0, footer_sums)
        self.writers = {n: TensorWriter(m, ChunkIndex(), self.reader) for n, m in metas.items()}
        self.rows = 0
        self.bytes_written = 0
        self.nulls: dict[str, list[np.ndarray]] = {n: [] for n in metas}

    @property
    def metas(self) -> dict[str, TensorMeta]:
        return {n: w.meta for n, w in self.writers.items()}

    def encode(self, columns: dict[str, Any], row0: int = 0) -> dict[str, Any]:
        """Validate and encode `columns` (every tensor) without changing anything; returns
        what `add` takes. Raises SampleError naming the tensor and row (offset by `row0`)."""
        missing = [k for k in self.writers if k not in columns]
        extra = [k for k in columns if k not in self.writers]
        if missing or extra:
            raise SampleError(f"fragment {self.fragment_id}: columns must match the tensors; "
                              f"missing {missing}, unknown {extra}")
        for k, v in columns.items():
            check_column(k, v)
        lengths = {len(v) for v in columns.values()}
        if len(lengths) > 1:
            raise SampleError(f"fragment {self.fragment_id}: column lengths differ")
        return {n: encode_nullable(w.meta, columns[n], row0) for n, w in self.writers.items()}

    def add(self, encoded: dict[str, Any]) -> None:
        """Append encoded columns (from `encode`), storing every chunk that fills up."""
        n_rows = 0
        for block, _, nulls in encoded.values():  # a block, or all nulls (no layout yet)
            n_rows = block.n if block is not None else int(nulls.shape[0])
            break
        plans = {n: self.writers[n].plan(block, meta)
                 for n, (block, meta, _) in encoded.items() if block is not None}
        chunks = {chunk_key(k): v for p in plans.values() for k, v in p.chunks.items()}
        self.store.put_many(chunks)
        self.bytes_written += sum(len(v) for v in chunks.values())
        for n, p in plans.items():
            self.writers[n].apply(p)
        for n, (block, _, nulls) in encoded.items():
            if block is None:
                self.writers[n].add_fill(n_rows)
            if nulls.shape[0]:
                self.nulls[n].append(nulls + self.rows)
        self.rows += n_rows

    def finish(self) -> Fragment:
        """Store the partial last chunks and describe everything written."""
        chunks: dict[str, bytes] = {}
        metas: dict[str, dict[str, Any]] = {}
        entries: dict[str, list[tuple[int, list[str], list[int]]]] = {}
        for name, w in self.writers.items():
            chunks.update(w.take_unwritten())
            idx = w.index
            entries[name] = [(int(idx.rows[e]), idx.entry_keys(e), idx.entry_nbytes(e))
                             for e in range(idx.num_entries)]
            metas[name] = w.meta.to_dict()
        self.reader.local.clear()
        self.store.put_many({chunk_key(k): v for k, v in chunks.items()})
        self.bytes_written += sum(len(v) for v in chunks.values())
        nulls = {n: np.concatenate(z).tolist() for n, z in self.nulls.items() if z}
        return Fragment(self.fragment_id, self.rows, metas, entries, nulls)


def write_fragment(store: Store, fragment_id: str, metas: dict[str, TensorMeta],
                   columns: dict[str, Any]) -> Fragment:
    """Encode `columns` (every tensor of `metas`), store their chunks, describe them."""
    fw = FragmentWriter(store, fragment_id, metas)
    fw.add(fw.encode(columns))
    return fw.finish()


def fragment_row_count(frags: list[Fragment]) -> int:
    return int(np.sum([f.rows for f in frags])) if frags else 0
