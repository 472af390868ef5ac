"""Ray Train job: TorchTrainer workers stream shuffled batches of a tensorplane dataset.

    ray job submit --working-dir . -- python -m jobs.train \\
        --dataset s3://bucket/datasets/images --tensors images labels --workers 8 --gpu

`--loader plane` (the default) starts the dataset's chunk cache (`actors.start_chunk_cache`:
shard actors, one per node) and each worker streams its rank's share of a globally shuffled
epoch with `actors.cluster_loader` (the embedded loader's plan; rows gathered on the shard
that holds their chunk). `--loader ray-data` reads through `ds.to_ray()` (a Ray Data
Datasource, one block per chunk): each worker takes its shard with
`ray.train.get_dataset_shard("train")` and iterates `iter_torch_batches` with a local shuffle
buffer. Rank 0 prints a line per epoch: time to first batch, rows/s, p99 wait for the next
batch, store GETs, bytes moved to the trainer, distinct chunks per batch. The model is a
small classifier over whatever image/feature tensor is named first, and the label tensor
named second; replace `build_model` for real work. Every worker reports loss and the
number of samples it saw.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["build_model", "train_loop", "run", "main"]


def build_model(in_features: int, classes: int) -> Any:
    import torch

    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_features, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, classes))


def train_loop(config: dict[str, Any]) -> None:
    """Runs in every Ray Train worker."""
    import ray.train
    import ray.train.torch
    import torch

    x_name, y_name = config["tensors"]
    model = ray.train.torch.prepare_model(build_model(config["in_features"], config["classes"]))
    opt = torch.optim.SGD(model.parameters(), lr=config["lr"])
    plane_loader = config.get("loader", "plane") == "plane"
    if plane_loader:
        import actors

        loader = actors.cluster_loader(config["dataset"], version=config["version"],
                                       tensors=[x_name, y_name],
                                       batch_size=config["batch_size"], seed=config["seed"],
                                       cache=config["cache"])
    else:
        shard = ray.train.get_dataset_shard("train")
    per_epoch: list[int] = []
    for epoch in range(config["epochs"]):
        seen, loss_sum, batches = 0, 0.0, 0
        if plane_loader:
            loader.set_epoch(epoch)
            batches_of: Any = loader
        else:
            batches_of = shard.iter_torch_batches(
                batch_size=config["batch_size"],
                local_shuffle_buffer_size=config["shuffle_buffer"] or None,
                local_shuffle_seed=config["seed"] + epoch if config["shuffle_buffer"] else None)
        started = time.perf_counter()
        waits: list[float] = []
        t0 = started
        for batch in batches_of:
            waits.append(time.perf_counter() - t0)
            x = batch[x_name].float() / 255.0
            y = batch[y_name].long().reshape(-1)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += int(y.shape[0])
            loss_sum += float(loss.detach())
            batches += 1
            t0 = time.perf_counter()
        took = time.perf_counter() - started
        stats = {"time_to_first_batch": waits[0] if waits else 0.0,
                 "rows_per_s": seen / took if took > 0 else 0.0,
                 "p99_wait": float(np.percentile(waits, 99)) if waits else 0.0,
                 "wait_share": sum(waits) / took if took > 0 else 0.0}
        if plane_loader:
            stats.update({k: loader.last_epoch.get(k) for k in
                          ("store_gets", "bytes_moved", "chunks_per_batch")})
        if ray.train.get_context().get_world_rank() == 0:
            print(f"epoch {epoch}: " + ", ".join(
                f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                for k, v in stats.items()), flush=True)
        total = torch.tensor([seen], dtype=torch.int64)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(total)  # samples seen by all workers this epoch
        per_epoch.append(int(total.item()))
        metrics = {"epoch": epoch, "samples": seen, "samples_all": per_epoch[-1],
                   "samples_all_per_epoch": list(per_epoch), "batches": batches,
                   "loss": loss_sum / max(1, batches), "loader": stats}
        # Ray Train keeps the metrics of reported checkpoints: rank 0 saves the model
        with tempfile.TemporaryDirectory() as tmp:
            ckpt = None
            if ray.train.get_context().get_world_rank() == 0:
                state = getattr(model, "module", model).state_dict()
                torch.save(state, os.path.join(tmp, "model.pt"))
                ckpt = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=ckpt)


def run(dataset: str, tensors: Sequence[str] = ("images", "labels"), workers: int = 2,
        epochs: int = 1, batch_size: int = 64, lr: float = 0.05, shuffle_buffer: int = 1024,
        seed: int = 0, use_gpu: bool = False, cpus_per_worker: float = 1.0,
        storage_path: str | None = None, version: str | None = None, loader: str = "plane",
        cache_memory: int = 8 << 30, cache_disk: str | None = None,
        shards_per_node: int | None = None) -> Any:
    """Train on `dataset` (url) with `workers` Ray Train workers; returns the Train Result.
    `loader`: "plane" (the cluster loader over the chunk cache) or "ray-data"."""
    import ray.train
    from ray.train.torch import TorchTrainer

    import plane

    ds = plane.open(dataset, version=version, read_only=True)
    if len(ds) == 0:
        raise SystemExit(f"jobs.train: {dataset} has no rows")
    x_name, y_name = tensors
    first = np.asarray(ds[x_name][0].numpy())
    classes = len(ds[y_name].class_names) or int(np.max(ds[y_name].numpy())) + 1
    if loader not in ("plane", "ray-data"):
        raise SystemExit(f"jobs.train: --loader {loader!r}: use plane or ray-data")
    config = {"tensors": [x_name, y_name], "in_features": int(first.size),
              "classes": classes, "epochs": epochs, "batch_size": batch_size, "lr": lr,
              "shuffle_buffer": shuffle_buffer, "seed": seed, "loader": loader,
              "dataset": dataset, "version": ds.commit_id or version}
    if loader == "plane":
        import actors

        # the handles travel in the config: they keep the shard actors alive during fit()
        config["cache"] = actors.start_chunk_cache(dataset, memory_bytes=cache_memory,
                                                   disk_dir=cache_disk,
                                                   shards_per_node=shards_per_node)
    trainer = TorchTrainer(
        train_loop, train_loop_config=config,
        scaling_config=ray.train.ScalingConfig(
            num_workers=workers, use_gpu=use_gpu,
            resources_per_worker=None if use_gpu else {"CPU": cpus_per_worker}),
        datasets={"train": ds.to_ray(tensors=[x_name, y_name])} if loader == "ray-data" else None,
        run_config=ray.train.RunConfig(name="tensorplane-train", storage_path=storage_path))
    return trainer.fit()


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m jobs.train", description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True, help="dataset url (local path or s3://...)")
    p.add_argument("--version", default=None, help="branch, tag or commit (default: main)")
    p.add_argument("--tensors", nargs=2, default=["images", "labels"], metavar=("X", "Y"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--shuffle-buffer", type=int, default=1024)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--cpus-per-worker", type=float, default=1.0)
    p.add_argument("--storage-path", default=None, help="Ray Train results (shared in clusters)")
    p.add_argument("--loader", choices=["plane", "ray-data"], default="plane",
                   help="plane: the cluster loader over chunk-shard actors (default); "
                        "ray-data: ds.to_ray() + iter_torch_batches with a shuffle buffer")
    p.add_argument("--cache-memory", type=int, default=8 << 30,
                   help="bytes of chunk cache per shard actor (--loader plane)")
    p.add_argument("--cache-disk", default=None,
                   help="local disk tier of the chunk cache, e.g. /nvme/plane (--loader plane)")
    p.add_argument("--shards-per-node", type=int, default=None,
                   help="chunk-shard actors per node (--loader plane; default one per two "
                        "GPUs of the node, at least one: bench/cluster_model.py)")
    a = p.parse_args(argv)
    import ray

    ray.init()  # under `ray job submit` this joins the cluster (RAY_ADDRESS is set)
    result = run(a.dataset, a.tensors, a.workers, a.epochs, a.batch_size, a.lr,
                 a.shuffle_buffer, a.seed, a.gpu, a.cpus_per_worker, a.storage_path,
                 a.version, a.loader, a.cache_memory, a.cache_disk, a.shards_per_node)
    if result.error is not None:
        raise SystemExit(f"jobs.train: training failed: {result.error}")
    print(json.dumps({"metrics": result.metrics,
                      "checkpoint": result.checkpoint.path if result.checkpoint else None}))


if __name__ == "__main__":
    main()
