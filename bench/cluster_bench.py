"""Cluster data plane, side by side in one run: the cluster loader (chunk-shard actors) vs
(a) `ds.to_ray()` + `iter_torch_batches` with a local shuffle buffer and (c) the embedded
`ds.pytorch` reading S3 directly, on S3 (a moto server on loopback) and a simulated Ray
cluster (`ray.cluster_utils.Cluster`: each node its own raylet and object store).

Every trainer (one Ray task per node, pinned to it) consumes its rank's batches with a
simulated step (`--step-ms`). Reported per loader and node count: time to first batch (epoch
0 and 1), rows/s per trainer, p99 wait for the next batch and the share of time waiting,
store GETs per chunk per epoch, bytes moved to trainers per epoch / dataset bytes, distinct
chunks per batch. (a) runs with one consumer, as in the issue's baseline.

    .venv/bin/python bench/cluster_bench.py --rows 20000 --nodes 1 2 3
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from typing import Any

import numpy as np


def _make(url: str, opts: dict[str, Any], rows: int) -> int:
    import plane

    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("images", dtype="uint8", shape=(64, 64, 3))
    ds.create_tensor("labels", htype="class_label", class_names=[str(i) for i in range(10)])
    rng = np.random.default_rng(0)
    for s in range(0, rows, 2000):
        n = min(2000, rows - s)
        ds.extend({"images": rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8),
                   "labels": rng.integers(0, 10, n).tolist()})
    ds.commit("bench data")
    return rows * 64 * 64 * 3


def _consume(batches: Any, step: float) -> dict[str, float]:
    t0 = time.perf_counter()
    waits, rows, first = [], 0, None
    t = t0
    for b in batches:
        now = time.perf_counter()
        waits.append(now - t)
        first = first if first is not None else now - t0
        rows += len(b["labels"])
        time.sleep(step)
        t = time.perf_counter()
    took = time.perf_counter() - t0
    return {"first": first or 0.0, "rows": rows, "rows_per_s": rows / took,
            "p99_wait": float(np.percentile(waits, 99)), "wait_share": sum(waits) / took}


def _trainer(kind: str, url: str, opts: dict[str, Any], rank: int, world: int, batch: int,
             step: float, epochs: int, cache: Any = None) -> list[dict[str, Any]]:
    import plane

    out = []
    if kind == "plane":
        import actors

        loader = actors.cluster_loader(url, storage_options=opts, batch_size=batch, rank=rank,
                                       world_size=world, cache=cache)
        for e in range(epochs):
            loader.set_epoch(e)
            got = _consume(loader, step)
            got.update({k: loader.last_epoch[k] for k in ("bytes_moved", "chunks_per_batch")})
            out.append(got)
    else:  # embedded, straight from S3
        loader = plane.open(url, read_only=True, storage_options=opts).pytorch(
            batch_size=batch, rank=rank, world_size=world)
        for e in range(epochs):
            loader.set_epoch(e)
            out.append(_consume(loader, step))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--step-ms", type=float, default=50.0)
    p.add_argument("--epochs", type=int, default=2)
    a = p.parse_args()
    import logging
    import os

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's request log

    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(k, v)
    import boto3
    import ray
    from moto.server import ThreadedMotoServer
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    import actors

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    opts = {"endpoint_url": endpoint, "key": "testing", "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"}}
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket)
    url = f"s3://{bucket}/ds"
    t = time.perf_counter()
    nbytes = _make(url, opts, a.rows)
    print(f"data: {a.rows} rows, {nbytes / 1e6:.0f} MB, written in "
          f"{time.perf_counter() - t:.1f} s")
    step = a.step_ms / 1000
    results: dict[str, Any] = {}
    for n in a.nodes:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(n - 1):
            c.add_node(num_cpus=1)
        ray.init(address=c.address, log_to_driver=False)
        nodes = [x["NodeID"] for x in ray.nodes() if x["Alive"]]
        task = ray.remote(num_cpus=0)(_trainer)
        for kind in ("plane", "embedded"):
            cache = actors.start_chunk_cache(url, storage_options=opts) if kind == "plane" \
                else None
            t = time.perf_counter()
            runs = ray.get([task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                nodes[r], soft=False)).remote(kind, url, opts, r, n, a.batch, step, a.epochs,
                                               cache) for r in range(n)])
            row: dict[str, Any] = {"seconds": time.perf_counter() - t}
            for e in range(a.epochs):
                eps = [r[e] for r in runs]
                row[f"epoch{e}"] = {
                    "first_batch_s": max(x["first"] for x in eps),
                    "rows_per_s_per_trainer": float(np.mean([x["rows_per_s"] for x in eps])),
                    "p99_wait_s": max(x["p99_wait"] for x in eps),
                    "wait_share": float(np.mean([x["wait_share"] for x in eps]))}
                if kind == "plane":
                    row[f"epoch{e}"]["moved_over_dataset"] = sum(
                        x["bytes_moved"] for x in eps) / nbytes
                    row[f"epoch{e}"]["chunks_per_batch"] = float(
                        np.mean([x["chunks_per_batch"] for x in eps]))
            if cache is not None:
                gets = cache.gets_per_chunk()
                row["gets_per_chunk_total"] = {"max": max(gets.values()),
                                               "mean": float(np.mean(list(gets.values())))}
                cache.stop()
            results[f"{kind}/{n} nodes"] = row
            print(f"{kind:9s} {n} node(s): {json.dumps(row)}", flush=True)
        if n == a.nodes[0]:  # (a) Ray Data, one consumer, local shuffle buffer
            import plane

            rd = plane.open(url, read_only=True, storage_options=opts).to_ray(
                tensors=["images", "labels"])
            row = {}
            for e in range(a.epochs):
                got = _consume(rd.iter_torch_batches(batch_size=a.batch,
                                                     local_shuffle_buffer_size=2048,
                                                     local_shuffle_seed=e), step)
                row[f"epoch{e}"] = {"first_batch_s": got["first"],
                                    "rows_per_s_per_trainer": got["rows_per_s"],
                                    "p99_wait_s": got["p99_wait"],
                                    "wait_share": got["wait_share"]}
            results[f"ray-data/{n} nodes"] = row
            print(f"ray-data  {n} node(s), 1 consumer: {json.dumps(row)}", flush=True)
        ray.shutdown()
        c.shutdown()
    for n in a.nodes:
        pl, em = results[f"plane/{n} nodes"], results[f"embedded/{n} nodes"]
        last = f"epoch{a.epochs - 1}"
        print(f"{n} node(s), {last}: plane/embedded rows/s per trainer "
              f"{pl[last]['rows_per_s_per_trainer'] / em[last]['rows_per_s_per_trainer']:.2f}x")
        if f"ray-data/{n} nodes" in results:
            rd = results[f"ray-data/{n} nodes"]
            print(f"{n} node(s), {last}: plane/ray-data rows/s per trainer "
                  f"{pl[last]['rows_per_s_per_trainer'] / rd[last]['rows_per_s_per_trainer']:.2f}x")
    server.stop()


if __name__ == "__main__":
    main()
