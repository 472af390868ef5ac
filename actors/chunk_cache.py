"""Chunk-shard actors: the chunks of a dataset, cached across a Ray cluster.

A `ChunkCache` is a set of long-lived shard actors (one per node by default). Shard ids are
0..n-1; the owner of a chunk is the shard with the highest `xxh64(f"{shard}:{key}")`
(rendezvous hashing), so adding or losing a shard moves only that shard's share. A shard
fetches a chunk from the dataset's store the first time one of its rows is asked for,
verifies it once (the chunk reader checks the content hash while parsing), keeps it in a
memory budget (LRU, `memory_bytes`) over an optional local-disk tier (`disk_dir`, e.g. NVMe),
and coalesces concurrent requests for one chunk into one GET. Chunks of the small tensors of
a request (labels next to images: a tensor at most a quarter of the largest one's bytes) are
pinned, within half the budget, and the LRU gets the rest: they span every shuffle window
and would otherwise be evicted by the large chunks streaming through and fetched again.

Trainers never hold an object a shard owns: `gather` returns its rows as the method's return
value, which Ray makes the caller's object, so a shard that dies takes nothing a trainer
holds with it. Shards restart (`max_restarts=-1`) and calls in flight are retried
(`max_task_retries=-1`); a restarted shard fetches again what it had cached. A shard placed
on a node stays there (hard affinity: its memory and disk tier are that node's); when the
node is gone for good the shard cannot restart, and the loaders re-rendezvous its chunks
over the surviving shards (`ChunkCache.without`).

Nothing here imports ray at import time.
"""

from __future__ import annotations

import collections
import hashlib
import threading
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xxhash

import plane
from plane.core import Snapshot, is_chunk_key
from plane.storage import CachingStore, Store, WrapperStore, open_store

__all__ = ["ChunkCache", "ChunkShard", "get_chunk_cache", "owner_of", "start_chunk_cache"]

NAMESPACE = "tensorplane"
_PREFIX = "plane-chunk-shard-"
#: a tensor is small (its chunks pinned) at most 1/SMALL of the request's largest tensor
SMALL = 4
#: pinned chunks take at most 1/PIN_SHARE of a shard's memory budget
PIN_SHARE = 2


def owner_of(key: str, shards: Sequence[int]) -> int:
    """The shard (of `shards`) that owns chunk `key`: highest random weight."""
    return max(shards, key=lambda s: xxhash.xxh64_intdigest(f"{s}:{key}".encode()))


def _cache_id(url: str) -> str:
    return hashlib.sha1(url.rstrip("/").encode()).hexdigest()[:12]


