"""Everything that steers a read is verified before use (format version 3): chunk footers by
their own checksum on every path that reads them alone, index partitions against their
content address, index refs and views by their seal. Damage is a ChecksumError naming the
object, never a wrong answer."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane
from plane.format._chunk import encode_chunk, parse_footer
from plane.format._hash import seal
from plane.query._indexes import list_indexes
from plane.storage import LocalStore, WrapperStore


class _Remote(WrapperStore):
    """A local store seen as remote (no local buffers): single rows are range reads."""

    @property
    def local_buffers(self) -> bool:  # type: ignore[override]
        return False


def _footer_start(data: bytes | bytearray) -> int:
    return len(data) - 8 - int.from_bytes(data[-8:-4], "little")


def test_every_bit_of_a_footer_is_covered() -> None:
    """Flipping any bit after the payload (footer, its checksum, length, magic) is refused
    when the footer is parsed alone, as a range read parses it."""
    shapes = np.array([[3, 4], [5, 4], [2, 4]], np.int64)
    offsets = np.array([0, 48, 128, 160], np.int64)
    data = encode_chunk(bytes(range(160)), shapes, offsets, compress=False, tile=(0, 1))
    f = parse_footer(data, len(data), "c")
    assert f.shapes.tolist() == shapes.tolist() and f.offsets.tolist() == offsets.tolist()
    start = _footer_start(data)
    assert data[start] == 2  # footer version 2: it carries its own checksum
    for at in range(start, len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[at] ^= 1 << bit
            with pytest.raises(plane.ChecksumError, match="chunk c "):
                parse_footer(bad, len(bad), "c")


def _dataset(path: Path) -> tuple[str, bytearray]:
    """Rows of shape (100 or 50..54, 6); returns the key and bytes of the chunk holding
    row 0."""
    rng = np.random.default_rng(0)
    xs = [rng.random((100 if i == 0 else 50 + i % 5, 6), dtype=np.float32) for i in range(40)]
    ds = plane.create(path)
    ds.create_tensor("x", dtype="float32", shape=(None, 6), chunk_bytes=4096)
    ds.extend({"x": xs})
    ds.commit("x")
    key = "chunks/" + ds._ws.writer("x").index.entry_keys(0)[0]
    return key, bytearray(LocalStore(path).get(key))


def _every_read(path: Path) -> dict[str, Any]:
    """Each way of reading row 0 of x, on a fresh remote-like dataset each time."""
    def fresh() -> plane.Dataset:
        return plane.open(_Remote(LocalStore(path)), read_only=True)

    return {"row": lambda: fresh()["x"][0].numpy(),
            "shape": lambda: fresh()["x"][0].shape,
            "shapes": lambda: fresh()["x"].shape,
            "SHAPE()": lambda: fresh().query("SELECT id WHERE SHAPE(x)[0] >= 100").ids,
            "whole": lambda: fresh()["x"][:].numpy(aslist=True),
            "local row": lambda: plane.open(path, read_only=True)["x"][0].numpy(),
            "loader": lambda: list(plane.open(path, read_only=True).numpy(batch_size=40))}


def test_damaged_footer_is_refused_on_every_read_path(tmp_path: Path) -> None:
    """Issue #12 item 2: one bit in a footer's shape made row 0 read as (96, 6), not
    (100, 6), and a SHAPE() filter drop it, with no error."""
    path = tmp_path / "d"
    key, data = _dataset(path)
    reads = _every_read(path)
    assert reads["row"]().shape == (100, 6) and reads["shape"]() == (100, 6)
    assert reads["SHAPE()"]().shape == (1,)
    data[_footer_start(data) + 16] ^= 0x04  # the first sample's first dimension
    LocalStore(path).put(key, bytes(data))
    for read in reads.values():
        with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
            read()


def test_footer_without_its_checksum_is_refused(tmp_path: Path) -> None:
    """A format-3 dataset's footer claiming version 1 (no checksum) is damage, not legacy."""
    path = tmp_path / "d"
    key, data = _dataset(path)
    data[_footer_start(data)] = 1
    LocalStore(path).put(key, bytes(data))
    for read in _every_read(path).values():
        with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
            read()


