# ruff: noqa: RUF001, RUF002, RUF003  (×, –, µ in printed tables are intended)
"""Scaling model of the cluster data plane (issue #16): ImageNet-1k on 8 nodes × 8 A100s.

From per-chunk, per-request, per-image and per-byte costs of the real code paths
(`actors.ChunkShard.gather`, a Ray actor round trip, an object-store pull, the trainer's
JPEG decode through `plane.core.finish_samples`), project what one epoch costs and the
images/s per GPU each resource can sustain; the smallest is where the design breaks first.

The design being modelled (actors/cluster_loader.py): shard actors (by default one per two
GPUs of each node) own the chunks by rendezvous hashing; every rank asks every shard for its
rows once per group of `request_batches` batches (`prefetch` groups in flight); a shard's
answer is an actor-call return value (object store on the shard's node, pulled by the
trainer's node); JPEGs travel as stored and are decoded on the trainer, in the loader's
background thread. A chunk is read from S3 once in epoch 0 and never
again while the cache (memory + disk tier) holds each shard's share.

    .venv/bin/python bench/cluster_model.py                 # costs measured on 2026-12-04
    .venv/bin/python bench/cluster_model.py --measure       # measure the costs here first
    .venv/bin/python bench/cluster_model.py --nodes 16 --nic-gbps 100 --decode-ms 6
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import command_line, fmt, md_table, synthetic_images

#: Costs measured by `--measure` on the 2-core development machine (2026-12-04, quiet: the
#: median of three runs, answers of 32 images, after the gather joined chunk views); used
#: unless measured again or overridden.
MEASURED = {"gather_us": 20.9, "call_ms": 1.31, "answer_ms_per_mb": 1.28, "put_ms_per_mb": 0.62,
            "decode_ms": 1.08, "jpeg_kb": 140.0, "per_answer": 32.0}


def _per_call(fn: Callable[[], Any], repeat: int) -> float:
    fn()  # warm
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def measure(per_answer: int, images: int = 256) -> dict[str, float]:
    """Costs of the real code paths on a small ImageNet-like JPEG dataset (500×375 photos
    at quality 90), with answers of `per_answer` images (what one shard sends one rank per
    request in the modelled cluster): shard gather per image, JPEG decode per image, actor
    round trip per request, an answer's bytes (serialise, object store, pull) per MB and,
    of that, the shard's put into its object store."""
    import plane
    from actors.chunk_cache import ChunkShard, unpack_samples
    from plane.core import finish_samples

    out: dict[str, float] = {"per_answer": float(per_answer)}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"{tmp}/ds"
        ds = plane.create(url)
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
        ds.create_tensor("labels", htype="class_label", class_names=["a", "b"])
        imgs = synthetic_images(images, 375, 500, low=24, noise=10.0)
        ds.extend({"images": list(imgs), "labels": [i % 2 for i in range(images)]})
        ds.commit("model data")
        snap = ds.snapshot()
        shard = ChunkShard(url, None, 0, 1 << 30)
        pos = np.random.default_rng(0).permutation(images).astype(np.int64)
        # answers of per_answer shuffled images, cycling through the dataset
        reqs = [{"images": p, "labels": p} for p in
                (np.resize(pos, per_answer * 8)[i * per_answer:(i + 1) * per_answer]
                 for i in range(8))]
        got = shard.gather(snap.state_key, {"images": pos, "labels": pos}, ["images"])
        buf, offsets, shapes = got["images"]
        raws = unpack_samples(buf, offsets)
        out["jpeg_kb"] = float(np.mean([len(r) for r in raws]) / 1e3)
        turn = iter(range(1 << 30))

        def gather() -> Any:
            return shard.gather(snap.state_key, reqs[next(turn) % 8], ["images"])

        out["gather_us"] = _per_call(gather, 80) / per_answer * 1e6
        meta = snap.meta("images")
        n = 64
        out["decode_ms"] = _per_call(
            lambda: finish_samples(meta, raws[:n], [tuple(s) for s in shapes[:n]]), 3) \
            / n * 1e3

        import ray

        started = not ray.is_initialized()
        if started:
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        try:
            actor = ray.remote(ChunkShard).options(num_cpus=0, max_concurrency=8).remote(
                url, None, 0, 1 << 30)
            one = {"labels": pos[:1]}
            ray.get(actor.gather.remote(snap.state_key, one))
            out["call_ms"] = _per_call(
                lambda: ray.get(actor.gather.remote(snap.state_key, one)), 200) * 1e3
            answers = [ray.get(actor.gather.remote(snap.state_key, r, ["images"]))
                       for r in reqs]
            nbytes = float(np.mean([a["images"][0].nbytes for a in answers]))
            secs = _per_call(lambda: ray.get(actor.gather.remote(
                snap.state_key, reqs[next(turn) % 8], ["images"])), 80)
            # what a round trip with an answer costs beyond the gather and a small call:
            # serialising the answer, the object store, deserialising it
            extra = secs - out["call_ms"] / 1e3 - out["gather_us"] * per_answer / 1e6
            out["answer_ms_per_mb"] = max(extra, 0.0) * 1e3 / (nbytes / 1e6)
            # of that, the shard's part: serialising its answer into its node's object store
            # (what an actor's return value costs the actor; ray.put runs the same path)
            bufs = [a["images"][0] for a in answers]
            out["put_ms_per_mb"] = _per_call(lambda: ray.put(bufs[next(turn) % 8]), 80) \
                * 1e3 / (nbytes / 1e6)
            ray.kill(actor)
        finally:
            if started:
                ray.shutdown()
    return out


