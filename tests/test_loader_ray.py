"""`ds.to_ray()` (a Ray Data Datasource aligned to chunks) and the Ray Train job, on a real
local Ray instance (module-scoped `ray.init(num_cpus=2)`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane
from plane._errors import PlaneError, TensorNotFoundError

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

N, PER_CHUNK = 360, 40


def _fill(ds: plane.Dataset, n: int = N) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    cols: dict[str, Any] = {
        "images": rng.integers(0, 255, (n, 8, 8, 3), np.uint8),
        "labels": (np.arange(n) % 5).astype(np.int64),
        "tokens": [np.arange(i % 9 + 1, dtype=np.int32) * i for i in range(n)],
        "text": [f"caption {i}" for i in range(n)],
    }
    ds.create_tensor("images", htype="image", chunk_bytes=PER_CHUNK * 8 * 8 * 3)
    ds.create_tensor("labels", htype="class_label")
    ds.create_tensor("tokens", dtype="int32")
    ds.create_tensor("text", htype="text")
    ds.extend(cols)
    ds.commit("rows")
    return cols


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    old, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
    try:
        yield
    finally:
        ctx.execution_options.preserve_order = old
        ray.shutdown()


@pytest.fixture
def local_ds(tmp_path: Any) -> tuple[plane.Dataset, dict[str, Any]]:
    ds = plane.create(str(tmp_path / "ds"))
    return ds, _fill(ds)


def _collect(rds: Any) -> dict[str, list[Any]]:
    """Rows in dataset order (the `ray_local` fixture sets `preserve_order`: Ray Data's
    streaming executor may otherwise finish read tasks out of order)."""
    out: dict[str, list[Any]] = {}
    for row in rds.iter_rows():
        for k, v in row.items():
            out.setdefault(k, []).append(v)
    return out


def test_to_ray_reads_every_row_and_tensor_in_order(ray_local: None, local_ds: Any) -> None:
    ds, cols = local_ds
    got = _collect(ds.to_ray())
    assert len(got["labels"]) == N
    # every tensor of a row stays together; compare in dataset order (the text names the row)
    order = np.argsort([int(t.rsplit(" ", 1)[1]) for t in got["text"]], kind="stable")
    got = {k: [v[i] for i in order] for k, v in got.items()}
    np.testing.assert_array_equal(np.stack(got["images"]), cols["images"])
    np.testing.assert_array_equal(np.asarray(got["labels"]), cols["labels"])
    for a, b in zip(got["tokens"], cols["tokens"]):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert got["text"] == cols["text"]


def test_read_tasks_are_aligned_to_chunks(ray_local: None, local_ds: Any) -> None:
    from plane.loader._ray import PlaneDatasource

    ds, _ = local_ds
    rds = ds.to_ray(tensors=["images", "labels"])
    source = next(op for op in _logical_ops(rds) if isinstance(op, PlaneDatasource))
    # every unit is exactly one chunk of the largest tensor
    assert source.units == [(a, a + PER_CHUNK) for a in range(0, N, PER_CHUNK)]
    tasks = source.get_read_tasks(4)
    assert len(tasks) == 4
    assert sum(t.metadata.num_rows for t in tasks) == N
    blocks = [b for t in tasks for b in t()]
    assert [b.num_rows for b in blocks] == [PER_CHUNK] * (N // PER_CHUNK)


def _logical_ops(rds: Any) -> list[Any]:
    """The datasources under a ray.data.Dataset's logical plan."""
    found = []
    stack = [rds._logical_plan.dag]
    while stack:
        op = stack.pop()
        src = getattr(op, "datasource", None) or getattr(op, "_datasource", None)
        if src is not None:
            found.append(src)
        stack.extend(getattr(op, "input_dependencies", []))
    return found


def test_to_ray_sees_one_version_and_honours_deletes(ray_local: None, local_ds: Any) -> None:
    ds, cols = local_ds
    ds.checkout("edit", create=True)
    ds.delete([0, 5])
    ds["labels"][1] = 4
    ds.commit("edit")
    edited = _collect(ds.to_ray(tensors=["labels"]))["labels"]
    expected = np.delete(cols["labels"], [0, 5])
    expected[1] = 4
    np.testing.assert_array_equal(np.asarray(edited), expected)
    ds.checkout("main")
    np.testing.assert_array_equal(np.asarray(_collect(ds.to_ray(tensors=["labels"]))["labels"]),
                                  cols["labels"])


