"""The cluster data plane on a real multi-node Ray cluster (`ray.cluster_utils.Cluster`, 3
nodes, each with its own object store) over S3 (the moto server): chunk-shard actors and the
cluster loader, checked against the embedded loader's plan, GET counts, a shard killed
mid-epoch, a resume in a new process and bad input."""

from __future__ import annotations

import collections
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import plane

ray = pytest.importorskip("ray")
pytest.importorskip("s3fs")
from _oracles import same_batches  # noqa: E402
from conftest import s3_storage_options  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.s3]

ROWS = 480
WINDOW = 12 << 10  # a few chunks per window: many windows in a small dataset
BATCH = 16


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    if ray.is_initialized():  # an earlier module's local instance (e.g. the CLI's --ray)
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    for _ in range(2):
        c.add_node(num_cpus=1)
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c
    finally:
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def bucket(s3_server: str, _s3_client: Any) -> tuple[str, dict[str, Any]]:
    name = f"cluster-{uuid.uuid4().hex[:16]}"
    _s3_client.create_bucket(Bucket=name)
    return f"s3://{name}", s3_storage_options(s3_server)


def _make(bucket: tuple[str, dict[str, Any]], tag: str) -> tuple[str, dict[str, Any]]:
    """A dataset of JPEG images, labels and small vectors, in many small chunks."""
    root, opts = bucket
    url = f"{root}/{tag}-{uuid.uuid4().hex[:8]}"
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("images", htype="image", sample_compression="jpeg", chunk_bytes=4096)
    ds.create_tensor("labels", htype="class_label", class_names=[f"c{i}" for i in range(10)],
                     chunk_bytes=1024)
    ds.create_tensor("x", dtype="float32", chunk_bytes=2048)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (ROWS, 16, 16, 3), dtype=np.uint8)
    ds.extend({"images": list(img), "labels": rng.integers(0, 10, ROWS).tolist(),
               "x": rng.normal(size=(ROWS, 4)).astype(np.float32)})
    ds.delete([3, 77])  # deleted rows must not come back
    ds.commit("data")
    return url, opts


def _expected(url: str, opts: dict[str, Any], rank: int, world: int, epoch: int,
              seed: int = 7, window: int = WINDOW) -> list[dict[str, Any]]:
    loader = plane.open(url, read_only=True, storage_options=opts).numpy(
        batch_size=BATCH, seed=seed, rank=rank, world_size=world, window_bytes=window)
    loader.set_epoch(epoch)
    return list(loader)


def _loader(url: str, opts: dict[str, Any], cache: Any, **options: Any) -> Any:
    """Rank 0 of 1 over `cache`, numpy batches, the plan `_expected` checks against."""
    import actors

    return actors.cluster_loader(url, storage_options=opts, batch_size=BATCH, seed=7, rank=0,
                                 world_size=1, window_bytes=WINDOW, kind="numpy", cache=cache,
                                 **options)


@ray.remote(num_cpus=0)
def _rank_epochs(url: str, opts: dict[str, Any], rank: int, world: int, epochs: int,
                 seed: int = 7) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
    import actors

    loader = actors.cluster_loader(url, storage_options=opts, batch_size=BATCH, seed=seed,
                                   rank=rank, world_size=world, window_bytes=WINDOW,
                                   kind="numpy")
    out, stats = [], []
    for e in range(epochs):
        loader.set_epoch(e)
        out.append(list(loader))
        stats.append(loader.last_epoch)
    return out, stats


