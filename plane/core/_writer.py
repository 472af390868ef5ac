"""Turning encoded blocks into chunks: cut at the target size, tile big samples, seal tails.

Writes are planned first (`plan`), the planned chunks are stored, and only then applied
(`apply`), so a failed append/extend leaves the writer exactly as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plane.core._reader import ChunkReader, PatchMap
from plane.core._state import NO_ROWS, Patch
from plane.format._chunk import encode_chunk, parse_chunk
from plane.format._codecs import Block
from plane.format._hash import digest_hex
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta

__all__ = ["TensorWriter", "Plan"]


@dataclass
class Plan:
    meta: TensorMeta
    reopen: bool
    entries: list[tuple[int, list[str], list[int]]] = field(default_factory=list)
    chunks: dict[str, bytes] = field(default_factory=dict)
    buffer: Block | None = None


def _block_of(chunk_payload: memoryview, offsets: np.ndarray, shapes: np.ndarray) -> Block:
    return Block(chunk_payload, offsets.copy(), np.array(shapes))


class _Joined:
    """Blocks seen as one, without copying them: a slice inside one block is a view; only a
    slice that spans blocks (at most one chunk's worth, at the seam) is joined."""

    def __init__(self, parts: list[Block], ndim: int) -> None:
        self.parts = [b for b in parts if b.n] or [Block.concat([], ndim)]
        self.ndim = ndim
        counts = np.array([b.n for b in self.parts], np.int64)
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.n = int(self.starts[-1])
        base = np.concatenate([[0], np.cumsum([int(b.offsets[-1]) for b in self.parts])])
        self.offsets = np.concatenate(
            [[0]] + [b.offsets[1:] + base[i] for i, b in enumerate(self.parts)]
        ).astype(np.int64)

    def slice(self, a: int, b: int) -> Block:
        i = int(np.searchsorted(self.starts, a, side="right")) - 1
        j = int(np.searchsorted(self.starts, b - 1, side="right")) - 1 if b > a else i
        if i == j:
            s0 = int(self.starts[i])
            return self.parts[i].slice(a - s0, b - s0)
        pieces = []
        for k in range(i, j + 1):
            s0, s1 = int(self.starts[k]), int(self.starts[k + 1])
            pieces.append(self.parts[k].slice(max(a, s0) - s0, min(b, s1) - s0))
        return Block.concat(pieces, self.ndim)


class TensorWriter:
    """The working (uncommitted) side of one tensor: its index plus an unchunked buffer."""

    def __init__(self, meta: TensorMeta, index: ChunkIndex, reader: ChunkReader,
                 patches: list[Patch] | None = None, nulls: np.ndarray = NO_ROWS) -> None:
        self.meta = meta
        self.index = index
        self.reader = reader
        self.patches: list[Patch] = list(patches or [])
        #: sorted physical rows that are null (`TensorPart.nulls`)
        self.nulls = nulls
        self._register_inline(self.patches)
        self._pmap: PatchMap | None = None
        self.buffer: Block | None = None
        self.reopenable: str | None = None
        self.unwritten: dict[str, bytes] = {}
        self.dirty = False

    @property
    def ndim(self) -> int:
        return self.meta.ndim if self.meta.ndim is not None else 1

    @property
    def num_rows(self) -> int:
        return self.index.num_rows + (self.buffer.n if self.buffer is not None else 0)

    def _make_chunk(self, blk: Block, meta: TensorMeta, tile: tuple[int, int] | None = None
                    ) -> tuple[str, bytes]:
        data = encode_chunk(blk.data, blk.shapes, blk.offsets, meta.chunk_compression == "zstd",
                            tile, self.reader.footer_sums)
        return digest_hex(data), data

    def plan(self, block: Block, meta: TensorMeta) -> Plan:
        """Chunks and remaining buffer after adding `block` (nothing is mutated)."""
        plan = Plan(meta, reopen=False)
        parts: list[Block] = []
        if self.buffer is None and self.reopenable is not None and block.n:
            c = self.reader.local[self.reopenable]
            parts.append(_block_of(c.payload, c.footer.offsets, c.footer.shapes))
            plan.reopen = True
        if self.buffer is not None:
            parts.append(self.buffer)
        parts.append(block)
        blk = _Joined(parts, meta.ndim if meta.ndim is not None else 1)
        target = meta.chunk_bytes
        offs = blk.offsets
        s, n = 0, blk.n
        while s < n:
            e = int(np.searchsorted(offs, offs[s] + target, side="right")) - 1
            if e == s:  # one sample larger than a chunk: tile it
                self._plan_tiles(plan, blk.slice(s, s + 1), meta)
                s += 1
                continue
            if e >= n:
                break
            key, data = self._make_chunk(blk.slice(s, e), meta)
            plan.chunks[key] = data
            plan.entries.append((e - s, [key], [len(data)]))
            s = e
        plan.buffer = blk.slice(s, n) if s < n else None
        return plan

    def _plan_tiles(self, plan: Plan, one: Block, meta: TensorMeta) -> None:
        raw = one.data
        size = raw.nbytes
        step = meta.chunk_bytes
        count = max(1, -(-size // step))
        keys, sizes = [], []
        for t in range(count):
            piece = raw[t * step: min(size, (t + 1) * step)]
            pb = Block(piece, np.array([0, piece.nbytes], np.int64), one.shapes)
            key, data = self._make_chunk(pb, meta, (t, count))
            plan.chunks[key] = data
            keys.append(key)
            sizes.append(len(data))
        plan.entries.append((1, keys, sizes))

    def apply(self, plan: Plan) -> None:
        if plan.reopen:
            assert self.reopenable is not None
            self.index.pop_last()
            self.reader.local.pop(self.reopenable, None)
            self.unwritten.pop(self.reopenable, None)
        self.reopenable = None
        for rows, keys, sizes in plan.entries:
            self.index.append(rows, keys, sizes)
        self.buffer = plan.buffer
        self.meta = plan.meta
        self.dirty = True

    # ---- updates: patches (small delta chunks over physical rows) ---------------------------
    def patch_map(self) -> PatchMap | None:
        if not self.patches:
            return None
        if self._pmap is None:
            self._pmap = PatchMap.build(self.patches)
        return self._pmap

    def plan_patch(self, rows: np.ndarray, block: Block, meta: TensorMeta
                   ) -> tuple[Patch, bytes]:
        """A patch chunk holding new values for physical `rows` (nothing is mutated)."""
        key, data = self._make_chunk(block, meta)
        return Patch(key, len(data), rows.astype(np.int64)), data

    def apply_patch(self, patch: Patch, data: bytes, meta: TensorMeta) -> None:
        """Record a patch whose chunk is already stored."""
        self.reader.cache.put(patch.key, parse_chunk(patch.key, data, f"patch of {meta.name!r}"))
        self._register_inline([patch])
        self.patches.append(patch)
        self._pmap = None
        self.meta = meta
        self.dirty = True

    def _register_inline(self, patches: list[Patch]) -> None:
        for p in patches:
            if p.data is not None:
                self.reader.inline[p.key] = p.data

    def set_patches(self, patches: list[Patch]) -> None:
        self.patches = list(patches)
        self._register_inline(self.patches)
        self._pmap = None
        self.dirty = True

    def add_fill(self, rows: int) -> None:
        """Append `rows` null rows as empty samples without chunks (a tensor created after
        rows existed, or Nones before the tensor has a layout)."""
        if rows:
            self.seal()
            first = self.num_rows
            self.index.append(rows)
            self.nulls = np.union1d(self.nulls, np.arange(first, first + rows, dtype=np.int64))
            self.dirty = True

    def seal(self) -> None:
        """Turn the buffer into a partial chunk held in memory (readable, not yet stored)."""
        if self.buffer is None or not self.buffer.n:
            self.buffer = None
            return
        key, data = self._make_chunk(self.buffer, self.meta)
        self.index.append(self.buffer.n, [key], [len(data)])
        self.reader.local[key] = parse_chunk(key, data, f"new chunk of {self.meta.name!r}")
        self.unwritten[key] = data
        self.reopenable = key
        self.buffer = None

    def take_unwritten(self) -> dict[str, bytes]:
        """Seal and hand over every chunk that still has to be stored."""
        self.seal()
        out, self.unwritten = self.unwritten, {}
        return out

    def stored(self, keys: list[str]) -> None:
        """The given chunks are now in the store: move them from local to the cache."""
        for k in keys:
            c = self.reader.local.pop(k, None)
            if c is not None:
                self.reader.cache.put(k, c)
        self.reopenable = None
