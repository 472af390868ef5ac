"""Loader: pure planning properties, determinism across workers/ranks, resume, errors."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plane
from plane.loader import epoch_order, global_batches, make_loader, rank_batches, units_of
from plane.storage import CachingStore, open_store


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2000), st.integers(1, 70), st.integers(1, 9), st.booleans())
def test_rank_batches_cover_rows_once_and_balance(n: int, bs: int, world: int,
                                                  drop_last: bool) -> None:
    bounds = global_batches(n, bs, world, drop_last)
    per_rank = [rank_batches(bounds, r, world) for r in range(world)]
    assert len({len(b) for b in per_rank}) == 1  # same number of batches on every rank
    rows = sorted(i for rb in per_rank for a, b in rb for i in range(a, b))
    if drop_last:
        assert rows == list(range(len(rows))) and n - len(rows) < bs * world
    elif n >= world:
        assert rows == list(range(n))  # nothing lost, nothing repeated
    assert all(b - a <= bs + 1 for a, b in bounds)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 50), min_size=1, max_size=30), st.integers(0, 3),
       st.integers(1, 8), st.booleans())
def test_epoch_order_is_a_permutation(sizes: list[int], epoch: int, window: int,
                                      shuffle: bool) -> None:
    ent = np.repeat(np.arange(len(sizes)), sizes)
    units = units_of(ent)
    order = epoch_order(units, 0, epoch, shuffle, window)
    assert sorted(order.tolist()) == list(range(sum(sizes)))
    again = epoch_order(units, 0, epoch, shuffle, window)
    assert np.array_equal(order, again)
    if not shuffle:
        assert order.tolist() == list(range(sum(sizes)))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("loader") / "d")
    ds = plane.create(path)
    ds.create_tensor("row", dtype="int64", chunk_bytes=320 * 8)
    ds.create_tensor("img", dtype="uint8", shape=(4, 4, 3), chunk_bytes=320 * 48)
    ds.create_tensor("caption", htype="text")
    n = 3000
    ds.extend({"row": np.arange(n), "img": np.repeat(np.arange(n) % 251, 48).astype(
        np.uint8).reshape(n, 4, 4, 3), "caption": [f"c{i}" for i in range(n)]})
    ds.flush()
    return path


def _rows(loader: Any) -> list[int]:
    return [int(x) for b in loader for x in np.asarray(b["row"])]


def test_epoch_covers_rows_once_and_mixes_chunks(dataset: str) -> None:
    ds = plane.open(dataset, read_only=True)
    loader = ds.numpy(batch_size=64, seed=3)
    rows = _rows(loader)
    assert sorted(rows) == list(range(3000))
    chunk = np.asarray(rows) // 320
    assert np.mean(chunk[1:] == chunk[:-1]) <= 0.15
    distinct = [len(set(chunk[i:i + 64].tolist())) for i in range(0, 3000 - 64, 64)]
    assert np.mean(distinct) >= 9  # all ~10 chunks of this small dataset per batch
    assert _rows(ds.numpy(batch_size=64, shuffle=False)) == list(range(3000))
    assert _rows(loader) != rows  # the next epoch is another order


def test_order_is_the_same_for_any_workers_and_world_size(dataset: str) -> None:
    ds = plane.open(dataset, read_only=True)
    ref = _rows(ds.pytorch(batch_size=32, seed=1))
    for workers in (1, 2):
        for mode in ("thread", "process"):
            got = _rows(ds.pytorch(batch_size=32, seed=1, num_workers=workers,
                                   worker_mode=mode))
            assert got == ref, (workers, mode)
    assert _rows(ds.numpy(batch_size=32, seed=1, num_workers=3)) == ref
    for world in (2, 4):
        per_rank = [list(ds.numpy(batch_size=32, seed=1, rank=r, world_size=world))
                    for r in range(world)]
        assert len({len(p) for p in per_rank}) == 1
        interleaved = [int(x) for rnd in zip(*per_rank) for b in rnd for x in b["row"]]
        assert interleaved == ref
    assert _rows(ds.pytorch(batch_size=32, seed=2)) != ref


def test_batches_are_typed_tensors(dataset: str) -> None:
    import torch

    ds = plane.open(dataset, read_only=True)
    batch = next(iter(ds.pytorch(batch_size=16, tensors=["img", "caption", "row"])))
    assert batch["img"].dtype == torch.uint8 and tuple(batch["img"].shape) == (16, 4, 4, 3)
    assert isinstance(batch["caption"], list) and len(batch["caption"]) == 16
    rows = batch["row"].numpy()
    assert batch["caption"] == [f"c{r}" for r in rows]
    assert (batch["img"][:, 0, 0, 0].numpy() == rows % 251).all()
    with pytest.raises(plane.TensorNotFoundError, match="no tensor 'nope'"):
        ds.pytorch(tensors=["nope"])


def test_resume_in_a_new_process_continues_the_same_order(dataset: str) -> None:
    ds = plane.open(dataset, read_only=True)
    full = [b["row"].tolist() for b in ds.numpy(batch_size=50, seed=9)]
    loader = ds.numpy(batch_size=50, seed=9)
    it = iter(loader)
    for _ in range(17):
        next(it)
    state = loader.state_dict()
    code = textwrap.dedent("""
        import json, sys
        import plane
        ds = plane.open(sys.argv[1], read_only=True)
        loader = ds.numpy(batch_size=50, seed=9)
        loader.load_state_dict(json.loads(sys.argv[2]))
        print(json.dumps([b["row"].tolist() for b in loader]))
    """)
    out = subprocess.run([sys.executable, "-c", code, dataset, json.dumps(state)],
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == full[17:]
    other = ds.numpy(batch_size=10, seed=9)
    with pytest.raises(plane.PlaneError, match="different seed or batch size"):
        other.load_state_dict(state)


def test_resume_with_reader_threads(dataset: str) -> None:
    ds = plane.open(dataset, read_only=True)
    full = [b["row"].tolist() for b in ds.pytorch(batch_size=50, seed=4)]
    loader = ds.pytorch(batch_size=50, seed=4, num_workers=2)
    it = iter(loader)
    head = [next(it)["row"].tolist() for _ in range(5)]
    it.close()  # stopping early leaves no reader thread behind to block the next epoch
    state = loader.state_dict()
    again = ds.pytorch(batch_size=50, seed=4, num_workers=2)
    again.load_state_dict(state)
    assert head + [b["row"].tolist() for b in again] == full


def test_worker_mode(dataset: str) -> None:
    ds = plane.open(dataset, read_only=True)

    def add_one(row: dict[str, Any]) -> dict[str, Any]:
        return {"row": row["row"] + 1}

    assert ds.pytorch(num_workers=2).config.process_workers is False
    assert ds.pytorch(num_workers=2, transform=add_one).config.process_workers is True
    assert ds.pytorch(num_workers=2, transform=add_one, worker_mode="thread"
                      ).config.process_workers is False
    # a transform in reader threads gives the same batches as inline
    ref = [b["row"].tolist() for b in ds.numpy(batch_size=40, seed=3, transform=add_one,
                                               tensors=["row"])]
    got = [b["row"].tolist() for b in ds.numpy(batch_size=40, seed=3, transform=add_one,
                                               tensors=["row"], num_workers=2)]
    assert got == ref and sorted(r for b in got for r in b) == list(range(1, 3001))
    with pytest.raises(plane.PlaneError, match="worker_mode must be"):
        ds.pytorch(worker_mode="fork")
    with pytest.raises(plane.PlaneError, match="torch DataLoader workers"):
        ds.numpy(num_workers=2, worker_mode="process")


def test_corrupt_chunk_raises_or_is_skipped(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("v", dtype="float32", shape=(16,), chunk_bytes=64 * 64)
    ds.extend({"v": np.random.default_rng(0).random((640, 16), np.float32)})
    ds.flush()
    store = open_store(tmp_path / "d")
    key = sorted(store.list("chunks/"))[2]
    data = bytearray(store.get(key))
    data[10] ^= 0xFF
    store.put(key, bytes(data))
    ds = plane.open(tmp_path / "d", read_only=True)
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
        list(ds.numpy(batch_size=32))
    loader = ds.numpy(batch_size=32, on_error="skip")
    seen = sum(len(b["v"]) for b in loader)
    assert loader.skipped_rows > 0 and seen + loader.skipped_rows == 640
    rows = [b["v"][:, 0].tolist() for b in ds.numpy(batch_size=32, on_error="skip")]
    # inline, and in worker processes (which report their skips to the main process so the
    # round robin keeps the planned order): the same batches are skipped and counted
    for workers, mode in ((0, "auto"), (2, "process")):
        with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
            list(ds.pytorch(batch_size=32, num_workers=workers, worker_mode=mode))
        other = ds.pytorch(batch_size=32, on_error="skip", num_workers=workers,
                           worker_mode=mode)
        assert [b["v"][:, 0].tolist() for b in other] == rows
        assert other.skipped_rows == loader.skipped_rows
        assert other.state_dict()["epoch"] == 1  # the epoch ran to its end


def _kilobyte_rows(path: Any) -> tuple[str, bytearray]:
    """640 rows of 1 KiB (big enough to carry per-sample sums), 64 per chunk; returns the
    key and bytes of the third chunk, to corrupt."""
    ds = plane.create(path)
    ds.create_tensor("x", dtype="uint8", shape=(32, 32), chunk_bytes=64 * 1024)
    ds.extend({"x": np.broadcast_to((np.arange(640) % 251).astype(np.uint8)[:, None, None],
                                    (640, 32, 32))})
    ds.flush()
    key = sorted(open_store(path).list("chunks/"))[2]
    return key, bytearray(open_store(path).get(key))


def _intact(batch: dict[str, Any]) -> bool:
    x = batch["x"]
    return bool((x == x[:, :1, :1]).all())


def test_samples_of_chunks_being_verified_are_checked_one_by_one(tmp_path: Any) -> None:
    """Batches use chunks before their whole checksum is done, checking each sample taken:
    a corrupt sample is never served, and the error names its chunk."""
    key, data = _kilobyte_rows(tmp_path / "d")
    data[5 * 1024 + 7] ^= 0xFF  # inside sample 5 of that chunk
    open_store(tmp_path / "d").put(key, bytes(data))
    ds = plane.open(tmp_path / "d", read_only=True)
    # one batch of every row: the chunk is opened early and the bad sample found by its sum
    with pytest.raises(plane.ChecksumError,
                       match=key.split("/")[1] + r".*sample 5 fails its checksum"):
        list(ds.numpy(batch_size=640, seed=1))
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
        list(ds.numpy(batch_size=32, seed=1))
    loader = ds.numpy(batch_size=32, seed=1, on_error="skip")
    batches = list(loader)
    assert all(_intact(b) for b in batches)
    # the chunk's rows not served before it was found bad (those served were each verified)
    assert 1 <= loader.skipped_rows <= 64
    assert sum(len(b["x"]) for b in batches) + loader.skipped_rows == 640


def test_footer_that_disagrees_with_the_index_is_verified_before_use(tmp_path: Any) -> None:
    key, data = _kilobyte_rows(tmp_path / "d")
    flen = int.from_bytes(data[-8:-4], "little")
    shape_at = len(data) - 8 - flen + 16  # the chunk's one (uniform) sample shape
    data[shape_at] = 16  # (32, 32) -> (16, 32): sample sums alone would not notice
    open_store(tmp_path / "d").put(key, bytes(data))
    ds = plane.open(tmp_path / "d", read_only=True)
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1] + ".*checksum mismatch"):
        list(ds.numpy(batch_size=640, seed=2))


def test_unparsable_footer_is_a_checksum_error(tmp_path: Any) -> None:
    key, data = _kilobyte_rows(tmp_path / "d")
    data[-8:-4] = (1 << 30).to_bytes(4, "little")  # footer length beyond the object
    open_store(tmp_path / "d").put(key, bytes(data))
    ds = plane.open(tmp_path / "d", read_only=True)
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
        list(ds.numpy(batch_size=640, seed=2))
    loader = ds.numpy(batch_size=32, seed=2, on_error="skip")
    assert sum(len(b["x"]) for b in loader) == 640 - loader.skipped_rows
    assert loader.skipped_rows == 64  # the chunk's rows (verified whole before use)


def test_background_verification_failure_is_raised_on_next_use(tmp_path: Any) -> None:
    """A change only the whole-chunk checksum sees (the footer and every sample pass their
    own sums: the object is another valid encoding of the same samples, its offsets written
    out): the intact samples may be served, then the chunk is refused."""
    from plane.format._chunk import FLAG_UNIFORM_SIZE, _footer_sum

    key, data = _kilobyte_rows(tmp_path / "d")
    flen = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - flen
    footer = bytes(data[start: -16])  # head (16 bytes), one 2-d shape (8), sums; no own sum
    assert footer[2] & FLAG_UNIFORM_SIZE
    offsets = (np.arange(65) * 1024).astype("<u8").tobytes()
    footer = footer[:2] + bytes([footer[2] & ~FLAG_UNIFORM_SIZE]) + footer[3:24] + offsets \
        + footer[24:]
    tail = (len(footer) + 8).to_bytes(4, "little") + b"TPC1"
    data = data[:start] + footer + _footer_sum(footer, tail[:4]).to_bytes(8, "little") + tail
    open_store(tmp_path / "d").put(key, bytes(data))
    loader = plane.open(tmp_path / "d", read_only=True).numpy(batch_size=640, seed=2)
    first = list(loader)
    assert len(first) == 1 and _intact(first[0])
    assert loader.source.opened.reader.settle(timeout=60)
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1] + ".*checksum mismatch"):
        list(loader)  # the next epoch


def test_loaders_stream_pending_writes_without_publishing_them(tmp_path: Any) -> None:
    """Issue #15 item 6: rows extended but not flushed are streamed (the loader reads
    `ds.snapshot()`); the branch does not move, so another reader does not see them."""
    path = str(tmp_path / "d")
    ds = plane.create(path)
    ds.create_tensor("row", dtype="int64")
    ds.extend({"row": np.arange(10)})
    ds.commit("ten rows")
    head = ds.commit_id
    ds.extend({"row": np.arange(10, 15)})
    assert sorted(_rows(ds.numpy(batch_size=4, seed=1))) == list(range(15))
    assert sorted(_rows(ds.pytorch(batch_size=4, seed=1))) == list(range(15))
    other = plane.open(path, read_only=True)
    assert len(other) == 10 and sorted(_rows(other.numpy(batch_size=4))) == list(range(10))
    assert ds.has_changes and ds.commit_id == other.commit_id == head
    ds.commit("fifteen rows")  # the pending rows are published by a commit, as ever
    assert sorted(_rows(plane.open(path, read_only=True).numpy(batch_size=4))) == \
        list(range(15))


def test_rows_of_an_uncommitted_snapshot_stream_by_position(tmp_path: Any) -> None:
    """A view streams at its Snapshot, committed or not (issue #15 item 1: positions= on a
    dataset with changes raised "streaming a view needs a committed version")."""
    ds = plane.create(str(tmp_path / "d"))
    ds.create_tensor("row", dtype="int64", chunk_bytes=1024)
    ds.extend({"row": np.arange(30)})
    ds.commit("thirty rows")
    ds.extend({"row": np.arange(30, 40)})
    ds.delete([0])
    pos = np.asarray([35, 2, 7, 2, 20])
    want = sorted({int(ds["row"][int(p)].numpy()) for p in pos})
    assert want == [3, 8, 21, 36]
    loader = make_loader(ds.snapshot(), "numpy", batch_size=3, seed=2, positions=pos)
    assert sorted(_rows(loader)) == want
    res = ds.query("SELECT row WHERE row >= 36")
    assert sorted(_rows(res.numpy(batch_size=2))) == [36, 37, 38, 39]


def test_query_results_of_a_committed_dataset_stream(tmp_path: Any) -> None:
    """Issue #15 item 1 as reported: a query on a committed dataset opened normally, then
    `view.pytorch()`."""
    path = str(tmp_path / "d")
    ds = plane.create(path)
    ds.create_tensor("row", dtype="int64")
    ds.create_tensor("caption", htype="text")
    ds.extend({"row": np.arange(20), "caption": [f"c{i}" for i in range(20)]})
    ds.commit("first")
    res = plane.open(path).query("SELECT row, caption WHERE row > 10 LIMIT 5")
    batches = list(res.pytorch(batch_size=2, shuffle=False))
    assert [int(x) for b in batches for x in b["row"]] == [11, 12, 13, 14, 15]
    assert [c for b in batches for c in b["caption"]] == [f"c{i}" for i in range(11, 16)]


def test_a_pickled_source_reads_the_same_batches(dataset: str, tmp_path: Any) -> None:
    """What a worker process gets: the snapshot (store + state key), the chunk cache in front
    of the store, the link resolver; it reads the same batches, verifying samples early."""
    ds = plane.open(dataset, read_only=True)
    source = ds.numpy(batch_size=500, seed=5, cache_dir=tmp_path / "cache").source
    clone = pickle.loads(pickle.dumps(source))
    assert isinstance(clone.store, CachingStore) and clone.state_key == source.state_key
    assert clone.opened is not source.opened and clone.opened.reader.verify_early
    assert type(clone.links) is type(source.links)
    theirs = [b["row"].tolist() for _, b in clone.batches(1)]
    assert theirs == [b["row"].tolist() for _, b in source.batches(1)]
    assert sorted(r for b in theirs for r in b) == list(range(3000))
    assert any((tmp_path / "cache").rglob("*"))  # chunks went through the disk cache


def test_embedded_loading_never_imports_ray(dataset: str) -> None:
    code = ("import sys, plane; ds = plane.open(sys.argv[1], read_only=True); "
            "list(ds.numpy(batch_size=256)); assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code, dataset], check=True)


@pytest.mark.s3
def test_same_order_from_s3(dataset: str, s3_bucket: tuple[str, Any]) -> None:
    url, opts = s3_bucket
    src = plane.open(dataset, read_only=True)
    ds = plane.create(url, storage_options=opts)
    for name, t in src.tensors.items():
        m = t.meta
        ds.create_tensor(name, htype=m.htype, dtype=m.dtype if m.kind == "array" else None,
                         shape=m.shape, chunk_bytes=m.chunk_bytes)
    ds.extend({n: src[n].numpy(aslist=True) for n in src.tensors})
    ds.flush()
    remote = plane.open(url, read_only=True, storage_options=opts)
    assert _rows(remote.numpy(batch_size=64, seed=4)) == _rows(src.numpy(batch_size=64, seed=4))



@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-5, 5) | st.integers(-2**62, 2**62), max_size=50))
def test_unique_ints_is_np_unique(xs: list[int]) -> None:
    from plane._runtime import unique_ints

    a = np.asarray(xs, np.int64)
    assert unique_ints(a).tolist() == np.unique(a).tolist()