def _indexed(path: Path) -> plane.Dataset:
    ds = plane.create(path)
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.create_tensor("w", dtype="int32")
    ds.create_tensor("embedding", htype="embedding", dtype="float32")
    n = 300
    ds.extend({"caption": [f"a {'cat' if i % 3 else 'dog'} {i}" for i in range(n)],
               "labels": [i % 2 for i in range(n)], "w": list(range(n)),
               "embedding": np.random.default_rng(1).random((n, 8), np.float32)})
    ds.commit("rows")
    for t, k in [("caption", "bm25"), ("labels", "btree"), ("w", "minmax"),
                 ("embedding", "flat")]:
        ds.create_index(t, kind=k)
    ds.query("SELECT id WHERE w < 7").save("small")
    return ds


_QUERIES = {"bm25": "SELECT id WHERE CONTAINS(caption, 'dog')",
            "btree": "SELECT id WHERE labels = 'dog'",
            "minmax": "SELECT id WHERE w > 250",
            "flat": "SELECT id ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 5"}


def _query(path: Path, kind: str) -> Any:
    return plane.open(path, read_only=True).query(_QUERIES[kind],
                                                  params={"q": np.ones(8, np.float32)}).ids


@pytest.mark.parametrize("kind", sorted(_QUERIES))
def test_damaged_index_partition_is_refused(tmp_path: Path, kind: str) -> None:
    """Issue #12 item 3: a flipped bit in a BM25 partition changed CONTAINS results; btree
    partitions gave raw BadZipFile / ValueError."""
    path = tmp_path / "d"
    ds = _indexed(path)
    key = next(i for i in list_indexes(ds) if i.kind == kind).partitions[0]["key"]
    used = {"bm25": "bm25 index", "btree": "btree index", "minmax": "minmax statistics",
            "flat": "flat index"}[kind]
    assert used in ds.explain(_QUERIES[kind], params={"q": np.ones(8, np.float32)})
    data = LocalStore(path).get(key)
    for at in (len(data) // 2, len(data) - 30):
        copy = tmp_path / f"at{at}"  # a partition once loaded is kept per store and key
        shutil.copytree(path, copy)
        bad = bytearray(data)
        bad[at] ^= 0x10
        LocalStore(copy).put(key, bytes(bad))
        with pytest.raises(plane.ChecksumError, match=key):
            _query(copy, kind)
    assert len(_query(path, kind))


def test_index_refs_and_views_are_sealed(tmp_path: Path) -> None:
    """Damaged index refs and views gave raw JSONDecodeError / KeyError /
    UnicodeDecodeError; now a ChecksumError naming the object."""
    path = tmp_path / "d"
    _indexed(path)
    store = LocalStore(path)
    ref = next(k for k in store.list("indexes/refs/caption/"))
    data = store.get(ref)
    assert data.startswith(b"{") and b"#xxh3-128:" in data
    for bad in (data[:-3], data.replace(b"manifest", b"manifesT"), b"\xff" + data[1:],
                b'{"manifest": "indexes/x.json"}'):
        store.put(ref, bad)
        with pytest.raises(plane.ChecksumError, match=ref):
            _query(path, "bm25")
    # a well-sealed ref naming another index's manifest is refused too
    other = store.get(next(k for k in store.list("indexes/refs/labels/")))
    store.put(ref, other)
    with pytest.raises(plane.ChecksumError, match="not a bm25 index of 'caption'"):
        _query(path, "bm25")
    store.put(ref, data)
    view = store.get("views/small.json")
    assert len(plane.load_view(plane.open(path, read_only=True), "small")) == 7
    for bad in (view[:-1], view.replace(b'"commit"', b'"commiT"'), b"[]" + view[2:],
                seal(b"[1, 2]")):
        store.put("views/small.json", bad)
        with pytest.raises(plane.ChecksumError, match="views/small.json"):
            plane.load_view(plane.open(path, read_only=True), "small")
    with pytest.raises(plane.PlaneError, match="no view 'nope'.*small"):
        plane.load_view(plane.open(path, read_only=True), "nope")
