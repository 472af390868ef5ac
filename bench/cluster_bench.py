# ruff: noqa: RUF001, RUF003  (×, –, µ in printed tables are intended)
"""Cluster data plane, side by side in one run: the cluster loader (chunk-shard actors) vs
(a) `ds.to_ray()` + `iter_torch_batches` with a local shuffle buffer, (b) Ray Data
`read_parquet` of the same rows + `iter_torch_batches` with a local shuffle buffer and (c)
the embedded `ds.pytorch` reading S3 directly, on S3 (a moto server on loopback) and a
simulated Ray cluster (`ray.cluster_utils.Cluster`: each node its own raylet and object
store), for raw uint8 images and their JPEG variant (decoded on the trainer; (a) decodes in
Ray Data's read tasks).

Every trainer (one Ray actor per node, pinned to it) consumes its rank's batches with a
simulated step (`--step-ms`); epochs run as rounds, all trainers at once. Reported per loader,
data variant, node count and epoch: time to first batch, rows/s per trainer, p99 wait for the
next batch and the share of time waiting (and after the first batch), store GETs per chunk
(cluster loader: GETs that reached S3 from the shards; embedded: the trainers' own S3
GETs), bytes moved to trainers / dataset bytes (cluster loader: rows handed over by the
shards; embedded: bytes read from S3),
peak object-store bytes on any node (and what was there when the run began) and bytes
spilled (sampled from every raylet's `GetNodeStats` every 0.2 s), distinct chunks per batch
(the chunk of the plane dataset that holds each row, for every loader, through an `idx`
column). (a) and (b) feed the same trainers through `streaming_split(n, equal=True)`, as
Ray Train does (the issue's baseline ran one consumer on the head node).

    .venv/bin/python bench/cluster_bench.py --rows 20000 --nodes 1 2 3
    .venv/bin/python bench/cluster_bench.py --quick      # 4,000 rows, 1 and 2 nodes
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import threading
import time
import uuid
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import command_line, encode_jpegs, fmt, md_table, synthetic_images

SHUFFLE_BUFFER = 2048


def _images(rows: int, seed: int) -> np.ndarray:
    return synthetic_images(rows, 64, 64, seed=seed)


def _make(url: str, opts: dict[str, Any], rows: int, jpeg: bool) -> int:
    """The plane dataset: images (raw uint8, or JPEG), labels, idx (the row number)."""
    import plane

    ds = plane.create(url, storage_options=opts)
    if jpeg:
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
    else:
        ds.create_tensor("images", dtype="uint8", shape=(64, 64, 3))
    ds.create_tensor("labels", htype="class_label", class_names=[str(i) for i in range(10)])
    ds.create_tensor("idx", dtype="int64")
    rng = np.random.default_rng(0)
    for s in range(0, rows, 2000):
        n = min(2000, rows - s)
        img = _images(n, s)
        ds.extend({"images": list(img) if jpeg else img,
                   "labels": rng.integers(0, 10, n).tolist(),
                   "idx": np.arange(s, s + n, dtype=np.int64)})
    ds.commit("bench data")
    snap = ds.snapshot()
    return int(snap.index("images").nbytes)


def _make_parquet(fs: Any, root: str, rows: int, jpeg: bool) -> None:
    """The same rows as Parquet files (one per 2,000 rows): idx, images (bytes), labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    for s in range(0, rows, 2000):
        n = min(2000, rows - s)
        img = _images(n, s)
        data = encode_jpegs(img) if jpeg else [im.tobytes() for im in img]
        t = pa.table({"idx": pa.array(np.arange(s, s + n, dtype=np.int64)),
                      "images": pa.array(data, pa.binary()),
                      "labels": pa.array(rng.integers(0, 10, n).astype(np.int64))})
        buf = io.BytesIO()
        pq.write_table(t, buf, row_group_size=500)
        with fs.open_output_stream(f"{root}/part-{s // 2000:05d}.parquet") as f:
            f.write(buf.getvalue())


def _decode_parquet(jpeg: bool) -> Any:
    """collate_fn for (b): the trainer turns stored bytes into an image batch."""
    def collate(batch: dict[str, np.ndarray]) -> dict[str, Any]:
        import simplejpeg
        import torch

        if jpeg:
            img = np.stack([simplejpeg.decode_jpeg(b, colorspace="RGB") for b in batch["images"]])
        else:
            img = np.stack([np.frombuffer(b, np.uint8).reshape(64, 64, 3)
                            for b in batch["images"]])
        return {"images": torch.from_numpy(img), "labels": torch.from_numpy(batch["labels"]),
                "idx": torch.from_numpy(batch["idx"])}
    return collate


