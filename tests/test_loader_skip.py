"""on_error="skip": a corrupt or missing chunk costs its own rows, not the batches they land in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane
from plane.core._layout import chunk_key
from plane.storage import open_store
from plane.testing import FaultyStore

N = 1000  # rows; "row" holds each row's position, so a served row names itself


def _make(path: Path) -> plane.Dataset:
    """Three tensors chunked differently: "row" (128 rows a chunk), "x" (100 rows a chunk,
    each row four copies of its position) and "img" (PNGs of the position mod 251)."""
    ds = plane.create(path)
    ds.create_tensor("row", dtype="int64", chunk_bytes=1024)
    ds.create_tensor("x", dtype="float32", shape=(4,), chunk_bytes=1600)
    ds.create_tensor("img", htype="image", sample_compression="png", chunk_bytes=8000)
    pos = np.arange(N)
    ds.extend({"row": pos, "x": np.repeat(pos.astype(np.float32)[:, None], 4, 1),
               "img": np.broadcast_to((pos % 251).astype(np.uint8)[:, None, None, None],
                                      (N, 4, 4, 3)).copy()})
    ds.flush()
    return plane.open(path, read_only=True)


def _chunk(ds: plane.Dataset, tensor: str, entry: int) -> tuple[str, set[int]]:
    """The store key of one chunk of `tensor` and the rows it holds."""
    idx = ds._ws.writer(tensor).index
    end = int(idx.ends[entry])
    return chunk_key(idx.entry_keys(entry)[0]), set(range(end - int(idx.rows[entry]), end))


def _damage(path: Path, key: str, how: str = "corrupt") -> None:
    store = open_store(path)
    if how == "missing":
        store.delete(key)
        return
    data = bytearray(store.get(key))
    data[len(data) // 3] ^= 0xFF
    store.put(key, bytes(data))


def _planned(loader: Any, bad: set[int], start: int = 0) -> list[list[int]]:
    """Epoch 0's planned batches (from `start`) less the rows in `bad`, in order; empty ones
    gone."""
    plan = loader.source.plan(0)
    out = [[int(r) for r in plan.order[a:b] if int(r) not in bad]
           for a, b in plan.batches[start:]]
    return [b for b in out if b]


def _served(loader: Any) -> list[list[int]]:
    out = []
    for b in loader:
        rows = np.asarray(b["row"]).tolist()
        if "x" in b:  # every tensor of a served row is that row's
            assert np.asarray(b["x"])[:, 0].tolist() == rows
        if "img" in b:
            assert [int(np.asarray(i)[0, 0, 0]) for i in b["img"]] == [r % 251 for r in rows]
        out.append(rows)
    return out


def _touched(loader: Any, bad: set[int]) -> int:
    """How many planned batches hold a row of `bad` (all of them would be lost to skipping
    whole batches)."""
    plan = loader.source.plan(0)
    return sum(any(int(r) in bad for r in plan.order[a:b]) for a, b in plan.batches)


@pytest.fixture
def damaged(tmp_path: Path) -> tuple[Path, plane.Dataset, set[int]]:
    """A dataset whose third "row" chunk is corrupt in the store; and the rows it holds."""
    ds = _make(tmp_path / "d")
    key, rows = _chunk(ds, "row", 2)
    _damage(tmp_path / "d", key)
    return tmp_path / "d", plane.open(tmp_path / "d", read_only=True), rows


@pytest.mark.parametrize("shuffle", [True, False])
def test_shuffled_epoch_loses_only_the_bad_chunks_rows(
        damaged: tuple[Path, plane.Dataset, set[int]], shuffle: bool) -> None:
    _, ds, bad = damaged
    # 48 rows a batch: without shuffle, the chunk's 128 rows span parts of four batches
    loader = ds.numpy(batch_size=48, seed=3, shuffle=shuffle, tensors=["row", "x"],
                      on_error="skip")
    if shuffle:  # the scenario: the chunk's rows are spread over (nearly) every batch
        assert _touched(loader, bad) >= 19 and len(loader) == 21
    served = _served(loader)
    assert served == _planned(loader, bad)  # the other rows, in their planned batches and order
    assert sorted(r for b in served for r in b) == sorted(set(range(N)) - bad)
    assert loader.skipped_rows == len(bad) == 128
    with pytest.raises(plane.ChecksumError):  # on_error="raise" still raises
        list(ds.numpy(batch_size=48, seed=3, shuffle=shuffle, tensors=["row", "x"]))


def test_the_same_batches_every_time_and_after_resume(
        damaged: tuple[Path, plane.Dataset, set[int]]) -> None:
    _, ds, bad = damaged
    kw: dict[str, Any] = {"batch_size": 32, "seed": 5, "tensors": ["row"], "on_error": "skip"}
    first = _served(ds.numpy(**kw))
    assert _served(ds.numpy(**kw)) == first
    loader = ds.numpy(**kw)
    it = iter(loader)
    head = [np.asarray(next(it)["row"]).tolist() for _ in range(10)]
    state = loader.state_dict()
    resumed = ds.numpy(**kw)
    resumed.load_state_dict(state)
    at = state["position"]  # follows the plan: 10 batches, each served short
    plan = resumed.source.plan(0)
    expected = _planned(resumed, bad, start=at)
    rest = _served(resumed)
    assert at == 10 and rest == expected and head + rest == first
    assert resumed.skipped_rows == sum(int(r) in bad for r in plan.order[plan.batches[at][0]:])


def test_bad_chunk_in_one_tensor_drops_its_rows_from_all(tmp_path: Path) -> None:
    ds = _make(tmp_path / "d")
    key, bad = _chunk(ds, "x", 4)  # x's chunks do not line up with row's
    _damage(tmp_path / "d", key)
    ds = plane.open(tmp_path / "d", read_only=True)
    loader = ds.numpy(batch_size=32, seed=1, tensors=["row", "x"], on_error="skip")
    assert _served(loader) == _planned(loader, bad)
    assert loader.skipped_rows == len(bad) == 100
    # a tensor not loaded does not matter
    clean = ds.numpy(batch_size=32, seed=1, tensors=["row"], on_error="skip")
    assert _served(clean) == _planned(clean, set()) and clean.skipped_rows == 0


def test_missing_chunk_object(tmp_path: Path) -> None:
    ds = _make(tmp_path / "d")
    key, bad = _chunk(ds, "row", 5)
    _damage(tmp_path / "d", key, "missing")
    ds = plane.open(tmp_path / "d", read_only=True)
    loader = ds.numpy(batch_size=32, seed=2, tensors=["row", "x"], on_error="skip")
    assert _served(loader) == _planned(loader, bad)
    assert loader.skipped_rows == len(bad) == 128
    with pytest.raises(plane.ObjectNotFoundError, match=key.split("/")[1]):
        list(ds.numpy(batch_size=32, seed=2, tensors=["row"]))


def test_reader_threads_and_read_units(tmp_path: Path) -> None:
    """PNGs are read by reader threads, four batches of 32 a unit: a unit that fails is
    served again batch by batch less the bad chunk's rows, and later units leave them out."""
    ds = _make(tmp_path / "d")
    key, bad = _chunk(ds, "img", 3)
    _damage(tmp_path / "d", key)
    ds = plane.open(tmp_path / "d", read_only=True)
    loader = ds.numpy(batch_size=32, seed=4, num_workers=2, on_error="skip")
    assert loader.reader_threads() == 2
    assert _served(loader) == _planned(loader, bad)
    assert loader.skipped_rows == len(bad) == 103
    inline = ds.numpy(batch_size=32, seed=4, on_error="skip", prefetch=False)
    assert inline.reader_threads() == 0
    assert _served(inline) == _planned(loader, bad) and inline.skipped_rows == len(bad)