class _CountingStore(WrapperStore):
    """Counts the chunk GETs that reach the dataset's store (what a shard costs S3)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.gets: collections.Counter[str] = collections.Counter()
        self.bytes = 0
        self._lock = threading.Lock()

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.gets[key] += 1
            self.bytes += n

    def get(self, key: str) -> bytes:
        data = self.inner.get(key)
        self._count(key, len(data))
        return data

    def get_buffer(self, key: str) -> bytes | memoryview:
        data = self.inner.get_buffer(key)
        self._count(key, len(data))
        return data

    def get_range(self, key: str, start: int, end: int) -> bytes:
        data = self.inner.get_range(key, start, end)
        self._count(key, len(data))
        return data


def pack_samples(samples: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Byte samples as one uint8 array and int64 offsets (len + 1)."""
    sizes = np.fromiter((len(x) for x in samples), np.int64, len(samples))
    offsets = np.zeros(len(samples) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    return np.frombuffer(b"".join(samples), np.uint8), offsets


def unpack_samples(buf: np.ndarray, offsets: np.ndarray) -> list[memoryview]:
    """The samples of `pack_samples`, as views of `buf` (no copy)."""
    mv = memoryview(buf).cast("B")
    o = offsets.tolist()
    return [mv[o[i]:o[i + 1]] for i in range(len(o) - 1)]


class ChunkShard:
    """One shard: reads rows of the chunks it owns, from its cache or the store. Plain
    Python; `start_chunk_cache` runs it as a Ray actor."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None, shard_id: int,
                 memory_bytes: int, disk_dir: str | None = None,
                 disk_bytes: int = 1 << 40) -> None:
        self.url = url
        self.shard_id = shard_id
        self.counted = _CountingStore(open_store(url, storage_options))
        store: Store = self.counted
        if disk_dir is not None:
            store = CachingStore(store, max_bytes=0, disk_dir=f"{disk_dir}/shard-{shard_id}",
                                 disk_max_bytes=disk_bytes,
                                 cacheable=is_chunk_key)
        self.store = store
        self.memory_bytes = memory_bytes
        self._reader: Any = None
        self._snaps: collections.OrderedDict[str, Snapshot] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._held: dict[str, int] = {}  # chunks a gather in progress reads
        self._pinned: set[str] = set()  # chunks of small tensors, kept (in reader.local)
        self.pinned_bytes = 0
        self.calls = 0
        #: tells this process from an earlier one of the same shard (its counts start at 0)
        self.incarnation = uuid.uuid4().hex

    def _snapshot(self, state_key: str) -> Snapshot:
        with self._lock:
            snap = self._snaps.get(state_key)
            if snap is None:
                snap = Snapshot.open(self.store, state_key, cache_bytes=self.memory_bytes,
                                     reader=self._reader)
                self._reader = snap.reader  # one cache for every version
                self._snaps[state_key] = snap
                while len(self._snaps) > 4:
                    self._snaps.popitem(last=False)
            self._snaps.move_to_end(state_key)
            self.calls += 1
            return snap

    def gather(self, state_key: str, request: Mapping[str, np.ndarray],
               raw: Sequence[str] = ()) -> dict[str, Any]:
        """Rows `request[tensor]` (logical positions) of version `state_key`, in the order
        asked: values, or for tensors in `raw` (media the caller decodes) a triple: the
        samples' bytes end to end in one uint8 array, their offsets, their shapes (one
        buffer travels through the object store zero-copy; a list of bytes is pickled)."""
        snap = self._snapshot(state_key)
        keys: list[str] = []
        small: set[str] = set()
        largest = max((snap.index(n).nbytes for n in request), default=0)
        for name, pos in request.items():  # whole chunks into the cache: one GET each
            index = snap.index(name)
            for e in np.unique(index.locate(snap.to_physical(pos))[0]):
                keys.extend(index.entry_keys(int(e)))
                if index.nbytes * SMALL <= largest:
                    small.update(index.entry_keys(int(e)))
        got = snap.reader.chunks(keys, lambda k: f"{self.url}, shard {self.shard_id}")
        with self._lock:  # held until read: the budget cannot evict them in between
            for k, c in got.items():
                self._held[k] = self._held.get(k, 0) + 1
                snap.reader.local.setdefault(k, c)
                if k in small and k not in self._pinned and \
                        (self.pinned_bytes + c.nbytes) * PIN_SHARE <= self.memory_bytes:
                    self._pinned.add(k)  # stays in reader.local; the LRU gets the rest
                    self.pinned_bytes += c.nbytes
                    snap.reader.cache.discard(k)
                    snap.reader.cache.max_bytes = self.memory_bytes - self.pinned_bytes
        try:
            out: dict[str, Any] = {}
            for name, pos in request.items():
                if name in raw:  # straight from the chunks; edited rows one by one
                    buf, offsets = snap.read_packed(name, pos) or pack_samples(
                        snap.read(name, pos, decode=False, aslist=True))
                    out[name] = (buf, offsets, snap.shapes(name, pos))
                else:
                    out[name] = snap.read(name, pos)
            return out
        finally:
            with self._lock:
                for k in got:
                    self._held[k] -= 1
                    if not self._held[k]:
                        del self._held[k]
                        if k not in self._pinned:
                            snap.reader.local.pop(k, None)

    def stats(self) -> dict[str, Any]:
        """GETs that reached the store (per chunk key), bytes fetched, cache use."""
        reader = self._reader
        return {"shard": self.shard_id, "incarnation": self.incarnation,
                "gets": dict(self.counted.gets),
                "bytes": self.counted.bytes, "calls": self.calls,
                "pinned_bytes": self.pinned_bytes,
                "cached_bytes": int(getattr(reader.cache, "nbytes", 0)) if reader else 0}

    def ping(self) -> int:
        return self.shard_id

    def node_id(self) -> str:
        """The Ray node this shard runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())