def _consume(batches: Any, step: float, chunk_of: np.ndarray) -> dict[str, Any]:
    t0 = time.perf_counter()
    waits, rows, first, per_batch = [], 0, None, []
    t = t0
    for b in batches:
        now = time.perf_counter()
        waits.append(now - t)
        first = first if first is not None else now - t0
        idx = np.asarray(b["idx"])
        rows += len(idx)
        per_batch.append(int(np.unique(chunk_of[idx]).shape[0]))
        time.sleep(step)
        t = time.perf_counter()
    took = time.perf_counter() - t0
    return {"first": first or 0.0, "rows": rows, "rows_per_s": rows / took,
            "p99_wait": float(np.percentile(waits, 99)), "wait_share": sum(waits) / took,
            # the same after the first batch: the steady state, without the epoch's start
            # (which dominates a short epoch: 26 batches per trainer at 3 nodes, 20k rows)
            "steady_wait_share": sum(waits[1:]) / max(took - (first or 0.0), 1e-9),
            "chunks_per_batch": float(np.mean(per_batch))}


class Trainer:
    """One rank on one node: keeps its loader across epochs (run as a Ray actor)."""

    def __init__(self, kind: str, url: str, opts: dict[str, Any], rank: int, world: int,
                 batch: int, step: float, chunk_of: np.ndarray, cache: Any = None,
                 split: Any = None, jpeg: bool = False, tuning: dict[str, int] | None = None
                 ) -> None:
        import plane

        self.kind, self.step, self.chunk_of = kind, step, chunk_of
        self.batch, self.jpeg = batch, jpeg
        tensors = ["images", "labels", "idx"]
        if kind in ("ray-data", "parquet"):  # this rank's share of a streaming_split
            self.split, self.counted = split, None
        elif kind == "plane":
            import actors

            self.loader = actors.cluster_loader(url, storage_options=opts, batch_size=batch,
                                                rank=rank, world_size=world, cache=cache,
                                                tensors=tensors, **(tuning or {}))
            self.counted = None
        else:  # embedded, straight from S3, counting its GETs
            from actors.chunk_cache import _CountingStore
            from plane.storage import open_store

            self.counted = _CountingStore(open_store(url, opts))
            self.loader = plane.open(self.counted, read_only=True).pytorch(
                batch_size=batch, rank=rank, world_size=world, tensors=tensors)

    def epoch(self, e: int) -> dict[str, Any]:
        from plane.core import is_chunk_key

        if self.kind in ("ray-data", "parquet"):
            kw: dict[str, Any] = {"batch_size": self.batch,
                                  "local_shuffle_buffer_size": SHUFFLE_BUFFER,
                                  "local_shuffle_seed": e}
            if self.kind == "parquet":
                kw["collate_fn"] = _decode_parquet(self.jpeg)
            return _consume(self.split.iter_torch_batches(**kw), self.step, self.chunk_of)
        before = dict(self.counted.gets) if self.counted else {}
        bytes_before = self.counted.bytes if self.counted else 0
        self.loader.set_epoch(e)
        got = _consume(self.loader, self.step, self.chunk_of)
        if self.kind == "plane":
            got["bytes_moved"] = self.loader.last_epoch["bytes_moved"]
            got["bytes_cross_node"] = self.loader.last_epoch["bytes_cross_node"]
        else:
            assert self.counted is not None
            got["gets"] = {k: v - before.get(k, 0) for k, v in self.counted.gets.items()
                           if is_chunk_key(k) and v > before.get(k, 0)}
            got["bytes_moved"] = self.counted.bytes - bytes_before
        return got


class StoreSampler:
    """Peak object-store bytes on any node and bytes spilled, from every raylet's stats."""

    def __init__(self, period: float = 0.2) -> None:
        import ray

        self.nodes = [(n["NodeManagerAddress"], n["NodeManagerPort"])
                      for n in ray.nodes() if n["Alive"]]
        self.period = period
        self.peak = 0
        self._stop = threading.Event()
        self._spilled0 = self._spilled()
        #: bytes in the fullest store when sampling began (what earlier runs left there)
        self.start = max(int(x.object_store_bytes_used) for x in self._stats())
        self.peak = self.start
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _stats(self) -> list[Any]:
        from ray._private.internal_api import node_stats

        return [node_stats(a, p, include_memory_info=False).store_stats for a, p in self.nodes]

    def _spilled(self) -> int:
        return sum(int(s.spilled_bytes_total) for s in self._stats())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max([self.peak] + [int(s.object_store_bytes_used)
                                               for s in self._stats()])
            except Exception:  # a raylet busy or going away: the next sample counts
                pass
            self._stop.wait(self.period)

    def stop(self) -> dict[str, int]:
        self._stop.set()
        self._thread.join()
        return {"peak_object_store": self.peak, "object_store_at_start": self.start,
                "spilled": self._spilled() - self._spilled0}


