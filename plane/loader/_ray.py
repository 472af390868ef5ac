"""`ds.to_ray()`: a Ray Data Datasource whose read tasks are aligned to chunks.

Every read task owns a contiguous run of whole chunks of the dataset's largest tensor, reads
them in a Ray worker through the version's Snapshot (pickled as store + state key) from the
same store (a local path reachable by every node, or s3://...),
and yields one block per chunk — so a Ray Data pipeline reads each chunk once, in large
requests, exactly as the embedded loader does. This module imports Ray: `plane` imports it
only inside `Dataset.to_ray`, so the embedded path never loads Ray.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import ray
from ray.data.block import BlockAccessor, BlockMetadata
from ray.data.datasource import Datasource, ReadTask

from plane._errors import PlaneError
from plane.core._snapshot import Snapshot
from plane.loader._loader import _TORCH_WIDEN

__all__ = ["PlaneDatasource", "to_ray"]


def _widen(a: np.ndarray) -> np.ndarray:
    """uint16/uint32 (class labels) widened losslessly, as the torch loader does, so that
    labels reach `F.cross_entropy` (via `iter_torch_batches`) as int64."""
    wide = _TORCH_WIDEN.get(a.dtype.str[1:])
    return a if wide is None else a.astype(wide)


def _column(values: Any, null: np.ndarray | None = None) -> Any:
    """A batch column Ray Data can turn into an Arrow column (tensor, variable-shape, str);
    the rows `null` marks are None (Arrow nulls)."""
    if null is not None:
        cells = list(values)
        for i in np.flatnonzero(null).tolist():
            cells[i] = None
        out = np.empty(len(cells), dtype=object)
        out[:] = [_widen(v) if isinstance(v, np.ndarray) else v for v in cells]
        return out
    if isinstance(values, np.ndarray):
        return _widen(values)
    if values and all(isinstance(v, np.ndarray) for v in values):
        out = np.empty(len(values), dtype=object)
        out[:] = [_widen(v) for v in values]
        return out
    return np.asarray(values, dtype=object)


def _read_units(snapshot: Snapshot, tensors: Sequence[str],
                units: Sequence[tuple[int, int]], positions: np.ndarray | None = None,
                extra: Mapping[str, np.ndarray] | None = None) -> Iterator[Any]:
    """One block per unit: rows a..b of the dataset, or `positions[a:b]` (with `extra`
    columns aligned with `positions`)."""
    for a, b in units:
        pos = np.arange(a, b, dtype=np.int64) if positions is None else positions[a:b]
        batch = {n: _column(snapshot.read(n, pos, True, False), snapshot.null_mask(n, pos))
                 for n in tensors}
        for k, v in (extra or {}).items():
            batch[k] = v[a:b]
        yield BlockAccessor.batch_to_block(batch)


class PlaneDatasource(Datasource):  # type: ignore[misc]
    """Reads one dataset version; each read task owns a run of whole chunks."""

    def __init__(self, snapshot: Snapshot, tensors: Sequence[str],
                 units: list[tuple[int, int]], row_bytes: float,
                 positions: np.ndarray | None = None,
                 extra: Mapping[str, np.ndarray] | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.snapshot, self.tensors = snapshot, list(tensors)
        self.units, self.row_bytes = units, row_bytes
        #: the rows read, in order (None: the whole version); units index into them
        self.positions, self.extra = positions, dict(extra or {})

    def get_name(self) -> str:
        return "Tensorplane"

    def estimate_inmemory_data_size(self) -> int | None:
        return int(sum(b - a for a, b in self.units) * self.row_bytes)

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        k = max(1, min(int(parallelism), len(self.units)))
        tasks = []
        for g in np.array_split(np.arange(len(self.units)), k):
            if not g.shape[0]:
                continue
            units = [self.units[int(i)] for i in g]
            rows = sum(b - a for a, b in units)
            meta = BlockMetadata(num_rows=rows, size_bytes=int(rows * self.row_bytes),
                                 input_files=None, exec_stats=None)
            read = partial(_read_units, self.snapshot, self.tensors, units)
            if self.positions is not None:  # each task carries only its own rows
                lo, hi = units[0][0], units[-1][1]
                read = partial(_read_units, self.snapshot, self.tensors,
                               [(a - lo, b - lo) for a, b in units],
                               self.positions[lo:hi],
                               {k: v[lo:hi] for k, v in self.extra.items()})
            tasks.append(ReadTask(read, meta, per_task_row_limit=per_task_row_limit))
        return tasks


def to_ray(snapshot: Snapshot, tensors: Sequence[str] | None = None,
           override_num_blocks: int | None = None, positions: np.ndarray | None = None,
           extra: Mapping[str, np.ndarray] | None = None) -> Any:
    """`snapshot` as a `ray.data.Dataset` (rows in dataset order; or rows `positions` in
    that order, with `extra` columns aligned with them: a query result and its scores).

    Shuffle in Ray with `iter_torch_batches(local_shuffle_buffer_size=...)` or
    `randomize_block_order()`; blocks are whole chunks, so that stays chunk-sized.
    """
    url = snapshot.url
    if url.startswith("mem://"):
        raise PlaneError(f"ds.to_ray() cannot read {url}: a mem:// store lives in one process "
                         "and Ray workers cannot see it; write the dataset to a local path "
                         "or s3:// and open that")
    names = list(tensors or snapshot.tensor_names)
    for n in names:
        snapshot.part(n)  # unknown names raise TensorNotFoundError listing the tensors
    if not names:
        raise PlaneError(f"ds.to_ray(): {url} has no tensors to read")
    pos = np.arange(len(snapshot), dtype=np.int64) if positions is None \
        else np.asarray(positions, np.int64)
    n_rows = int(pos.shape[0])
    prim = max(names, key=lambda n: snapshot.index(n).nbytes)
    phys = snapshot.to_physical(pos)
    ent = snapshot.index(prim).locate(phys)[0] if n_rows else np.zeros(0, np.int64)
    cuts = np.flatnonzero(np.diff(ent)) + 1
    starts = np.concatenate([[0], cuts]).astype(np.int64) if n_rows else np.zeros(0, np.int64)
    ends = np.concatenate([cuts, [n_rows]]).astype(np.int64) if n_rows else starts
    units = [(int(a), int(b)) for a, b in zip(starts, ends)]
    if positions is not None:  # scattered rows: runs of about a chunk's rows, not one each
        per_chunk = len(snapshot) // max(1, snapshot.index(prim).num_entries)
        units = _merge_units(units, max(1, per_chunk))
    row_bytes = sum(snapshot.index(n).nbytes for n in names) / max(1, len(snapshot))
    source = PlaneDatasource(snapshot, names, units, row_bytes,
                             None if positions is None else pos, extra)
    return ray.data.read_datasource(source, override_num_blocks=override_num_blocks)


def _merge_units(units: list[tuple[int, int]], rows: int) -> list[tuple[int, int]]:
    """Adjacent units joined until each holds at least `rows` rows (the last may hold fewer)."""
    out: list[tuple[int, int]] = []
    for a, b in units:
        if out and out[-1][1] - out[-1][0] < rows:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out