class ChunkCache:
    """Handles on the shards of one dataset's cache (picklable: pass it to trainers).
    `ids[i]` is the shard id of `shards[i]` (0..n-1 unless some are gone for good)."""

    def __init__(self, url: str, shards: Sequence[Any], ids: Sequence[int] | None = None
                 ) -> None:
        self.url = url
        self.shards = list(shards)
        self.ids = list(ids) if ids is not None else list(range(len(self.shards)))
        if len(self.ids) != len(self.shards):
            raise plane.InvalidArgumentError(
                f"ChunkCache: {len(self.shards)} shards but {len(self.ids)} ids")

    @property
    def shard_ids(self) -> list[int]:
        return list(self.ids)

    def owner(self, key: str) -> int:
        return owner_of(key, self.shard_ids)

    def without(self, shard_id: int) -> ChunkCache:
        """This cache less shard `shard_id` (gone for good): its chunks' owners become, by
        rendezvous, spread over the others; no other chunk changes owner."""
        keep = [(i, s) for i, s in zip(self.ids, self.shards) if i != shard_id]
        if not keep:
            raise plane.PlaneError(
                f"every shard of the chunk cache of {self.url} is gone (the last, "
                f"{shard_id}, cannot restart); start it again with "
                "actors.start_chunk_cache(url)")
        return ChunkCache(self.url, [s for _, s in keep], [i for i, _ in keep])

    def stats(self) -> list[dict[str, Any]]:
        """Each live shard's `ChunkShard.stats()` (a shard gone for good is left out)."""
        import ray
        from ray.exceptions import ActorDiedError, ActorUnschedulableError

        out = []
        for ref in [s.stats.remote() for s in self.shards]:
            try:
                out.append(ray.get(ref))
            except (ActorDiedError, ActorUnschedulableError):
                pass
        return out

    def gets_per_chunk(self) -> dict[str, int]:
        """GETs of every chunk summed over the shards since they started."""
        total: collections.Counter[str] = collections.Counter()
        for st in self.stats():
            total.update({k: v for k, v in st["gets"].items() if is_chunk_key(k)})
        return dict(total)

    def gets_mark(self) -> dict[int, tuple[str, int]]:
        """Each live shard's (incarnation, chunk GETs so far): a mark to count from."""
        return {st["shard"]: (st["incarnation"],
                              sum(v for k, v in st["gets"].items() if is_chunk_key(k)))
                for st in self.stats()}

    @staticmethod
    def gets_since(mark: dict[int, tuple[str, int]], now: dict[int, tuple[str, int]]) -> int:
        """Chunk GETs the live shards made from `mark` to `now` (two `gets_mark()`s). A shard
        restarted in between counts all its GETs since the restart; the GETs of a shard gone for
        good, and those a restarted one made before it died, are not known and not counted."""
        total = 0
        for shard, (inc, n) in now.items():
            was = mark.get(shard)
            total += n - was[1] if was is not None and was[0] == inc else n
        return total

    def stop(self) -> None:
        import ray

        for s in self.shards:
            try:
                ray.kill(s, no_restart=True)
            except Exception:  # gone already (its node removed)
                pass

    def __repr__(self) -> str:
        return f"ChunkCache({self.url!r}, shards={self.ids})"