def test_worker_processes_report_rows_left_out(
        damaged: tuple[Path, plane.Dataset, set[int]]) -> None:
    _, ds, bad = damaged
    loader = ds.pytorch(batch_size=32, seed=3, tensors=["row", "x"], num_workers=2,
                        worker_mode="process", on_error="skip")
    assert _served(loader) == _planned(loader, bad)
    assert loader.skipped_rows == len(bad)
    assert loader.state_dict()["epoch"] == 1  # the epoch ran to its end


def test_a_bad_chunk_is_fetched_once_per_pass(tmp_path: Path) -> None:
    ds = _make(tmp_path / "d")
    key, bad = _chunk(ds, "row", 1)
    gets: list[str] = []

    def fails(k: str) -> bool:
        if k == key:
            gets.append(k)
            return True
        return False

    store = FaultyStore(open_store(tmp_path / "d"), fail_keys=fails)
    loader = plane.open(store, read_only=True).numpy(batch_size=32, seed=6, tensors=["row"],
                                                     on_error="skip")
    assert _touched(loader, bad) >= 25
    assert _served(loader) == _planned(loader, bad)  # a StoreError on one chunk, as well
    assert loader.skipped_rows == len(bad)
    assert len(gets) <= 2  # the batch that met it, and the check of that batch's chunks


