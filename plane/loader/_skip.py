"""Damaged chunks under on_error="skip": which rows of a batch live in a chunk found corrupt or
missing, so that only those rows leave the batches they land in.

Nothing here runs while every read succeeds: a batch that fails is checked chunk by chunk
(`BadChunks.find`), and from then on the rows of the chunks found bad are taken out of every
batch before it is read (`BadChunks.kept`), so a bad chunk is fetched once, not per batch.
"""

from __future__ import annotations

import numpy as np

from plane._errors import ChecksumError, ObjectNotFoundError, StoreError
from plane._runtime import unique_ints
from plane.core._reader import ChunkReader
from plane.core._snapshot import Snapshot

__all__ = ["SKIP_ERRORS", "BadChunks"]

#: what on_error="skip" skips: a chunk that fails its checksum, is missing, or cannot be read
SKIP_ERRORS = (ChecksumError, ObjectNotFoundError, StoreError)


class BadChunks:
    """The chunks found damaged during one pass over an epoch, for the tensors being loaded.

    A row is dropped when the chunk holding its value in any of those tensors is bad: the base
    chunk of its index entry, or, for a patched row, the patch chunk holding its newest value.
    """

    def __init__(self, snapshot: Snapshot, tensors: list[str]) -> None:
        self.snapshot, self.tensors = snapshot, tensors
        self.keys: set[str] = set()
        self._entries: dict[str, np.ndarray] = {}  # tensor -> sorted entries with a bad key

    def kept(self, pos: np.ndarray) -> np.ndarray:
        """`pos` less the rows that live in a chunk known to be bad (`pos` itself if none)."""
        if not self.keys or not pos.shape[0]:
            return pos
        snap = self.snapshot
        phys = snap.to_physical(pos)
        bad = np.zeros(pos.shape[0], bool)
        for name in self.tensors:
            base = np.ones(pos.shape[0], bool)
            pm = snap.patch_map(name)
            if pm is not None:
                sel, at = pm.hits(phys)
                base[sel] = False
                hit = [pm.keys[int(pm.which[a])] in self.keys for a in at]
                bad[sel[np.asarray(hit, bool)]] = True
            ents = self._entries.get(name)
            if ents is not None and ents.shape[0]:
                ent, _ = snap.index(name).locate(phys)
                j = np.minimum(np.searchsorted(ents, ent), ents.shape[0] - 1)
                bad |= base & (ents[j] == ent)
        out: np.ndarray = pos[~bad]
        return out

    def find(self, pos: np.ndarray) -> bool:
        """Check every chunk the rows `pos` read (each verified whole, as a reader would) and
        remember those that fail; whether any was found."""
        snap = self.snapshot
        phys = snap.to_physical(pos)
        found = False
        for name in self.tensors:
            index = snap.index(name)
            keys: list[str] = []
            base = phys
            pm = snap.patch_map(name)
            if pm is not None:
                sel, at = pm.hits(phys)
                keys += [pm.keys[int(pm.which[a])] for a in at]
                base = np.delete(phys, sel)
            if base.shape[0]:
                ent, _ = index.locate(base)
                for e in unique_ints(ent).tolist():
                    keys += index.entry_keys(e)
            for k in dict.fromkeys(keys):
                if k not in self.keys and not _intact(snap.reader, k, f"tensor {name!r}"):
                    self.keys.add(k)
                    found = True
        if found:
            self._index_entries()
        return found

    def _index_entries(self) -> None:
        for name in self.tensors:
            idx = self.snapshot.index(name)
            at = [i for i, k in enumerate(idx.keys) if k in self.keys]
            ents = np.searchsorted(idx.key_ptr, np.asarray(at, np.int64), side="right") - 1
            self._entries[name] = unique_ints(ents.astype(np.int64))


def _intact(reader: ChunkReader, key: str, where: str) -> bool:
    """Whether chunk `key` can be fetched and passes its whole-object checksum."""
    if key in reader._bad:  # its background verification failed
        return False
    try:
        reader.chunk(key, where)
    except SKIP_ERRORS:
        return False
    return True
