"""A node lost for good mid-epoch (`ray.cluster_utils.Cluster.remove_node`): its chunk shard
cannot restart (shards stay on their node), and the cluster loader re-rendezvouses that
shard's chunks over the survivors; the epoch completes in the planned order, nothing lost or
repeated. Its own 3-node cluster (the node does not come back), over S3 (the moto server)."""

from __future__ import annotations

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

pytestmark = [pytest.mark.ray, pytest.mark.s3, pytest.mark.slow]

ROWS = 360
WINDOW = 12 << 10
BATCH = 16


@pytest.fixture()
def cluster() -> Iterator[Any]:
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    extra = [c.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=c.address, log_to_driver=False)
    try:
        yield c, extra
    finally:
        ray.shutdown()
        c.shutdown()


def _make(s3_server: str, client: Any) -> tuple[str, dict[str, Any]]:
    name = f"loss-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=name)
    opts = s3_storage_options(s3_server)
    url = f"s3://{name}/ds"
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("images", htype="image", sample_compression="jpeg", chunk_bytes=4096)
    ds.create_tensor("labels", htype="class_label", class_names=[f"c{i}" for i in range(10)],
                     chunk_bytes=1024)
    rng = np.random.default_rng(0)
    ds.extend({"images": list(rng.integers(0, 255, (ROWS, 16, 16, 3), dtype=np.uint8)),
               "labels": rng.integers(0, 10, ROWS).tolist()})
    ds.commit("data")
    return url, opts


def _expected(url: str, opts: dict[str, Any], epoch: int) -> list[dict[str, Any]]:
    loader = plane.open(url, read_only=True, storage_options=opts).numpy(
        batch_size=BATCH, seed=7, window_bytes=WINDOW)
    loader.set_epoch(epoch)
    return list(loader)


def test_a_node_lost_for_good_mid_epoch(cluster: Any, s3_server: str,
                                        _s3_client: Any) -> None:
    import actors

    c, extra = cluster
    url, opts = _make(s3_server, _s3_client)
    head = ray.get_runtime_context().get_node_id()
    cache = actors.start_chunk_cache(url, storage_options=opts,
                                     nodes=[head, extra[0].node_id, extra[1].node_id])
    try:
        snap = plane.open(url, read_only=True, storage_options=opts).snapshot()
        chunks = {f"chunks/{k}" for n in snap.tensor_names
                  for e in range(snap.index(n).num_entries) for k in snap.index(n).entry_keys(e)}
        lost = {k for k in chunks if cache.owner(k[len("chunks/"):]) == 2}
        assert lost and lost != chunks
        loader = actors.cluster_loader(url, storage_options=opts, batch_size=BATCH, seed=7,
                                       window_bytes=WINDOW, kind="numpy", prefetch=1)
        assert loader.cache.shard_ids == [0, 1, 2]  # found by URL
        expected = _expected(url, opts, 0)
        got = []
        for i, batch in enumerate(loader):
            got.append(batch)
            if i == len(expected) // 3:
                c.remove_node(extra[1])  # shard 2's node, gone for good
        same_batches(got, expected)  # nothing lost, nothing twice, the planned order
        assert loader.lost_shards == [2]
        assert actors.get_chunk_cache(url).shard_ids == [0, 1]  # the survivors
        gets = {k: n for st in cache.stats() for k, n in st["gets"].items()
                if k.startswith("chunks/")}
        # the survivors read each of their chunks once, and of shard 2's only what the
        # rest of the epoch needed, once
        assert set(gets.values()) <= {1} and set(gets) <= chunks
        assert chunks - lost <= set(gets)
        # a new loader (another epoch) runs on the survivors from the start
        again = actors.cluster_loader(url, storage_options=opts, batch_size=BATCH, seed=7,
                                      window_bytes=WINDOW, kind="numpy")
        again.set_epoch(1)
        same_batches(list(again), _expected(url, opts, 1))
        assert again.lost_shards == []
    finally:
        cache.stop()