def _chunk_of(url: str, opts: dict[str, Any]) -> np.ndarray:
    """The plane chunk (index entry of `images`) that holds each row."""
    import plane

    snap = plane.open(url, read_only=True, storage_options=opts).snapshot()
    return snap.index("images").locate(
        snap.to_physical(np.arange(len(snap), dtype=np.int64)))[0].astype(np.int64)


def _summary(eps: list[dict[str, Any]], nbytes: int, nchunks: int,
             gets: dict[str, int] | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "first_batch_s": max(x["first"] for x in eps),
        "rows_per_s_per_trainer": float(np.mean([x["rows_per_s"] for x in eps])),
        "p99_wait_s": max(x["p99_wait"] for x in eps),
        "wait_share": float(np.mean([x["wait_share"] for x in eps])),
        "steady_wait_share": float(np.mean([x["steady_wait_share"] for x in eps])),
        "chunks_per_batch": float(np.mean([x["chunks_per_batch"] for x in eps]))}
    if all("bytes_moved" in x for x in eps):
        row["moved_over_dataset"] = sum(x["bytes_moved"] for x in eps) / nbytes
    if all("bytes_cross_node" in x for x in eps):
        row["cross_node_over_dataset"] = sum(x["bytes_cross_node"] for x in eps) / nbytes
    if gets is not None:
        row["gets_per_chunk"] = sum(gets.values()) / nchunks
        row["max_gets_one_chunk"] = max(gets.values(), default=0)
    return row


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--step-ms", type=float, default=50.0)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--variants", nargs="+", default=["raw", "jpeg"], choices=["raw", "jpeg"])
    p.add_argument("--loaders", nargs="+", default=["plane", "embedded", "ray-data", "parquet"],
                   choices=["plane", "embedded", "ray-data", "parquet"])
    p.add_argument("--quick", action="store_true", help="4,000 rows on 1 and 2 nodes")
    p.add_argument("--prefetch", type=int, default=2,
                   help="cluster loader: requests (of 4 batches) in flight")
    p.add_argument("--ready", type=int, default=4,
                   help="cluster loader: batches built ahead in its background thread")
    p.add_argument("--json", help="write the results here")
    a = p.parse_args()
    if a.quick:
        a.rows, a.nodes = 4000, [1, 2]
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the moto server's request log
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(k, v)
    import boto3
    import pyarrow.fs as pafs
    import ray
    from moto.server import ThreadedMotoServer
    from ray.cluster_utils import Cluster
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    import actors
    import plane

    print(command_line(), flush=True)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    opts = {"endpoint_url": endpoint, "key": "testing", "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"}}
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
        Bucket=bucket)
    s3 = pafs.S3FileSystem(access_key="testing", secret_key="testing", scheme="http",
                           endpoint_override=f"{host}:{port}", region="us-east-1")
    data: dict[str, dict[str, Any]] = {}
    for v in a.variants:
        t = time.perf_counter()
        url = f"s3://{bucket}/{v}"
        nbytes = _make(url, opts, a.rows, v == "jpeg")
        chunk_of = _chunk_of(url, opts)
        if "parquet" in a.loaders:
            _make_parquet(s3, f"{bucket}/{v}-parquet", a.rows, v == "jpeg")
        data[v] = {"url": url, "nbytes": nbytes, "chunk_of": chunk_of,
                   "nchunks": int(chunk_of.max()) + 1 if chunk_of.shape[0] else 0}
        print(f"data {v}: {a.rows} rows, images {nbytes / 1e6:.1f} MB in "
              f"{data[v]['nchunks']} chunks, written in {time.perf_counter() - t:.1f} s",
              flush=True)
    step = a.step_ms / 1000
    tuning = {"prefetch": a.prefetch, "ready": a.ready}
    results: list[dict[str, Any]] = []

    def record(loader: str, v: str, n: int, rows: list[dict[str, Any]]) -> None:
        for e, r in enumerate(rows):
            results.append({"loader": loader, "data": v, "nodes": n, "epoch": e, **r})
            print(f"{loader:9s} {v:4s} {n} node(s) epoch {e}: {json.dumps(r)}", flush=True)

    for n in a.nodes:
        c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
        for _ in range(n - 1):
            c.add_node(num_cpus=1)
        ray.init(address=c.address, log_to_driver=False)
        nodes = [x["NodeID"] for x in ray.nodes() if x["Alive"]]
        cls = ray.remote(num_cpus=0)(Trainer)
        for v, d in data.items():
            for kind in a.loaders:
                cache = actors.start_chunk_cache(d["url"], storage_options=opts) \
                    if kind == "plane" else None
                splits: list[Any] = [None] * n
                if kind == "ray-data":  # (a), split over the trainers as Ray Train does
                    splits = plane.open(d["url"], read_only=True, storage_options=opts).to_ray(
                        tensors=["images", "labels", "idx"]).streaming_split(n, equal=True)
                elif kind == "parquet":  # (b)
                    splits = ray.data.read_parquet(f"{bucket}/{v}-parquet", filesystem=s3
                                                   ).streaming_split(n, equal=True)
                trainers = [cls.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
                    nodes[r], soft=False)).remote(kind, d["url"], opts, r, n, a.batch, step,
                                                   d["chunk_of"], cache, splits[r],
                                                   v == "jpeg", tuning) for r in range(n)]
                rows = []
                for e in range(a.epochs):
                    before = cache.gets_per_chunk() if cache is not None else {}
                    sampler = StoreSampler()
                    eps = ray.get([t.epoch.remote(e) for t in trainers])
                    store = sampler.stop()
                    if cache is not None:
                        after = cache.gets_per_chunk()
                        gets = {k: after[k] - before.get(k, 0) for k in after
                                if after[k] > before.get(k, 0)}
                    elif kind == "embedded":
                        gets = {}
                        for x in eps:
                            for k, g in x["gets"].items():
                                gets[k] = gets.get(k, 0) + g
                    if kind in ("ray-data", "parquet"):  # no plane GETs or bytes to count
                        row = _summary(eps, 1, 1, None)
                    else:
                        row = _summary(eps, d["nbytes"], _all_chunks(d["url"], opts), gets)
                    row.update(store)
                    rows.append(row)
                record(kind, v, n, rows)
                for t in trainers:
                    ray.kill(t)
                if cache is not None:
                    cache.stop()
        ray.shutdown()
        c.shutdown()
    server.stop()
    _table(results, a)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


