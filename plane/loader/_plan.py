"""Pure functions that plan an epoch: chunk-aware shuffle, batching, rank sharding.

Everything here depends only on its arguments — (units, seed, epoch, ...) — so the order is
the same whatever the number of workers, the world size or the process, and can be tested
without any I/O.
"""

from __future__ import annotations

import numpy as np
from numpy.random import default_rng  # at import: numpy.random takes ~5 ms to load

__all__ = ["epoch_order", "global_batches", "rank_batches", "units_of"]


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