def shard_nodes(alive: Sequence[Mapping[str, Any]], per_node: int | None) -> list[str]:
    """Node id of each shard, from `ray.nodes()` entries: `per_node` on every node, or by
    default one per two of its GPUs (at least one)."""
    out: list[str] = []
    for n in alive:
        gpus = int(n.get("Resources", {}).get("GPU", 0))
        out += [n["NodeID"]] * (per_node if per_node is not None else max(1, gpus // 2))
    return out


def start_chunk_cache(url: str, *, shards: int | None = None, memory_bytes: int = 8 << 30,
                      disk_dir: str | None = None, disk_bytes: int = 1 << 40,
                      storage_options: Mapping[str, Any] | None = None,
                      nodes: Sequence[str] | None = None, detached: bool = False,
                      shards_per_node: int | None = None) -> ChunkCache:
    """Start the shard actors of `url`'s chunk cache: `shards_per_node` on each alive node
    (default: one per two GPUs of the node, at least one; or `shards`, spread; or on each
    node id in `nodes`), each with `memory_bytes` of chunk cache and an optional disk tier
    under `disk_dir`. A shard placed on a node restarts only there. Returns when every shard
    answers. A shard is one Python process: one serving a whole 8-GPU node is the first
    limit in bench/cluster_model.py, hence the default."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    url = _check_url(url)
    plane.open(url, read_only=True, storage_options=storage_options)  # a dataset, reachable
    if shards_per_node is not None and shards_per_node < 1:
        raise plane.InvalidArgumentError(f"shards_per_node must be >= 1, got {shards_per_node}")
    if shards is None:
        alive = {n["NodeID"]: n for n in ray.nodes() if n.get("Alive")}
        if nodes is not None:
            gone = [x for x in nodes if x not in alive]
            if gone:
                raise plane.InvalidArgumentError(
                    f"nodes: {gone[0]!r} is not an alive Ray node; pass ids from ray.nodes()")
        picked = [alive[x] for x in nodes] if nodes is not None else list(alive.values())
        nodes = shard_nodes(picked, shards_per_node)
    count = len(nodes) if nodes is not None else int(shards or 1)
    if count < 1:
        raise plane.InvalidArgumentError(f"a chunk cache needs at least one shard, got {count}")
    cls: Any = ray.remote(ChunkShard)
    handles = []
    for i in range(count):
        opts: dict[str, Any] = {
            "name": f"{_PREFIX}{_cache_id(url)}-{i}", "namespace": NAMESPACE,
            "num_cpus": 0, "max_restarts": -1, "max_task_retries": -1,
            "max_concurrency": 8, "get_if_exists": True}
        if detached:
            opts["lifetime"] = "detached"
        if nodes is not None:
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(nodes[i], soft=False)
        else:
            opts["scheduling_strategy"] = "SPREAD"
        handles.append(cls.options(**opts).remote(
            url, dict(storage_options) if storage_options else None, i, memory_bytes,
            disk_dir, disk_bytes))
    ray.get([h.ping.remote() for h in handles])
    return ChunkCache(url, handles)


def get_chunk_cache(url: str) -> ChunkCache:
    """The running chunk cache of `url` (started by `start_chunk_cache` in this cluster):
    its live shards (those gone for good, e.g. with their node, are left out)."""
    import ray

    url = _check_url(url)
    prefix = f"{_PREFIX}{_cache_id(url)}-"
    found = sorted(int(a["name"][len(prefix):])
                   for a in ray.util.list_named_actors(all_namespaces=True)
                   if a["namespace"] == NAMESPACE and a["name"].startswith(prefix))
    if not found:
        raise plane.PlaneError(f"no chunk cache is running for {url}; start one with "
                               "actors.start_chunk_cache(url) (once, from the driver)")
    ids, handles = [], []
    for i in found:
        try:
            handles.append(ray.get_actor(f"{prefix}{i}", namespace=NAMESPACE))
            ids.append(i)
        except ValueError:  # died between the listing and now
            pass
    if not handles:
        raise plane.PlaneError(f"every shard of the chunk cache of {url} is gone; start it "
                               "again with actors.start_chunk_cache(url)")
    return ChunkCache(url, handles, ids)


def _check_url(url: str) -> str:
    url = str(url)
    if url.startswith("mem://"):
        raise plane.InvalidArgumentError(
            f"{url} is an in-process memory store that other Ray workers cannot see; put the "
            "dataset on a store every node can reach (s3://..., a shared file system path)")
    return url