def model(a: argparse.Namespace) -> dict[str, Any]:
    """Per-epoch volumes and the images/s per GPU each resource can sustain."""
    n, g = a.nodes, a.gpus_per_node
    gpus = n * g
    img_b = a.dataset_gb * 1e9 / a.images  # mean JPEG bytes
    per_chunk = max(1.0, a.chunk_mib * 2**20 / img_b)
    chunks = int(np.ceil(a.images / per_chunk))
    share = a.dataset_gb * 1e9 / n  # bytes each node's shards own
    remote = (n - 1) / n  # share of a rank's rows that live on another node
    fits = a.cache_gb * 1e9 >= share * 1.05
    nic = a.nic_gbps * 1e9 / 8
    s3_epoch0 = 1.0  # each node reads its share from S3 once while serving it
    rows_per_req = a.batch * a.request_batches
    limits = {
        # S3: 5,500 GET/s per prefix; chunk GETs happen in epoch 0 (every epoch if the
        # cache cannot hold the shares)
        "S3 GET rate (epoch 0)": a.s3_gets_per_prefix * a.s3_prefixes * per_chunk / gpus,
        # NIC: a node receives the rows of its ranks that other shards own, sends the rows
        # its shard owns to other nodes' ranks, and in epoch 0 also reads its share from S3
        "NIC, epoch 0": nic / (g * img_b * (remote + s3_epoch0)),
        "NIC, later epochs": nic / (g * img_b * (remote + (0.0 if fits else 1.0))),
        # shard actors: each one's Python work is GIL-bound (one core): per second, the
        # calls from every rank, the gather of every image it serves, and serialising its
        # answers into the object store (charged to the one core: conservative, Ray copies
        # large buffers without the GIL)
        f"shard actors ({a.shards_per_node}/node, GIL core each)": a.shards_per_node / (
            gpus * a.shards_per_node * a.call_ms / 1e3 / rows_per_req
            + g * (a.gather_us / 1e6 + img_b / 1e6 * a.put_ms_per_mb / 1e3)),
        # actor calls: each rank sends each shard one call per request group
        "actor call rate": a.calls_per_shard / (gpus / rows_per_req),
        # the trainer's side of an answer (pull into its node's store, deserialise), in
        # its background thread: the answer's cost less the shard's put
        "trainer: answer pull + deserialise": 1.0 / (
            img_b / 1e6 * max(a.answer_ms_per_mb - a.put_ms_per_mb, 1e-3) / 1e3),
        # JPEG decode + augmentation on the trainer's node: the cores left after the
        # shard, raylet/object store and one main process per GPU
        "JPEG decode cores": max(0.0, (a.cores_per_node - a.reserved_cores - g) / g)
        / ((a.decode_ms + a.augment_ms) / 1e3),
    }
    target = a.target
    total = target * gpus
    epoch_s = a.images / total
    flight = a.prefetch * rows_per_req * img_b * g * 2  # trainer side + shard side
    return {
        "img_bytes": img_b, "per_chunk": per_chunk, "chunks": chunks, "share": share,
        "fits": fits, "limits": limits, "epoch_s": epoch_s, "total": total,
        "gets_s_epoch0": chunks / epoch_s,
        "gets_s_later": 0.0 if fits else chunks / epoch_s,
        "s3_in_node_epoch0": share, "s3_in_node_later": 0.0 if fits else share,
        "net_in_node": a.dataset_gb * 1e9 / n * remote,
        "net_out_node": share * remote,
        "cache_node": share, "flight_node": flight,
        "calls_s_shard": gpus * (target / rows_per_req),
        "calls_s_total": gpus * (target / rows_per_req) * n * a.shards_per_node,
        "first_batch_s": a.call_ms / 1e3 + rows_per_req / n * a.gather_us / 1e6
        + rows_per_req * img_b / 1e6 * a.answer_ms_per_mb / 1e3 + a.batch * a.decode_ms / 1e3
        / max(1.0, (a.cores_per_node - a.reserved_cores - g) / g),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    w = p.add_argument_group("workload (ImageNet-1k on p4d.24xlarge-like nodes)")
    w.add_argument("--images", type=int, default=1_281_167)
    w.add_argument("--dataset-gb", type=float, default=140.0)
    w.add_argument("--nodes", type=int, default=8)
    w.add_argument("--gpus-per-node", type=int, default=8)
    w.add_argument("--cores-per-node", type=int, default=96, help="vCPUs per node")
    w.add_argument("--reserved-cores", type=int, default=4,
                   help="shard actor, raylet, object store, OS")
    w.add_argument("--nic-gbps", type=float, default=400.0, help="per node (p4d: 4×100)")
    w.add_argument("--cache-gb", type=float, default=64.0,
                   help="cache per node: shard memory + disk tier")
    w.add_argument("--shards-per-node", type=int, default=None,
                   help="shard actors per node (default as start_chunk_cache: one per two "
                        "GPUs, at least one)")
    w.add_argument("--batch", type=int, default=256, help="per GPU")
    w.add_argument("--chunk-mib", type=float, default=4.0, help="plane's default chunk")
    w.add_argument("--request-batches", type=int, default=4,
                   help="batches per shard request (ClusterLoader.request_batches)")
    w.add_argument("--prefetch", type=int, default=2, help="requests in flight per rank")
    w.add_argument("--target", type=float, default=2500.0,
                   help="images/s per GPU the trainer wants (ResNet-50, A100, AMP)")
    w.add_argument("--s3-gets-per-prefix", type=float, default=5500.0,
                   help="S3's documented GET/HEAD rate per partitioned prefix")
    w.add_argument("--s3-prefixes", type=int, default=1,
                   help="chunks live under one 'chunks/' prefix")
    w.add_argument("--calls-per-shard", type=float, default=None,
                   help="actor calls/s one shard takes (default: 1 / call cost)")
    c = p.add_argument_group("measured costs (defaults: --measure on the dev machine)")
    c.add_argument("--measure", action="store_true", help="measure the costs below here")
    for k, h in (("gather-us", "shard gather per image (µs)"),
                 ("call-ms", "actor round trip per request (ms)"),
                 ("answer-ms-per-mb", "an answer's serialise + object store + pull (ms/MB)"),
                 ("put-ms-per-mb", "of that, the shard's serialise into the store (ms/MB)"),
                 ("decode-ms", "JPEG decode per ImageNet image, one core (ms)")):
        c.add_argument(f"--{k}", type=float, default=None, help=h)
    c.add_argument("--augment-ms", type=float, default=1.0,
                   help="random-resized-crop + flip per image, one core (ms)")
    a = p.parse_args()
    if a.shards_per_node is None:  # as start_chunk_cache places them
        a.shards_per_node = max(1, a.gpus_per_node // 2)
    costs = dict(MEASURED)
    source = "measured on 2026-12-04, 2-core dev machine (quiet), answers of 32 images"
    if a.measure:
        t = time.perf_counter()
        per_answer = max(1, round(a.batch * a.request_batches
                                  / (a.nodes * a.shards_per_node)))
        costs.update(measure(per_answer))
        source = f"measured now ({time.perf_counter() - t:.0f} s)"
    for k in ("gather_us", "call_ms", "answer_ms_per_mb", "put_ms_per_mb", "decode_ms"):
        if getattr(a, k) is None:
            setattr(a, k, costs[k])
    if a.calls_per_shard is None:  # a shard runs up to 8 calls at once, the GIL serialises
        a.calls_per_shard = 1e3 / a.call_ms
    m = model(a)
    print(command_line())
    print("\nAssumptions")
    print(f"- {a.images:,} JPEGs, {a.dataset_gb:g} GB (mean {m['img_bytes'] / 1e3:.0f} kB), "
          f"{a.chunk_mib:g} MiB chunks = {m['per_chunk']:.0f} images/chunk, "
          f"{m['chunks']:,} chunks; labels add a few chunks (ignored)")
    print(f"- {a.nodes} nodes × {a.gpus_per_node} GPUs, {a.cores_per_node} vCPUs "
          f"({a.reserved_cores} reserved + 1 main process per GPU), {a.nic_gbps:g} Gb/s NIC, "
          f"{a.shards_per_node} shard(s) per node, {a.cache_gb:g} GB of cache per node")
    print(f"- batch {a.batch} per GPU, {a.request_batches} batches per shard request, "
          f"{a.prefetch} requests in flight per rank; trainer target {a.target:g} img/s/GPU")
    print(f"- S3: {a.s3_gets_per_prefix:g} GET/s per prefix × {a.s3_prefixes} prefix(es) "
          "(AWS S3 performance guidelines: 5,500 GET/HEAD per second per partitioned prefix)")
    print(f"- costs ({source}): gather {a.gather_us:.1f} µs/image, actor round trip "
          f"{a.call_ms:.2f} ms ({a.calls_per_shard:,.0f} calls/s per shard), an answer's "
          f"bytes {a.answer_ms_per_mb:.2f} ms/MB (the shard's put {a.put_ms_per_mb:.2f}), "
          f"JPEG decode {a.decode_ms:.2f} ms/image"
          f" (+{a.augment_ms:g} ms augmentation)")
    if a.measure:
        print(f"  (measured JPEG mean size {costs['jpeg_kb']:.0f} kB, answers of "
              f"{costs['per_answer']:.0f} images: a rank's request over the cluster's shards)")
    print("- a chunk is fetched once (epoch 0) by its owner; rows cross the network once, to "
          "the rank that trains on them; (N-1)/N of a rank's rows live on other nodes")

    gb = 1e9
    print(f"\nPer epoch at the target ({a.target:g} img/s/GPU, {m['total']:,.0f} img/s, "
          f"epoch {m['epoch_s']:.1f} s)\n")
    rows = [
        ["S3 GETs/s, epoch 0", fmt(m["gets_s_epoch0"]),
         f"{m['gets_s_epoch0'] / (a.s3_gets_per_prefix * a.s3_prefixes):.0%} of the S3 limit"],
        ["S3 GETs/s, later epochs", fmt(m["gets_s_later"]),
         "cache holds each share" if m["fits"] else "cache too small: ≤ 1 GET/chunk/epoch"],
        ["S3 bytes in per node, epoch 0", f"{m['s3_in_node_epoch0'] / gb:.1f} GB", ""],
        ["S3 bytes in per node, later", f"{m['s3_in_node_later'] / gb:.1f} GB", ""],
        ["bytes in from other nodes, per node", f"{m['net_in_node'] / gb:.1f} GB",
         f"{m['net_in_node'] / m['epoch_s'] * 8 / gb:.1f} Gb/s"],
        ["bytes out to other nodes, per node", f"{m['net_out_node'] / gb:.1f} GB",
         f"{m['net_out_node'] / m['epoch_s'] * 8 / gb:.1f} Gb/s"],
        ["cache memory per node (its share)", f"{m['cache_node'] / gb:.1f} GB",
         f"of {a.cache_gb:g} GB"],
        ["object store in flight per node", f"{m['flight_node'] / gb:.2f} GB",
         "answers: shard side + trainer side"],
        ["actor calls/s per shard", fmt(m["calls_s_shard"]),
         f"{m['calls_s_shard'] / a.calls_per_shard:.0%} of one shard's rate"],
        ["actor calls/s, cluster", fmt(m["calls_s_total"]), ""],
        ["time to first batch (started cache)", f"{m['first_batch_s'] * 1e3:.0f} ms", ""],
    ]
    print(md_table(["quantity", "value", "note"], rows))
    print("\nImages/s per GPU each resource can sustain (lowest first)\n")
    lim = sorted(m["limits"].items(), key=lambda kv: kv[1])
    print(md_table(["resource", "img/s per GPU", "vs target"],
                   [[k, fmt(v), f"{v / a.target:.2f}×"] for k, v in lim]))
    first, v = lim[0]
    later = [kv for kv in lim if kv[0] not in ("S3 GET rate (epoch 0)", "NIC, epoch 0")]
    print(f"\nBreaks first: {first} at {fmt(v)} img/s per GPU "
          f"({v / a.target:.2f}× the target). Steady state (after epoch 0): "
          f"{later[0][0]} at {fmt(later[0][1])} img/s per GPU.")


if __name__ == "__main__":
    main()
