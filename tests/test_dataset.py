"""Dataset behaviour on every backend (memory, local, S3 via moto)."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pytest

import plane
from plane.storage import open_store


def _jpeg(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _images(n: int, seed: int = 0, hw: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (n, hw, hw, 3), dtype=np.uint8)


def _make(url: str, opts: Any, n: int = 300, chunk_bytes: int = 8192) -> plane.Dataset:
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("images", htype="image", chunk_bytes=chunk_bytes)
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.create_tensor("embedding", htype="embedding", chunk_bytes=chunk_bytes)
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("meta", htype="json")
    rng = np.random.default_rng(1)
    ds.extend({
        "images": _images(n),
        "labels": rng.integers(0, 2, n),
        "embedding": rng.standard_normal((n, 8)).astype(np.float32),
        "caption": [f"caption {i}" for i in range(n)],
        "meta": [{"i": i, "tags": ["a"] * (i % 3)} for i in range(n)],
    })
    ds.flush()
    return ds


def _snapshot(url: str, opts: Any) -> dict[str, bytes]:
    store = open_store(url, opts)
    return {k: store.get(k) for k in store.list("")}


def test_roundtrip_every_htype(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    _make(url, opts)
    ds = plane.open(url, read_only=True, storage_options=opts)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    emb = rng.standard_normal((300, 8)).astype(np.float32)
    assert len(ds) == 300
    np.testing.assert_array_equal(ds["images"].numpy(), _images(300))
    np.testing.assert_array_equal(ds["images"][37].numpy(), _images(300)[37])
    np.testing.assert_array_equal(ds["labels"][10:20].numpy(), labels[10:20])
    np.testing.assert_array_equal(ds["embedding"][[5, 299, 0]].numpy(), emb[[5, 299, 0]])
    assert ds["caption"][123].numpy() == "caption 123"
    assert ds[[3, 7, 9]]["caption"].numpy() == ["caption 3", "caption 7", "caption 9"]
    assert ds[4]["meta"].numpy() == {"i": 4, "tags": ["a"]}
    assert ds["labels"].class_names == ("cat", "dog")
    assert ds["images"].shape == (300, 16, 16, 3)
    assert ds[0]["images"].shape == (16, 16, 3)
    assert "images" in ds.summary()


def test_read_only_refuses_writes(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    _make(url, opts, n=10)
    ds = plane.open(url, read_only=True, storage_options=opts)
    with pytest.raises(plane.ReadOnlyError, match="read-only"):
        ds.append({"images": _images(1)[0], "labels": 0, "embedding": np.zeros(8),
                   "caption": "x", "meta": None})
    with pytest.raises(plane.ReadOnlyError):
        ds.create_tensor("x")
    assert len(plane.open(url, storage_options=opts)) == 10


BAD_ROWS = [
    ("wrong dtype", {"embedding": np.array(["a"] * 8)}, "expects numeric"),
    ("float into uint8", {"images": np.full((16, 16, 3), 0.5)}, "expects uint8, got float64"),
    ("wrong ndim", {"images": np.zeros((16, 16), np.uint8)}, "3 dims"),
    ("label out of range", {"labels": -1}, "out of range"),
    ("text not str", {"caption": 3}, "expects str"),
    ("json NaN", {"meta": float("nan")}, "not JSON"),
]


@pytest.mark.parametrize("what,override,message", BAD_ROWS, ids=[b[0] for b in BAD_ROWS])
def test_bad_sample_changes_nothing(tmp_store_url: tuple[str, Any], what: str,
                                    override: dict[str, Any], message: str) -> None:
    url, opts = tmp_store_url
    ds = _make(url, opts, n=50)
    before = _snapshot(url, opts)
    good = {"images": _images(3, seed=5), "labels": [0, 1, 0],
            "embedding": np.ones((3, 8), np.float32), "caption": ["a", "b", "c"],
            "meta": [{}, {}, {}]}
    cols = {k: list(v) for k, v in good.items()}
    for k, v in override.items():
        cols[k][2] = v  # the third row of this call is bad
    with pytest.raises(plane.SampleError, match=message) as info:
        ds.extend(cols)
    assert "row 52" in str(info.value)  # the dataset row the bad sample would have had
    assert len(ds) == 50
    ds.flush()
    assert _snapshot(url, opts) == before
    again = plane.open(url, storage_options=opts)
    assert len(again) == 50
    np.testing.assert_array_equal(again["images"][49].numpy(), _images(50)[49])
    # the dataset still takes good data afterwards
    ds.extend(good)
    ds.flush()
    assert len(plane.open(url, storage_options=opts)) == 53


def test_bad_calls_change_nothing(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    ds = _make(url, opts, n=20)
    before = _snapshot(url, opts)
    row = {"images": _images(1)[0], "labels": 0, "embedding": np.zeros(8, np.float32),
           "caption": "x", "meta": None}
    with pytest.raises(plane.TensorNotFoundError, match="no tensor 'nope'.*create_tensor"):
        ds.append({**row, "nope": 1})
    with pytest.raises(plane.SampleError, match="no values for tensor.*'caption'"):
        ds.append({k: v for k, v in row.items() if k != "caption"})
    with pytest.raises(plane.SampleError, match="column lengths differ"):
        ds.extend({k: [v, v] if k != "labels" else [0] for k, v in row.items()})
    with pytest.raises(plane.SchemaError, match="already exists"):
        ds.create_tensor("images")
    with pytest.raises(plane.SchemaError, match="unknown htype"):
        ds.create_tensor("z", htype="imagez")
    ds.flush()
    assert _snapshot(url, opts) == before and len(ds) == 20


def test_max_shape_and_fixed_shape() -> None:
    ds = plane.create("mem://")
    ds.create_tensor("a", shape=(2, None), dtype="int16")
    ds.create_tensor("b", max_shape=(4,), dtype="float32")
    ds.append({"a": np.ones((2, 5), np.int16), "b": [1.0, 2.0]})
    with pytest.raises(plane.SampleError, match=r"does not fit shape \(2, None\)"):
        ds.append({"a": np.ones((3, 5), np.int8), "b": [1.0]})
    with pytest.raises(plane.SampleError, match="does not fit max_shape"):
        ds.append({"a": np.ones((2, 1), np.int16), "b": np.zeros(5)})
    assert len(ds) == 1
    assert ds["a"][0].numpy().dtype == np.int16


def test_jpeg_stored_as_given_and_decoded(tmp_store_url: tuple[str, Any]) -> None:
    pytest.importorskip("PIL")
    url, opts = tmp_store_url
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("img", htype="image", sample_compression="jpeg")
    smooth = np.kron(_images(4, hw=8), np.ones((1, 4, 4, 1), np.uint8))
    jpegs = [_jpeg(a) for a in smooth]
    ds.extend({"img": jpegs})
    ds.append({"img": smooth[0]})  # arrays are encoded once
    ds.flush()
    ds = plane.open(url, read_only=True, storage_options=opts)
    assert ds["img"][2].bytes() == jpegs[2]  # byte-exact, never re-encoded
    out = ds["img"][1].numpy()
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - smooth[1].astype(int)).mean() < 25  # 4:2:0 chroma loss
    assert ds["img"].shape == (5, 32, 32, 3)


def test_corrupt_jpeg_is_rejected(tmp_store_url: tuple[str, Any]) -> None:
    pytest.importorskip("PIL")
    url, opts = tmp_store_url
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("img", htype="image", sample_compression="jpeg")
    good = _jpeg(_images(1, hw=16)[0])
    ds.append({"img": good})
    ds.flush()
    before = _snapshot(url, opts)
    with pytest.raises(plane.SampleError, match="tensor 'img'.*row 2"):
        ds.extend({"img": [good, good[: len(good) // 2]]})
    with pytest.raises(plane.SampleError, match="not an image|stores jpeg"):
        ds.append({"img": b"definitely not a jpeg"})
    ds.flush()
    assert _snapshot(url, opts) == before and len(ds) == 1


def test_tiled_samples_roundtrip(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("x", dtype="float64", chunk_bytes=4096)
    rng = np.random.default_rng(0)
    samples = [rng.standard_normal(s) for s in (10, 2000, 3, 5000, 7)]  # 16 KB, 40 KB > chunk
    ds.extend({"x": samples})
    ds.flush()
    ds = plane.open(url, read_only=True, storage_options=opts)
    got = ds["x"].numpy()
    assert isinstance(got, list) and len(got) == 5
    for a, b in zip(got, samples):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ds["x"][3].numpy(), samples[3])
    assert ds["x"].num_chunks >= 10 + 4  # the big samples span several chunks


def test_objects_scale_with_bytes_not_samples(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("v", dtype="float32", chunk_bytes=1 << 20)
    ds.extend({"v": np.random.default_rng(0).random((20_000, 64), np.float32)})  # 5 MiB
    ds.flush()
    chunks = list(open_store(tmp_path / "ds").list("chunks/"))
    assert len(chunks) == 5
    total = list(open_store(tmp_path / "ds").list(""))
    assert len(total) <= len(chunks) + 8  # + dataset.json, refs, states, parts


def test_lookup_index_is_compact() -> None:
    ds = plane.create("mem://")
    ds.create_tensor("v", dtype="uint8", chunk_bytes=1024)
    ds.extend({"v": np.random.default_rng(0).integers(0, 255, (100_000, 16), np.uint8)})
    ds.flush()
    idx = ds._ws.writer("v").index
    assert idx.num_entries == -(-100_000 * 16 // 1024)
    assert len(set(idx.keys)) == idx.num_entries
    assert len(json.dumps(idx.to_dict())) < idx.num_entries * 24  # ~bytes per chunk, not row
    pos = np.array([0, 63, 64, 99_999])
    ent, local = idx.locate(pos)
    assert ent.tolist() == [0, 0, 1, 1562] and local.tolist() == [0, 63, 0, 31]


def test_indexing_forms() -> None:
    ds = plane.create("mem://")
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(100)})
    assert ds["v"][-1].numpy() == 99
    np.testing.assert_array_equal(ds["v"][::10].numpy(), np.arange(0, 100, 10))
    np.testing.assert_array_equal(ds["v"][np.arange(100) % 7 == 0].numpy(), np.arange(0, 100, 7))
    np.testing.assert_array_equal(ds[10:50][5:8]["v"].numpy(), [15, 16, 17])
    np.testing.assert_array_equal(ds["v"][[-1, 0]].numpy(), [99, 0])
    assert [int(r["v"].numpy()) for r in ds[95:]] == [95, 96, 97, 98, 99]
    with pytest.raises(IndexError, match="out of range"):
        ds[100]
    with pytest.raises(IndexError, match="cannot index"):
        ds[1.5]


def test_writer_sees_unflushed_rows_others_do_not() -> None:
    ds = plane.create("mem://unflushed")
    ds.create_tensor("v", dtype="int32")
    ds.flush()
    ds.extend({"v": [1, 2, 3]})
    assert ds["v"].numpy().tolist() == [1, 2, 3]
    assert len(plane.open("mem://unflushed")) == 0
    ds.append({"v": 4})  # appends after a read reopen the sealed tail chunk
    ds.flush()
    assert ds["v"].num_chunks == 1
    assert plane.open("mem://unflushed")["v"].numpy().tolist() == [1, 2, 3, 4]
    plane.storage.MemoryStore.drop("unflushed")


def test_tensor_created_late_reads_null(tmp_path: Any) -> None:
    """Rows that existed before a tensor are null in it (issue #15 item 5); the stored
    empty samples are the masked array's data."""
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("a", dtype="int32")
    ds.extend({"a": [1, 2]})
    ds.create_tensor("t", htype="text")
    ds.create_tensor("f", dtype="float32", shape=(2,))
    ds.append({"a": 3, "t": "x", "f": [1, 2]})
    ds.flush()
    ds = plane.open(tmp_path / "d")
    assert ds["t"].numpy() == [None, None, "x"]
    f = ds["f"].numpy()
    np.testing.assert_array_equal(f.data, [[0, 0], [0, 0], [1, 2]])
    assert f.mask.tolist() == [[True, True], [True, True], [False, False]]


def test_two_writers_both_land(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    a = plane.create(url, storage_options=opts)
    a.create_tensor("v", dtype="int64")
    a.flush()
    b = plane.open(url, storage_options=opts)
    a.extend({"v": [1, 2]})
    b.extend({"v": [10, 20, 30]})
    a.flush()
    b.flush()  # loses the race, rebases its rows on top of a's
    got = plane.open(url, storage_options=opts)
    assert sorted(got["v"].numpy().tolist()) == [1, 2, 10, 20, 30]
    assert len(set(got.row_ids.tolist())) == 5


def test_corrupt_chunk_names_it(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    _make(url, opts, n=40)
    store = open_store(url, opts)
    key = next(iter(store.list("chunks/")))
    data = bytearray(store.get(key))
    data[len(data) // 3] ^= 0xFF
    store.put(key, bytes(data))
    ds = plane.open(url, read_only=True, storage_options=opts)
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1][:12]):
        for name in ds.tensors:
            ds[name].numpy()


def test_corrupt_sample_caught_on_range_read(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("img", htype="image")
    ds.extend({"img": _images(10, hw=32)})
    ds.flush()
    store = open_store(tmp_path / "d")
    key = next(iter(store.list("chunks/")))
    data = bytearray(store.get(key))
    data[3 * 32 * 32 * 3 + 5] ^= 0xFF  # inside sample 3
    store.put(key, bytes(data))
    fresh = plane.open(tmp_path / "d", read_only=True)
    np.testing.assert_array_equal(fresh["img"][1].numpy(), _images(10, hw=32)[1])
    with pytest.raises(plane.ChecksumError, match="sample 3 fails its checksum"):
        fresh["img"][3].numpy()


def test_single_sample_read_uses_ranges(tmp_path: Any) -> None:
    from plane.storage import LocalStore
    from plane.testing import FaultyStore

    ds = plane.create(tmp_path / "d")
    ds.create_tensor("img", htype="image")
    ds.extend({"img": _images(200, hw=32)})
    ds.flush()

    class Counting(FaultyStore):
        gets: list[str] = []
        ranges: list[tuple[int, int]] = []

        def get(self, key: str) -> bytes:
            self.gets.append(key)
            return super().get(key)

        def get_range(self, key: str, start: int, end: int) -> bytes:
            self.ranges.append((start, end))
            return super().get_range(key, start, end)

    store = Counting(LocalStore(tmp_path / "d"))
    fresh = plane.open(store, read_only=True)
    np.testing.assert_array_equal(fresh["img"][150].numpy(), _images(200, hw=32)[150])
    assert not [k for k in store.gets if k.startswith("chunks/")]
    assert sum(e - s for s, e in store.ranges) < 64 << 10


def test_not_a_dataset_and_format_version(tmp_path: Any) -> None:
    with pytest.raises(plane.DatasetNotFoundError, match="plane.create"):
        plane.open(tmp_path / "nothing")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("hi")
    with pytest.raises(plane.DatasetExistsError, match="not empty"):
        plane.create(tmp_path / "junk")
    ds = plane.create(tmp_path / "d")
    with pytest.raises(plane.DatasetExistsError, match="overwrite=True"):
        plane.create(tmp_path / "d")
    ds.create_tensor("a")
    ds.flush()
    assert list(plane.create(tmp_path / "d", overwrite=True).tensors) == []
    from plane.core._layout import DATASET_KEY, FORMAT_VERSION
    from plane.format._hash import seal

    store = open_store(tmp_path / "d")
    store.put(DATASET_KEY, seal(json.dumps({"format": "tensorplane",
                                            "format_version": FORMAT_VERSION + 1}).encode()))
    with pytest.raises(plane.FormatVersionError, match="pip install -U tensorplane"):
        plane.open(tmp_path / "d")


def test_large_contiguous_read_verifies_chunks(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("v", dtype="float32", shape=(64,), chunk_bytes=64 << 10)
    data = np.random.default_rng(0).random((2000, 64), np.float32)
    ds.extend({"v": data})
    ds.flush()
    fresh = plane.open(tmp_path / "d", read_only=True)
    np.testing.assert_array_equal(fresh["v"][100:1900].numpy(), data[100:1900])
    store = open_store(tmp_path / "d")
    key = sorted(store.list("chunks/"))[3]
    raw = bytearray(store.get(key))
    raw[100] ^= 0x01
    store.put(key, bytes(raw))
    fresh = plane.open(tmp_path / "d", read_only=True)
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
        fresh["v"][0:2000].numpy()


def test_summary_returns_the_table_without_printing_it(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """summary() printed and returned the text, so a REPL showed it twice (#15 item 11)."""
    ds = plane.create("mem://summary-once")
    ds.create_tensor("labels", htype="class_label")
    text = ds.summary()
    assert capsys.readouterr().out == ""
    assert "labels" in text and "class_label" in text
    assert repr(text) == str(text)  # a REPL shows the table itself, once


def test_loader_search_and_versions_have_readable_reprs() -> None:
    ds = plane.create("mem://reprs")
    ds.create_tensor("x", dtype="int64")
    ds.extend({"x": [1, 2, 3]})
    ds.commit("c")
    loader = ds.numpy(batch_size=2, seed=7)
    assert repr(loader).startswith("Loader(numpy, mem://reprs") and "batch_size=2" in repr(loader)
    assert "seed=7" in repr(loader) and "epoch=0" in repr(loader)
    s = ds.search().where("x > 1")
    assert repr(s).startswith("Search(mem://reprs, 1 filter(s), 0 ranking(s), limit=10")
    assert repr(ds.versions) == "VersionControl(mem://reprs, at 'main')"
