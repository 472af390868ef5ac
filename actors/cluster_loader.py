"""The cluster loader: globally shuffled batches for one rank, gathered where the chunks live.

Each rank plans the epoch exactly as the embedded loader does (`plane.loader.plan_epoch`:
chunk-aware window shuffle from `(seed, epoch)`, rank r takes every world-size-th batch), so
rank r's batches equal `ds.pytorch(seed=..., rank=r, world_size=W)`'s. For each window it
asks every shard for the rows of that window it owns (per tensor, by the chunk that holds
the row) in one call, and assembles its batches from the pieces: the rows cross the network
once, to the rank that consumes them, and the chunk bytes stay on the shard that read them.
Media (JPEG, PNG ...) travel as stored and are decoded here, on the trainer. Requests go
`prefetch` ahead of the one being consumed, and a background thread assembles and decodes
batches `ready` ahead of the trainer, so that work overlaps the training step. A shard gone
for good (its node removed: it cannot restart) is dropped: its chunks' owners are re-chosen
by rendezvous over the live shards, and the rows asked of it are asked again of their new
owners.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

import plane
from actors.chunk_cache import (
    ChunkCache,
    _check_url,
    get_chunk_cache,
    owner_of,
    unpack_samples,
)
from plane.core import Snapshot, finish_samples
from plane.loader import DEFAULT_WINDOW_BYTES, EpochPlan, plan_epoch, to_torch

__all__ = ["ClusterLoader", "cluster_loader"]

#: one request to one shard: (shard id, positions asked per tensor, the call's ref)
Call = tuple[int, dict[str, np.ndarray], Any]


def cluster_loader(url: str, *, version: str | None = None,
                   tensors: Sequence[str] | None = None, batch_size: int = 64,
                   shuffle: bool = True, seed: int = 0, drop_last: bool = False,
                   window_bytes: int = DEFAULT_WINDOW_BYTES, rank: int | None = None,
                   world_size: int | None = None, pin_memory: bool = False,
                   kind: str = "torch", cache: ChunkCache | None = None,
                   storage_options: dict[str, Any] | None = None, prefetch: int = 2,
                   ready: int = 4) -> ClusterLoader:
    """A loader over `url` at `version` (default: the default branch's head) that reads
    through the cluster's chunk cache (`actors.start_chunk_cache`, found by URL unless
    `cache` is given). Rank and world size: given, else from `ray.train.get_context()` inside
    Ray Train, else 0 and 1. `kind`: "torch" (dicts of tensors) or "numpy". `prefetch`:
    requests (of 4 batches) in flight; `ready`: batches built (decoded) ahead, in a
    background thread, while the trainer steps."""
    url = _check_url(url)
    if kind not in ("torch", "numpy"):
        raise plane.InvalidArgumentError(f"kind must be 'torch' or 'numpy', got {kind!r}")
    if batch_size < 1:
        raise plane.InvalidArgumentError(f"batch_size must be >= 1, got {batch_size}")
    snap = plane.open(url, read_only=True, version=version,
                      storage_options=storage_options).snapshot()
    names = list(tensors) if tensors else list(snap.tensor_names)
    for n in names:
        snap.meta(n)  # TensorNotFoundError listing the tensors
        _refuse_nulls(snap, n)
    r, w = _rank(rank, world_size)
    return ClusterLoader(snap, cache or get_chunk_cache(url), names, batch_size, shuffle,
                         seed, drop_last, window_bytes, r, w, pin_memory, kind, prefetch,
                         ready)


def _refuse_nulls(snap: Snapshot, name: str) -> None:
    """A batch needs a value in every tensor: refuse a tensor with nulls up front, as the
    embedded loader's default (nulls="raise") would at the first batch that meets one."""
    if not snap.has_nulls(name):
        return
    mask = snap.null_mask(name, np.arange(len(snap), dtype=np.int64))
    if mask is None or not mask.any():
        return
    rows = np.flatnonzero(mask)
    raise plane.SampleError(
        f"tensor {name!r} of {snap.url} is null in {rows.shape[0]} row(s) (first: row "
        f"{int(rows[0])}); the cluster loader needs a value in every tensor it loads: write "
        f"values there, or leave {name!r} out of tensors=[...]")