def test_drop_last_serves_batches_left_short(
        damaged: tuple[Path, plane.Dataset, set[int]]) -> None:
    _, ds, bad = damaged
    loader = ds.numpy(batch_size=32, seed=3, tensors=["row"], drop_last=True, on_error="skip")
    served = _served(loader)
    assert served == _planned(loader, bad)
    # every planned batch (31 full ones) is served, short where it held rows of the chunk
    assert len(served) == N // 32 and min(len(b) for b in served) < 32
    assert sum(map(len, served)) + loader.skipped_rows == N // 32 * 32
    assert loader.skipped_rows == len(bad & {int(r) for r in loader.source.plan(0).order[:992]})


def test_chunk_with_a_bad_sample_used_early(tmp_path: Path) -> None:
    """Samples of a chunk still being hashed are checked one by one: rows of a damaged chunk
    served before it was found bad were each verified, the rest are left out and counted,
    and no other row is lost."""
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("row", dtype="int64")
    ds.create_tensor("k", dtype="uint8", shape=(32, 32), chunk_bytes=64 * 1024)  # sums per row
    ds.extend({"row": np.arange(640), "k": np.broadcast_to(
        (np.arange(640) % 251).astype(np.uint8)[:, None, None], (640, 32, 32))})
    ds.flush()
    key, rows = _chunk(ds, "k", 2)
    data = bytearray(open_store(tmp_path / "d").get(key))
    data[5 * 1024 + 7] ^= 0xFF  # inside sample 5 of that chunk
    open_store(tmp_path / "d").put(key, bytes(data))
    loader = plane.open(tmp_path / "d", read_only=True).numpy(batch_size=32, seed=1,
                                                             on_error="skip")
    served = []
    for b in loader:
        assert (b["k"] == (b["row"] % 251).astype(np.uint8)[:, None, None]).all()
        served += b["row"].tolist()
    assert len(served) == len(set(served))
    assert set(range(640)) - rows <= set(served)  # no row of another chunk is lost
    assert min(rows) + 5 not in served
    assert loader.skipped_rows == 640 - len(served) >= 1


def test_torch_dataset_of_samples_leaves_out_the_bad_rows(
        damaged: tuple[Path, plane.Dataset, set[int]]) -> None:
    _, ds, bad = damaged
    loader = ds.pytorch(batch_size=32, seed=3, tensors=["row", "x"], on_error="skip")
    rows = [int(r["row"]) for r in loader.torch_dataset(samples=True)]
    assert rows == [r for b in _planned(loader, bad) for r in b]
    assert loader.skipped_rows == len(bad)


def test_rows_deleted_or_patched_out_of_the_bad_chunk(tmp_path: Path) -> None:
    """Positions map to physical rows past deletions, and a row updated since (its value in a
    patch chunk) does not need the damaged chunk."""
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("row", dtype="int64", chunk_bytes=1024)
    ds.extend({"row": np.arange(N)})
    ds.delete(list(range(10)))  # position p is physical row p + 10
    ds["row"][[250, 251, 300]] = np.asarray([260, 261, 310])  # rows 260, 261, 310: patched
    ds.commit("deleted and patched")
    key, rows = _chunk(ds, "row", 2)  # physical rows 256..383
    _damage(tmp_path / "d", key)
    ds = plane.open(tmp_path / "d", read_only=True)
    loader = ds.numpy(batch_size=32, seed=7, on_error="skip")
    bad = {r - 10 for r in rows} - {250, 251, 300}  # positions left out
    served = _served(loader)
    assert served == [[r + 10 for r in b] for b in _planned(loader, bad)]
    assert loader.skipped_rows == len(bad) == 125
