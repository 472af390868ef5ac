"""Pure functions that plan an epoch: chunk-aware shuffle, batching, rank sharding.

Everything here depends only on its arguments — (units, seed, epoch, ...) — so the order is
the same whatever the number of workers, the world size or the process, and can be tested
without any I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.random import default_rng  # at import: numpy.random takes ~5 ms to load

__all__ = ["EpochPlan", "epoch_order", "global_batches", "plan_epoch", "rank_batches",
           "units_of"]


@dataclass
class EpochPlan:
    """One rank's epoch: the visiting order of all rows, this rank's batches as slices of
    it, the window of each batch, and the rows of each window."""

    epoch: int
    order: np.ndarray
    batches: list[tuple[int, int]]  # this rank's batches, as slices of `order`
    window_of_batch: np.ndarray  # window id of each batch (for read-ahead)
    windows: list[np.ndarray] = field(default_factory=list)  # positions per window
    units: list[np.ndarray] = field(default_factory=list)  # row positions per chunk


def plan_epoch(entry_of_row: np.ndarray, bytes_per_chunk: float, window_bytes: int,
               seed: int, epoch: int, shuffle: bool, batch_size: int, rank: int, world: int,
               drop_last: bool, positions: np.ndarray | None = None) -> EpochPlan:
    """The plan of one epoch for rank `rank` of `world`: `entry_of_row[i]` is the chunk of
    row i of the rows streamed (all rows, or the subset `positions`, which the order then
    refers to), chunks of `bytes_per_chunk` on average shuffle in windows of `window_bytes`."""
    units = units_of(entry_of_row)
    n = int(entry_of_row.shape[0])
    window = max(1, int(window_bytes // max(bytes_per_chunk, 1.0)))
    order = epoch_order(units, seed, epoch, shuffle, window)
    if positions is not None:
        order = positions[order]  # indices into the subset -> dataset positions
    bounds = rank_batches(global_batches(n, batch_size, world, drop_last), rank, world)
    if shuffle:
        perm = default_rng([seed, epoch]).permutation(len(units))
        sizes = [sum(units[i].shape[0] for i in perm[s:s + window])
                 for s in range(0, len(perm), window)]
    else:
        sizes = [sum(u.shape[0] for u in units[s:s + window])
                 for s in range(0, len(units), window)]
    ends = np.cumsum(sizes) if sizes else np.zeros(0, np.int64)
    starts = ends - np.asarray(sizes, np.int64) if sizes else ends
    wob = np.searchsorted(ends, np.asarray([a for a, _ in bounds], np.int64), side="right")
    windows = [order[int(a):int(b)] for a, b in zip(starts, ends)]
    return EpochPlan(epoch, order, bounds, wob, windows, units)


def units_of(entry_of_row: np.ndarray) -> list[np.ndarray]:
    """Group row positions by the chunk (entry) holding them: one array of positions per chunk,
    in row order. `entry_of_row[i]` is the chunk id of row i (non-decreasing)."""
    if not entry_of_row.shape[0]:
        return []
    cuts = np.flatnonzero(np.diff(entry_of_row)) + 1
    return np.split(np.arange(entry_of_row.shape[0], dtype=np.int64), cuts)


def epoch_order(units: list[np.ndarray], seed: int, epoch: int, shuffle: bool,
                window_chunks: int) -> np.ndarray:
    """All row positions of one epoch, in visiting order.

    With shuffle: the chunk order is a seeded permutation; consecutive runs of `window_chunks`
    chunks form a window whose rows are shuffled together. Reads stay chunk-sized (each chunk
    is read once per epoch) while a batch mixes up to `window_chunks` chunks.
    """
    if not units:
        return np.zeros(0, np.int64)
    if not shuffle:
        return np.concatenate(units)
    rng = default_rng([seed, epoch])
    perm = rng.permutation(len(units))
    w = max(1, window_chunks)
    out = []
    for s in range(0, len(perm), w):
        rows = np.concatenate([units[i] for i in perm[s:s + w]])
        out.append(rows[rng.permutation(rows.shape[0])])
    return np.concatenate(out)


def global_batches(n: int, batch_size: int, world: int, drop_last: bool) -> list[tuple[int, int]]:
    """Cut n ordered rows into batches (start, stop), in rounds of `world` batches (one per rank).

    Every rank gets the same number of batches and, unless `drop_last`, no row is lost or
    repeated: the rows left after the last full round are spread over one more round (sizes
    differ by at most one); if fewer rows than ranks are left, they join the previous round's
    batches (some get batch_size + 1 rows). With `drop_last`, the incomplete round is dropped.
    """
    if batch_size < 1 or world < 1:
        raise ValueError("batch_size and world size must be >= 1")
    per_round = batch_size * world
    full = n // per_round
    bounds = [(i * batch_size, (i + 1) * batch_size) for i in range(full * world)]
    rest = n - full * per_round
    if rest == 0 or drop_last:
        return bounds
    start = full * per_round
    if rest >= world:
        sizes = [rest // world + (1 if r < rest % world else 0) for r in range(world)]
    else:
        if not bounds:  # fewer rows than ranks in the whole epoch: nothing fair to do
            return [(start + r, start + r + 1) if r < rest else (start, start)
                    for r in range(world)]
        # fold the leftovers into the last full round: one extra row for some batches
        last = bounds[-world:]
        del bounds[-world:]
        base = last[0][0]
        sizes = [batch_size + (1 if r < rest else 0) for r in range(world)]
        start = base
    pos = start
    for s in sizes:
        bounds.append((pos, pos + s))
        pos += s
    return bounds


def rank_batches(bounds: list[tuple[int, int]], rank: int, world: int) -> list[tuple[int, int]]:
    """The batches of one rank: every world-th batch, starting at `rank`."""
    if not 0 <= rank < world:
        raise ValueError(f"rank {rank} is outside world size {world}")
    return bounds[rank::world]