def _rank(rank: int | None, world: int | None) -> tuple[int, int]:
    if rank is not None and world is not None:
        return rank, world
    try:
        from ray import train

        ctx = train.get_context()
        return (rank if rank is not None else ctx.get_world_rank(),
                world if world is not None else ctx.get_world_size())
    except Exception:  # not inside Ray Train
        return rank or 0, world or 1


class ClusterLoader:
    """Batches of one rank, one epoch per iteration; resumable mid-epoch (`state_dict`)."""

    def __init__(self, snap: Snapshot, cache: ChunkCache, tensors: list[str], batch_size: int,
                 shuffle: bool, seed: int, drop_last: bool, window_bytes: int, rank: int,
                 world: int, pin_memory: bool, kind: str, prefetch: int,
                 ready: int = 4) -> None:
        if not 0 <= rank < world:
            raise plane.InvalidArgumentError(f"rank {rank} is outside world size {world}")
        self.snapshot = snap
        self.cache = cache
        self.tensors = tensors
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.window_bytes = window_bytes
        self.rank, self.world = rank, world
        self.pin_memory = pin_memory
        self.kind = kind
        self.prefetch = max(1, prefetch)
        #: batches per request to the shards (each request a round trip per shard)
        self.request_batches = 4
        #: batches built ahead of the consumer by the background thread
        self.ready = ready
        self.epoch = 0
        self.position = 0
        self.last_epoch: dict[str, Any] = {}
        metas = {n: snap.meta(n) for n in tensors}
        self._raw = [n for n, m in metas.items() if m.sample_compression and m.kind == "array"]
        self._primary = max(tensors, key=lambda n: snap.index(n).nbytes)
        phys = snap.to_physical(np.arange(len(snap), dtype=np.int64))
        self._entry = {n: snap.index(n).locate(phys)[0] if len(snap) else
                       np.zeros(0, np.int64) for n in tensors}
        #: shards this loader found gone for good (their chunks re-assigned)
        self.lost_shards: list[int] = []
        self._owner: dict[str, np.ndarray] = {}
        self._remote: set[int] | None = None
        self._assign()
        self._plans: dict[int, EpochPlan] = {}
        self._gets_mark: dict[int, tuple[str, int]] | None = None

    def _assign(self) -> None:
        """The shard of each row of each tensor: the owner of its chunk among live shards."""
        ids = self.cache.shard_ids
        for n in self.tensors:
            index = self.snapshot.index(n)
            per_entry = np.array([owner_of(_entry_key(index, e), ids)
                                  for e in range(index.num_entries)], np.int64)
            self._owner[n] = per_entry[self._entry[n]] if per_entry.shape[0] else \
                np.zeros(0, np.int64)

    def _remote_shards(self) -> set[int]:
        """Ids of the shards on another node than this loader's (asked once)."""
        if self._remote is None:
            import ray
            from ray.exceptions import ActorDiedError, ActorUnschedulableError

            here = ray.get_runtime_context().get_node_id()
            refs = [(i, s.node_id.remote()) for i, s in zip(self.cache.shard_ids,
                                                             self.cache.shards)]
            self._remote = set()
            for i, ref in refs:
                try:
                    if ray.get(ref) != here:
                        self._remote.add(i)
                except (ActorDiedError, ActorUnschedulableError):  # gone: not here
                    self._remote.add(i)
        return self._remote

    def _lose(self, shard_id: int) -> None:
        if shard_id in self.cache.shard_ids:
            self.cache = self.cache.without(shard_id)
            self.lost_shards.append(shard_id)
            self._assign()

    # ---- planning -------------------------------------------------------------------------
    def plan(self, epoch: int) -> EpochPlan:
        if epoch not in self._plans:
            prim = self.snapshot.index(self._primary)
            self._plans = {epoch: plan_epoch(
                self._entry[self._primary], prim.nbytes / max(1, prim.num_chunks),
                self.window_bytes, self.seed, epoch, self.shuffle, self.batch_size, self.rank,
                self.world, self.drop_last)}
        return self._plans[epoch]

    def __len__(self) -> int:
        return len(self.plan(self.epoch).batches)

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "batch_size": self.batch_size, "rank": self.rank, "world_size": self.world,
                "state": self.snapshot.state_key}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("state") != self.snapshot.state_key:
            raise plane.InvalidArgumentError(
                "this loader state was saved for another dataset version (state "
                f"{state.get('state')}); open the loader at the same version")
        mine = (self.seed, self.batch_size, self.rank, self.world)
        theirs = (state.get("seed"), state.get("batch_size"), state.get("rank"),
                  state.get("world_size"))
        if mine != theirs:
            raise plane.InvalidArgumentError(
                f"loader state is for (seed, batch_size, rank, world_size) = {theirs}, this "
                f"loader has {mine}")
        self.epoch, self.position = int(state["epoch"]), int(state["position"])

    # ---- reading --------------------------------------------------------------------------
    def _groups(self, plan: EpochPlan, start: int) -> list[list[int]]:
        """This rank's batches from `start` on, grouped by window and at most
        `request_batches` a group (requests go per group: a large window is not one large
        first request). The first group is one batch: the first batch waits for no more."""
        groups: list[list[int]] = []
        last = -1
        for i in range(start, len(plan.batches)):
            w = int(plan.window_of_batch[i]) if plan.window_of_batch.shape[0] else 0
            if w != last or len(groups[-1]) >= (self.request_batches if len(groups) > 1
                                                else 1):
                groups.append([])
                last = w
            groups[-1].append(i)
        return groups

    def _request(self, plan: EpochPlan, group: list[int]) -> list[Call]:
        """Ask every shard for its rows of `group`'s batches."""
        pos = np.concatenate([plan.order[a:b] for a, b in (plan.batches[i] for i in group)])
        return self._ask({n: pos for n in self.tensors})

    def _ask(self, want: dict[str, np.ndarray]) -> list[Call]:
        """Ask each live shard for the rows of `want` (positions per tensor) it owns: (shard
        id, positions asked per tensor, the call's ref) for each shard asked."""
        calls = []
        for s, shard in zip(self.cache.shard_ids, self.cache.shards):
            req = {}
            for n, pos in want.items():
                mine = pos[self._owner[n][pos] == s] if pos.shape[0] else pos
                if mine.shape[0]:
                    req[n] = mine
            if req:
                calls.append((s, req, shard.gather.remote(self.snapshot.state_key, req,
                                                          self._raw)))
        return calls

    def _results(self, calls: list[Call]) -> list[tuple[int, dict[str, np.ndarray], Any]]:
        """(shard, positions asked, answer) of each call; the rows asked of a shard gone for
        good are asked again of their new owners."""
        import ray
        from ray.exceptions import ActorDiedError, ActorUnschedulableError, RayTaskError

        out = []
        for s, req, ref in calls:
            try:
                out.append((s, req, ray.get(ref)))
            except (ActorDiedError, ActorUnschedulableError):  # restarts are unlimited:
                # this shard cannot come back (dead, or its node gone)
                self._lose(s)
                out.extend(self._results(self._ask(req)))
            except RayTaskError as err:  # the shard's own error, without Ray's traceback
                raise _from_shard(err, s) from None
        return out

    def _assemble(self, calls: list[Call],
                  stats: dict[str, Any]) -> dict[str, tuple[np.ndarray, Any, np.ndarray | None]]:
        """Per tensor: the positions it got (sorted), their values (in that order, or in
        answer order with the permutation that sorts them)."""
        answered = self._results(calls)
        out: dict[str, tuple[np.ndarray, Any]] = {}
        for n in self.tensors:
            parts_pos, parts_val = [], []
            for s, req, piece in answered:
                if n in req:
                    parts_pos.append(req[n])
                    parts_val.append(piece[n])
                    size = _nbytes(piece[n])
                    stats["bytes"] += size
                    if s in self._remote_shards():
                        stats["cross_node_bytes"] += size
            all_pos = np.concatenate(parts_pos)
            order = np.argsort(all_pos, kind="stable")
            out[n] = (all_pos[order], *_concat(parts_val, order))
        return out

    def _batch(self, table: dict[str, tuple[np.ndarray, Any, np.ndarray | None]],
               rows: np.ndarray) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for n, (sorted_pos, vals, perm) in table.items():
            at = np.searchsorted(sorted_pos, rows)
            if perm is not None:  # an array in answer order: one copy, into the batch
                at = perm[at]
            if n in self._raw:
                raws, shapes = vals
                out[n] = finish_samples(self.snapshot.meta(n), [raws[i] for i in at],
                                        [tuple(shapes[i]) for i in at])
            elif isinstance(vals, np.ndarray):
                out[n] = vals[at]
            else:
                picked = [vals[i] for i in at]
                if self.snapshot.meta(n).kind == "array" and picked and \
                        all(isinstance(v, np.ndarray) for v in picked) and \
                        len({v.shape for v in picked}) == 1:
                    out[n] = np.stack(picked)
                else:
                    out[n] = picked
        return out

    def _produce(self, plan: EpochPlan, groups: list[list[int]], stats: dict[str, Any],
                 out: queue.Queue[tuple[int, Any, BaseException | None]],
                 stop: threading.Event) -> None:
        """The background half of `__iter__`: requests `prefetch` groups ahead, assembles
        each group's answers and builds its batches (JPEG decode, torch conversion), and
        puts (batch index, batch, None) on `out` in order; (-1, None, error) if it fails,
        then (-1, None, None) at the end. Stops early once `stop` is set."""
        def put(item: tuple[int, Any, BaseException | None]) -> bool:
            while not stop.is_set():
                try:
                    out.put(item, timeout=0.2)  # wakes up to see `stop`
                    return True
                except queue.Full:
                    continue
            return False

        try:
            # GETs are counted from the end of the last epoch this loader finished (no
            # round trip before the first request), else from a mark taken now
            mark, self._gets_mark = self._gets_mark or self.cache.gets_mark(), None
            ahead = [self._request(plan, g) for g in groups[:self.prefetch]]
            for gi, group in enumerate(groups):
                table = self._assemble(ahead.pop(0), stats)
                if gi + self.prefetch < len(groups):
                    ahead.append(self._request(plan, groups[gi + self.prefetch]))
                for i in group:
                    a, b = plan.batches[i]
                    batch = self._batch(table, plan.order[a:b])
                    if self.kind == "torch":
                        batch = to_torch(batch, self.pin_memory)
                    if not put((i, batch, None)):
                        return
            # every answer is in: count the epoch's GETs here, while the trainer still
            # steps through the last batches, not after its last one
            now = self.cache.gets_mark()
            stats["store_gets"] = self.cache.gets_since(mark, now)
            self._gets_mark = now
        except BaseException as err:  # handed to the consumer, raised there
            put((-1, None, err))
            return
        put((-1, None, None))

    def __iter__(self) -> Iterator[Any]:
        """This rank's batches of the current epoch from `position` on. A background thread
        requests, assembles and builds (decodes) batches up to `ready` ahead of the one
        handed out, so the work overlaps the training step; `last_epoch` reports the time
        the consumer waited."""
        plan = self.plan(self.epoch)
        groups = self._groups(plan, self.position)
        started = time.perf_counter()
        stats: dict[str, Any] = {"bytes": 0, "cross_node_bytes": 0, "waits": [], "rows": 0,
                                 "chunks_per_batch": [], "store_gets": 0}
        ready: queue.Queue[tuple[int, Any, BaseException | None]] = queue.Queue(
            max(1, self.ready))
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(plan, groups, stats, ready, stop),
                                  name="plane-cluster-loader", daemon=True)
        worker.start()
        first = None
        try:
            while True:
                t0 = time.perf_counter()
                i, batch, err = ready.get()
                if err is not None:
                    raise err
                if i < 0:
                    break
                stats["waits"].append(time.perf_counter() - t0)
                a, b = plan.batches[i]
                stats["rows"] += int(b - a)
                stats["chunks_per_batch"].append(
                    int(np.unique(self._entry[self._primary][plan.order[a:b]]).shape[0]))
                if first is None:
                    first = time.perf_counter() - started
                self.position = i + 1
                yield batch
        finally:
            stop.set()
        worker.join()
        took = time.perf_counter() - started
        waits = np.asarray(stats["waits"] or [0.0])
        self.last_epoch = {
            "epoch": self.epoch, "batches": len(stats["waits"]), "rows": stats["rows"],
            "seconds": took, "time_to_first_batch": first or 0.0,
            "rows_per_s": stats["rows"] / took if took > 0 else 0.0,
            "p99_wait": float(np.percentile(waits, 99)), "wait_total": float(waits.sum()),
            "store_gets": stats["store_gets"],
            "bytes_moved": stats["bytes"], "bytes_cross_node": stats["cross_node_bytes"],
            "chunks_per_batch": float(np.mean(stats["chunks_per_batch"] or [0])),
            "lost_shards": list(self.lost_shards)}
        self.epoch, self.position = self.epoch + 1, 0

    def __repr__(self) -> str:
        return (f"ClusterLoader({self.snapshot.url!r}, rank={self.rank}/{self.world}, "
                f"batch_size={self.batch_size}, shards={len(self.cache.shards)}, "
                f"epoch={self.epoch}, position={self.position})")