@pytest.mark.parametrize("world", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_every_rank_gets_the_embedded_plan_and_each_chunk_is_read_once(
        cluster: Any, bucket: tuple[str, dict[str, Any]], world: int) -> None:
    import actors

    url, opts = _make(bucket, f"w{world}")
    cache = actors.start_chunk_cache(url, storage_options=opts)
    try:
        assert len(cache.shards) == 3  # one per node
        got = ray.get([_rank_epochs.remote(url, opts, r, world, 1) for r in range(world)])
        for r, (epochs, stats) in enumerate(got):
            same_batches(epochs[0], _expected(url, opts, r, world, 0))
            assert stats[0]["chunks_per_batch"] > 1  # batches mix chunks
            # 3 shards on 3 nodes: about 2/3 of a rank's rows come from other nodes
            assert 0 < stats[0]["bytes_cross_node"] < stats[0]["bytes_moved"]
        gets = cache.gets_per_chunk()
        snap = plane.open(url, read_only=True, storage_options=opts).snapshot()
        chunks = {f"chunks/{k}" for n in snap.tensor_names
                  for e in range(snap.index(n).num_entries)
                  for k in snap.index(n).entry_keys(e)}
        assert set(gets) == chunks and set(gets.values()) == {1}  # exactly one GET each
        got = ray.get([_rank_epochs.remote(url, opts, r, world, 2) for r in range(world)])
        for r, (epochs, _) in enumerate(got):
            same_batches(epochs[1], _expected(url, opts, r, world, 1))
        assert cache.gets_per_chunk() == gets  # the cache held the dataset: no GET after
    finally:
        cache.stop()


@pytest.mark.slow
def test_a_cache_smaller_than_the_data_reads_each_chunk_once_per_epoch(
        cluster: Any, bucket: tuple[str, dict[str, Any]]) -> None:
    """Every chunk of every tensor, not only the images': the small label and vector chunks
    span every window and must not be evicted by the image chunks streaming through."""
    import actors

    url, opts = _make(bucket, "small")
    # a shard's LRU (the budget less the pinned small chunks) holds two windows' image
    # chunks: a window's chunk stays while the window's requests come in
    memory, window = 24 << 10, 8 << 10
    snap = plane.open(url, read_only=True, storage_options=opts).snapshot()
    chunks = {f"chunks/{k}": n for n in snap.tensor_names
              for e in range(snap.index(n).num_entries) for k in snap.index(n).entry_keys(e)}
    assert sum(snap.index(n).nbytes for n in snap.tensor_names) > 3 * memory  # 3 shards
    cache = actors.start_chunk_cache(url, storage_options=opts, memory_bytes=memory)
    try:
        loader = actors.cluster_loader(url, storage_options=opts, batch_size=BATCH, seed=7,
                                       rank=0, world_size=1, window_bytes=window,
                                       kind="numpy", cache=cache)
        for epoch in range(2):
            before = cache.gets_per_chunk()
            loader.set_epoch(epoch)
            same_batches(list(loader), _expected(url, opts, 0, 1, epoch, window=window))
            after = cache.gets_per_chunk()
            assert set(after) <= set(chunks)
            got = {k: after.get(k, 0) - before.get(k, 0) for k in chunks}
            more = {k: (chunks[k], n) for k, n in got.items() if n > 1}
            assert not more, f"epoch {epoch}: chunks read more than once: {more}"
            if epoch == 0:
                assert set(got.values()) == {1}
            else:  # the images streamed through again; the small chunks stayed
                small = {k for k, n in chunks.items() if n != "images"}
                assert {got[k] for k in small} == {0}
    finally:
        cache.stop()


def test_a_shard_killed_mid_epoch_loses_nothing(cluster: Any,
                                                bucket: tuple[str, dict[str, Any]]) -> None:
    import actors

    url, opts = _make(bucket, "kill")
    cache = actors.start_chunk_cache(url, storage_options=opts)
    try:
        loader = _loader(url, opts, cache, prefetch=1)
        expected = _expected(url, opts, 0, 1, 0)
        got = []
        victim = cache.shards[1]
        for i, batch in enumerate(loader):
            got.append(batch)
            if i == len(expected) // 2:
                ray.kill(victim, no_restart=False)  # restarts, empty
        same_batches(got, expected)  # nothing lost, nothing twice, same order
        assert ray.get(victim.ping.remote()) == 1  # back
        chunks = [{k[len("chunks/"):]: n for k, n in st["gets"].items()
                   if k.startswith("chunks/")} for st in cache.stats()]
        # the restarted shard read only chunks it owns; the others read theirs once
        assert {cache.owner(k) for k in chunks[1]} <= {1}
        for s in (0, 2):
            assert set(chunks[s].values()) <= {1}
            assert {cache.owner(k) for k in chunks[s]} <= {s}
    finally:
        cache.stop()


def test_a_shard_gone_for_good_hands_its_share_to_the_others(
        cluster: Any, bucket: tuple[str, dict[str, Any]]) -> None:
    import actors

    url, opts = _make(bucket, "gone")
    cache = actors.start_chunk_cache(url, storage_options=opts)
    try:
        loader = _loader(url, opts, cache, prefetch=1)
        expected = _expected(url, opts, 0, 1, 0)
        got = []
        for i, batch in enumerate(loader):
            got.append(batch)
            if i == len(expected) // 2:
                ray.kill(cache.shards[1], no_restart=True)  # cannot restart
        same_batches(got, expected)  # nothing lost, nothing twice, same order
        assert loader.lost_shards == [1]
        assert actors.get_chunk_cache(url).shard_ids == [0, 2]  # the survivors
        survivors = cache.without(1)
        for st in cache.stats():
            gets = {k[len("chunks/"):]: n for k, n in st["gets"].items()
                    if k.startswith("chunks/")}
            assert set(gets.values()) <= {1}  # each chunk once
            # a survivor read its own chunks and, of shard 1's, those rendezvous gave it
            assert {cache.owner(k) for k in gets} <= {st["shard"], 1}
            assert {survivors.owner(k) for k in gets} == {st["shard"]}
    finally:
        cache.stop()


def test_store_gets_count_the_epoch_after_a_shard_is_gone(
        cluster: Any, bucket: tuple[str, dict[str, Any]]) -> None:
    """Epoch 1 after shard 1 is gone for good: the survivors fetch its chunks, and
    `store_gets` counts exactly those GETs (the dead shard's epoch-0 counts went with it)."""
    import actors

    url, opts = _make(bucket, "gets")
    cache = actors.start_chunk_cache(url, storage_options=opts)
    try:
        loader = _loader(url, opts, cache)
        list(loader)
        assert loader.last_epoch["store_gets"] == sum(cache.gets_per_chunk().values())
        before = {st["shard"]: st["gets"] for st in cache.stats()}
        ray.kill(cache.shards[1], no_restart=True)
        got = list(loader)
        assert loader.lost_shards == [1]
        same_batches(got, _expected(url, opts, 0, 1, 1))
        new = sum(n - before[st["shard"]].get(k, 0) for st in cache.stats()
                  for k, n in st["gets"].items() if k.startswith("chunks/"))
        assert new > 0  # shard 1's chunks, fetched again by their new owners
        assert loader.last_epoch["store_gets"] == new
    finally:
        cache.stop()


def test_a_shard_that_cannot_reach_the_store_fails_clearly(
        cluster: Any, bucket: tuple[str, dict[str, Any]]) -> None:
    """Shards whose store endpoint refuses connections (the driver's works): iterating raises
    the shard's StoreError, naming the shard, the object it was reading on which store, and
    the endpoint to check; it does not hang."""
    import socket

    import actors
    from actors.chunk_cache import ChunkCache, ChunkShard

    url, opts = _make(bucket, "unreachable")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bad = {**opts, "endpoint_url": f"http://127.0.0.1:{port}",
           "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    shards = [ray.remote(ChunkShard).options(num_cpus=0, max_concurrency=8).remote(
        url, bad, i, 1 << 20) for i in range(2)]
    try:
        loader = actors.cluster_loader(url, storage_options=opts, batch_size=BATCH,
                                       kind="numpy", cache=ChunkCache(url, shards))
        with pytest.raises(plane.PlaneError) as err:
            next(iter(loader))
        msg = str(err.value)
        assert isinstance(err.value, plane.StoreError)  # the shard's error, as raised there
        assert msg.startswith("chunk cache shard ")  # which shard, not Ray's traceback
        assert f"{url}/dataset.json" in msg  # what it was reading, on which store
        assert f"127.0.0.1:{port}" in msg and "endpoint" in msg  # the endpoint, the fix
    finally:
        for sh in shards:
            ray.kill(sh)