_NCHUNKS: dict[str, int] = {}


def _all_chunks(url: str, opts: dict[str, Any]) -> int:
    """Chunks of every tensor of the dataset at `url` (the denominator of GETs per chunk)."""
    if url not in _NCHUNKS:
        import plane

        snap = plane.open(url, read_only=True, storage_options=opts).snapshot()
        _NCHUNKS[url] = sum(len(snap.index(n).entry_keys(e)) for n in snap.tensor_names
                            for e in range(snap.index(n).num_entries))
    return _NCHUNKS[url]


def _table(results: list[dict[str, Any]], a: argparse.Namespace) -> None:
    def mb(x: Any) -> str:
        return "–" if x is None else f"{x / 2**20:,.0f} MiB"

    rows = []
    for r in results:
        rows.append([r["loader"], r["data"], r["nodes"], r["epoch"],
                     f"{r['first_batch_s']:.2f} s", fmt(r["rows_per_s_per_trainer"]),
                     f"{r['p99_wait_s'] * 1e3:,.0f} ms",
                     f"{r['wait_share']:.0%} ({r['steady_wait_share']:.0%})",
                     fmt(r.get("gets_per_chunk")), fmt(r.get("moved_over_dataset")),
                     fmt(r.get("cross_node_over_dataset")),
                     f"{mb(r.get('peak_object_store'))} ({mb(r.get('object_store_at_start'))})",
                     mb(r.get("spilled")),
                     fmt(r["chunks_per_batch"])])
    print()
    print(md_table(["loader", "data", "nodes", "epoch", "first batch", "rows/s per trainer",
                    "p99 wait", "time waiting (after 1st batch)", "GETs per chunk",
                    "moved / dataset",
                    "cross-node / dataset",
                    "peak object store", "spilled", "chunks per batch"], rows))
    last = a.epochs - 1
    by = {(r["loader"], r["data"], r["nodes"], r["epoch"]): r for r in results}
    for v in a.variants:
        for n in a.nodes:
            pl = by.get(("plane", v, n, last))
            if pl is None:
                continue
            for other in ("embedded", "ray-data", "parquet"):
                o = by.get((other, v, n, last))
                if o is not None:
                    print(f"{v}, {n} node(s), epoch {last}: plane/{other} rows/s per trainer "
                          f"{pl['rows_per_s_per_trainer'] / o['rows_per_s_per_trainer']:.2f}×")


if __name__ == "__main__":
    main()