def _from_shard(err: Any, shard: int) -> BaseException:
    """A plane error a shard raised, as the trainer's own (same type, the shard named);
    anything else as Ray reports it."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, plane.PlaneError):
        try:
            return type(cause)(f"chunk cache shard {shard}: {cause}")
        except TypeError:  # an error type that takes other arguments
            return cause
    return err  # type: ignore[no-any-return]


def _entry_key(index: Any, e: int) -> str:
    keys = index.entry_keys(e)
    return str(keys[0]) if keys else f"fill-{e}"


def _nbytes(v: Any) -> int:
    if isinstance(v, np.ndarray):
        return int(v.nbytes)
    if isinstance(v, tuple):
        return sum(_nbytes(x) for x in v)
    if isinstance(v, list):
        return sum(_nbytes(x) if isinstance(x, np.ndarray) else len(x)
                   if isinstance(x, (bytes, str)) else 8 for x in v)
    return 8


def _concat(parts: list[Any], order: np.ndarray) -> tuple[Any, np.ndarray | None]:
    """Pieces (arrays, lists, or packed media: bytes, offsets, shapes) joined: (values put
    in `order`, None), or for arrays (values joined, `order`): a batch then takes its rows
    straight from the joined answers, without a reordered copy of the whole group."""
    if parts and isinstance(parts[0], tuple):  # (bytes end to end, offsets, shapes)
        raws = [x for p in parts for x in unpack_samples(p[0], p[1])]
        shapes = np.concatenate([np.asarray(p[2]).reshape(len(p[1]) - 1, -1)
                                 for p in parts])
        return ([raws[i] for i in order], shapes[order]), None
    if parts and all(isinstance(p, np.ndarray) for p in parts) and \
            len({(p.dtype, p.shape[1:]) for p in parts}) == 1:
        return (parts[0] if len(parts) == 1 else np.concatenate(parts)), order
    flat = [x for p in parts for x in p]
    return [flat[i] for i in order], None