def test_a_loader_left_early_stops_building_and_continues_exactly(
        cluster: Any, bucket: tuple[str, dict[str, Any]]) -> None:
    """Batches are built ahead in a background thread: leaving the loop stops it, and the
    epoch continues from where the consumer was, not from where the builder got to."""
    import actors

    url, opts = _make(bucket, "early")
    cache = actors.start_chunk_cache(url, storage_options=opts)
    try:
        loader = _loader(url, opts, cache, ready=3)
        it = iter(loader)
        first = [next(it), next(it)]
        builders = [t for t in threading.enumerate() if t.name == "plane-cluster-loader"]
        assert len(builders) == 1 and builders[0].is_alive()
        it.close()
        builders[0].join(timeout=60)
        assert not builders[0].is_alive()
        assert loader.position == 2 and loader.epoch == 0
        same_batches(first + list(loader), _expected(url, opts, 0, 1, 0))
        assert loader.epoch == 1
        assert not [t for t in threading.enumerate() if t.name == "plane-cluster-loader"]
    finally:
        cache.stop()


@ray.remote(num_cpus=0)
def _resume(url: str, opts: dict[str, Any], state: dict[str, Any]) -> list[dict[str, Any]]:
    import actors

    loader = actors.cluster_loader(url, storage_options=opts, batch_size=BATCH, seed=7,
                                   rank=0, world_size=1, window_bytes=WINDOW, kind="numpy")
    loader.load_state_dict(state)
    return list(loader)