def test_to_ray_errors_say_what_to_do(ray_local: None, local_ds: Any) -> None:
    ds, _ = local_ds
    with pytest.raises(TensorNotFoundError, match="nope.*tensors: images"):
        ds.to_ray(tensors=["nope"])
    mem = plane.create("mem://")
    _fill(mem, 10)
    with pytest.raises(PlaneError, match="mem://.*Ray workers cannot see it"):
        mem.to_ray()


@pytest.mark.s3
def test_to_ray_from_s3(ray_local: None, s3_bucket: tuple[str, dict[str, Any]]) -> None:
    url, opts = s3_bucket
    ds = plane.create(url, storage_options=opts)
    cols = _fill(ds, 120)
    got = _collect(ds.to_ray(tensors=["labels", "text"]))
    np.testing.assert_array_equal(np.asarray(got["labels"]), cols["labels"])
    assert got["text"] == cols["text"]


@pytest.mark.parametrize("loader", ["plane", "ray-data"])
def test_ray_train_job_two_workers_cover_the_dataset(ray_local: None, local_ds: Any,
                                                     tmp_path: Any, loader: str) -> None:
    """`python -m jobs.train` joins the running Ray instance as `ray job submit` would
    (RAY_ADDRESS), trains 2 CPU workers for 2 epochs with either loader, prints a line per
    epoch and saves a checkpoint."""
    ds, _ = local_ds
    env = dict(os.environ, RAY_ADDRESS=ray.get_runtime_context().gcs_address,
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    out = subprocess.run(
        [sys.executable, "-m", "jobs.train", "--dataset", ds.url, "--workers", "2",
         "--epochs", "2", "--batch-size", "16", "--cpus-per-worker", "0.5",
         "--storage-path", str(tmp_path / "results"), "--loader", loader],
        env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    last = report["metrics"]
    assert last["epoch"] == 1
    # each epoch, the two workers' shards add up to the whole dataset, and training ran
    assert last["samples_all_per_epoch"] == [N, N]
    assert 0 < last["samples"] < N
    assert np.isfinite(last["loss"])
    assert (Path(report["checkpoint"]) / "model.pt").stat().st_size > 0
    epochs = [line for line in (out.stdout + out.stderr).splitlines()
              if "time_to_first_batch" in line]
    assert len(epochs) >= 2 and "rows_per_s" in epochs[0] and "p99_wait" in epochs[0]
    if loader == "plane":
        assert "store_gets" in epochs[0] and "chunks_per_batch" in epochs[0]


def test_train_job_rejects_an_empty_dataset(tmp_path: Any) -> None:
    from jobs.train import run

    empty = plane.create(str(tmp_path / "empty"))
    with pytest.raises(SystemExit, match="has no rows"):
        run(empty.url)


def test_ray_class_labels_arrive_as_int64(ray_local: None, tmp_path: Any) -> None:
    """uint32 class labels (and uint16 values) are widened as the torch loader widens them
    (issue #15 item 7): `iter_torch_batches` hands `F.cross_entropy` int64 labels."""
    import torch

    ds = plane.create(str(tmp_path / "ds"))
    ds.create_tensor("labels", htype="class_label", class_names=["a", "b", "c"])
    ds.create_tensor("u16", dtype="uint16")
    ds.extend({"labels": [0, 2, 1, 2], "u16": [1, 65535, 3, 4]})
    ds.commit("rows")
    assert ds["labels"].dtype == np.uint32
    batch = next(iter(ds.to_ray().iter_batches(batch_size=4, batch_format="numpy")))
    assert batch["labels"].dtype == np.int64 and batch["u16"].dtype == np.int32
    assert batch["labels"].tolist() == [0, 2, 1, 2] and batch["u16"].tolist()[1] == 65535
    tb = next(iter(ds.to_ray().iter_torch_batches(batch_size=4)))
    assert tb["labels"].dtype == torch.int64
    loss = torch.nn.functional.cross_entropy(torch.zeros(4, 3), tb["labels"])
    assert torch.isfinite(loss)


def test_to_ray_gives_none_for_nulls(tmp_path: Any) -> None:
    """A null row reaches Ray Data as None (an Arrow null), not as its stored empty sample
    (the blocks a read task yields; no cluster needed)."""
    from plane.loader._ray import _read_units

    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("x", dtype="int64")
    ds.create_tensor("t", htype="text")
    ds.create_tensor("v", dtype="float32", shape=(2,))
    ds.extend({"x": [1, None, 3], "t": [None, "b", "c"], "v": [None, [1, 2], [3, 4]]})
    ds.commit("nulls")
    block = next(_read_units(ds.snapshot(), ["x", "t", "v"], [(0, 3)]))
    assert block.column("x").to_pylist() == [1, None, 3]
    assert block.column("t").to_pylist() == [None, "b", "c"]
    assert block.column("v").null_count == 1