def test_a_trainer_resumes_exactly_in_a_new_process(cluster: Any,
                                                    bucket: tuple[str, dict[str, Any]]) -> None:
    import actors

    url, opts = _make(bucket, "resume")
    cache = actors.start_chunk_cache(url, storage_options=opts)
    try:
        loader = _loader(url, opts, cache)
        loader.set_epoch(1)
        it = iter(loader)
        first = [next(it) for _ in range(5)]
        state = loader.state_dict()
        rest = ray.get(_resume.remote(url, opts, state))
        same_batches(first + rest, _expected(url, opts, 0, 1, 1))
    finally:
        cache.stop()


def test_torch_batches_and_bad_input(cluster: Any, bucket: tuple[str, dict[str, Any]]) -> None:
    import torch

    import actors

    url, opts = _make(bucket, "bad")
    with pytest.raises(plane.InvalidArgumentError, match="shards_per_node"):
        actors.start_chunk_cache(url, storage_options=opts, shards_per_node=0)
    with pytest.raises(plane.InvalidArgumentError, match="not an alive Ray node"):
        actors.start_chunk_cache(url, storage_options=opts, nodes=["no-such-node"])
    cache = actors.start_chunk_cache(url, storage_options=opts, shards_per_node=2)
    try:
        assert len(cache.shards) == 6  # two on each of the 3 nodes
        assert sorted(ray.get([s.ping.remote() for s in cache.shards])) == list(range(6))
        on = collections.Counter(ray.get([s.node_id.remote() for s in cache.shards]))
        assert sorted(on.values()) == [2, 2, 2]
        batch = next(iter(actors.cluster_loader(url, storage_options=opts, batch_size=4,
                                                tensors=["images", "labels"], cache=cache)))
        assert batch["images"].dtype == torch.uint8 and batch["images"].shape == (4, 16, 16, 3)
        assert batch["labels"].dtype == torch.int64  # class ids that cross_entropy takes
        with pytest.raises(plane.TensorNotFoundError, match="nope"):
            actors.cluster_loader(url, storage_options=opts, tensors=["nope"], cache=cache)
        with pytest.raises(plane.VersionNotFoundError):
            actors.cluster_loader(url, storage_options=opts, version="no-such", cache=cache)
        with pytest.raises(plane.InvalidArgumentError, match="mem://"):
            actors.cluster_loader("mem://x")
        with pytest.raises(plane.InvalidArgumentError, match="mem://"):
            actors.start_chunk_cache("mem://x")
        # a chunk the shard cannot fetch: the error names the chunk and the store
        snap = plane.open(url, read_only=True, storage_options=opts).snapshot()
        key = snap.index("x").entry_keys(0)[0]
        plane.storage.open_store(url, opts).delete(f"chunks/{key}")
        loader = actors.cluster_loader(url, storage_options=opts, tensors=["x"], cache=cache,
                                       shuffle=False)
        with pytest.raises(plane.PlaneError, match=key) as err:
            list(loader)
        assert url.split("://")[1].split("/")[0] in str(err.value)
    finally:
        cache.stop()
    with pytest.raises(plane.PlaneError, match="no chunk cache is running"):
        actors.cluster_loader(url, storage_options=opts)
