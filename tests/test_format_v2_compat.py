"""A dataset written by format version 2 (tests/data/format_v2.tar.gz, made by
tests/data/make_format_v2.py) still opens, reads, queries through each index and loads its
saved view; writing to it keeps writing version 2's objects."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane
from plane.core._layout import read_dataset_info
from plane.format._chunk import parse_footer
from plane.storage import LocalStore, WrapperStore

FIXTURE = Path(__file__).parent / "data" / "format_v2.tar.gz"


@pytest.fixture
def v2(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(tmp_path, filter="data")
    return tmp_path / "dataset", json.loads((tmp_path / "expected.json").read_text())


class _Remote(WrapperStore):
    """A local store seen as remote: no local buffers, so reads take the remote paths."""

    @property
    def local_buffers(self) -> bool:  # type: ignore[override]
        return False


def _footer_version(data: bytes) -> int:
    flen = int.from_bytes(data[-8:-4], "little")
    return data[len(data) - 8 - flen]


def test_v2_dataset_reads_as_written(v2: tuple[Path, dict[str, Any]]) -> None:
    path, exp = v2
    assert read_dataset_info(LocalStore(path))["format_version"] == 2
    ds = plane.open(path, read_only=True)
    assert len(ds) == exp["main_len"] and ds.commit_id == exp["main_commit"]
    assert ds["labels"][:].numpy().tolist() == exp["labels"]
    assert list(ds["caption"][:].numpy()) == exp["caption"]
    assert ds["x"][5].numpy().tolist() == exp["x5"]
    assert sorted(ds.versions.branches()) == exp["branches"]
    assert sorted(ds.versions.tags()) == exp["tags"]
    # its chunks have footers without a checksum (version 1), read as before
    store = LocalStore(path)
    assert {_footer_version(store.get(k)) for k in store.list("chunks/")} == {1}
    # single rows by range reads, and shapes from footers, on a remote-like store
    remote = plane.open(_Remote(LocalStore(path)), read_only=True)
    xs = ds["x"][:].numpy(aslist=True)
    for i in (0, 5, 17, len(ds) - 1):
        np.testing.assert_array_equal(remote["x"][i].numpy(), xs[i])
        assert plane.open(_Remote(LocalStore(path)), read_only=True)["x"][i].shape == \
            xs[i].shape
    want = [i for i, x in enumerate(xs) if x.shape[0] > 53]
    got = remote.query("SELECT id WHERE SHAPE(x)[0] > 53").ids
    assert got.tolist() == ds.row_ids[want].tolist()


def test_v2_tag_and_branches(v2: tuple[Path, dict[str, Any]]) -> None:
    path, exp = v2
    tagged = plane.open(path, read_only=True, version="v1")
    assert tagged.commit_id == plane.open(path, read_only=True).versions.tags()["v1"]
    assert len(tagged) == exp["main_len"] + 1  # before the delete
    assert tagged["labels"][:].numpy().tolist() == [i % 2 for i in range(60)]
    for b in ("dev", "feature/x"):
        d = plane.open(path, read_only=True, version=b)
        assert len(d) == exp["main_len"] + 1
        assert d["caption"][len(d) - 1].numpy() == "a new cat"
        assert d["labels"][:-1].numpy().tolist() == exp["labels"]


def test_v2_queries_use_each_index(v2: tuple[Path, dict[str, Any]]) -> None:
    path, exp = v2
    ds = plane.open(path, read_only=True)
    ids = ds.row_ids
    labels = np.asarray(exp["labels"])
    cases = {
        "SELECT id WHERE labels = 'cat'": ("btree index", labels == 0),
        "SELECT id WHERE CONTAINS(caption, 'dog')": (
            "bm25 index", np.array(["dog" in c for c in exp["caption"]])),
        "SELECT id WHERE w > 30": ("minmax statistics", ds["w"][:].numpy() > 30),
    }
    for sql, (index, mask) in cases.items():
        assert index in ds.explain(sql), sql
        assert ds.query(sql).ids.tolist() == ids[mask].tolist(), sql
    emb = ds["embedding"][:].numpy()
    q = emb[7]
    sql = "SELECT id ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 3"
    assert "flat index" in ds.explain(sql, params={"q": q})
    sims = emb @ q / np.linalg.norm(emb, axis=1) / np.linalg.norm(q)
    assert ds.query(sql, params={"q": q}).ids.tolist() == ids[np.argsort(-sims)[:3]].tolist()


def test_v2_view_loads(v2: tuple[Path, dict[str, Any]]) -> None:
    path, exp = v2
    ds = plane.open(path, read_only=True)
    view = plane.load_view(ds, "cats")
    cats = ds.row_ids[np.asarray(exp["labels"]) == 0][:5]
    assert view.ids.tolist() == cats.tolist()
    assert view.commit_id == exp["main_commit"]
    assert view["labels"].tolist() == [0] * 5


def test_writing_a_v2_dataset_keeps_v2_objects(v2: tuple[Path, dict[str, Any]]) -> None:
    """Readers of format 2 can still read what this version adds to a format-2 dataset."""
    path, exp = v2
    store = LocalStore(path)
    before = set(store.list(""))
    ds = plane.open(path)
    ds.extend({"images": [ds["images"][0].bytes()], "labels": [1],
               "embedding": np.ones((1, 16), np.float32), "caption": ["a late dog"],
               "meta": [{"i": 99}], "x": [np.full((60, 6), 2, np.float32)], "w": [99]})
    ds["x"][1] = np.zeros((4, 6), np.float32)
    ds.commit("more")
    ds.create_index("caption", kind="bm25")
    ds.query("SELECT id WHERE CONTAINS(caption, 'dog')").save("dogs")
    new = set(store.list("")) - before
    assert read_dataset_info(store)["format_version"] == 2
    chunks = [k for k in new if k.startswith("chunks/")]
    assert chunks and {_footer_version(store.get(k)) for k in chunks} == {1}
    for k in chunks:  # a version-2 reader parses them: footers without a checksum
        data = store.get(k)
        parse_footer(data, len(data), k, need_sum=False)
    ref = next(k for k in new if k.startswith("indexes/refs/"))
    assert set(json.loads(store.get(ref))) == {"manifest"}  # plain JSON, as version 2 wrote
    assert json.loads(store.get("views/dogs.json"))["commit"] == ds.commit_id
    again = plane.open(path, read_only=True)
    assert len(again) == exp["main_len"] + 1
    assert again["x"][1].numpy().shape == (4, 6)
    assert again["x"][len(again) - 1].numpy().tolist() == np.full((60, 6), 2.0).tolist()
    assert len(plane.load_view(again, "dogs")) == sum("dog" in c for c in exp["caption"]) + 1


def test_damaged_v2_index_refs_and_views_are_checksum_errors(
        v2: tuple[Path, dict[str, Any]]) -> None:
    """Format 2 wrote them unsealed: damage that still parses cannot always be seen, but what
    does not parse, or does not fit, is a ChecksumError naming the object (not a raw
    JSONDecodeError / KeyError / UnicodeDecodeError)."""
    path, _ = v2
    store = LocalStore(path)
    view = store.get("views/cats.json")
    for bad in (view[:-2], view.replace(b'"commit"', b'"commiT"'), b"\xff" + view[1:],
                view.replace(b'"scores": null', b'"scores": [1.0]')):
        store.put("views/cats.json", bad)
        with pytest.raises(plane.ChecksumError, match="views/cats.json"):
            plane.load_view(plane.open(path, read_only=True), "cats")
    ref = next(iter(store.list("indexes/refs/caption/")))
    data = store.get(ref)
    other = store.get(next(iter(store.list("indexes/refs/labels/"))))
    for bad in (data[:-2], data.replace(b"manifest", b"manifesT"), b"\xff" + data[1:], other):
        store.put(ref, bad)
        with pytest.raises(plane.ChecksumError, match=ref):
            plane.open(path, read_only=True).query("SELECT id WHERE CONTAINS(caption, 'dog')")



def test_v2_footer_damage_is_a_plane_error_on_range_reads(v2: tuple[Path, dict[str, Any]]
                                                          ) -> None:
    """A version-2 footer has no checksum of its own, so its damage cannot always be seen (the
    v2 guarantee); but a recorded shape that no longer fits the sample's bytes must be a
    ChecksumError on a range read, never a raw ValueError. Every bit-4 flip of one footer of
    the 2-d tensor 'x' is read back on a remote-like store: only PlaneErrors escape."""
    path, _ = v2
    store = LocalStore(path)
    rows = len(plane.open(path, read_only=True))
    key = next(k for k in sorted(store.list("chunks/"))
               if (lambda d: parse_footer(d, len(d), k, need_sum=False).ndim == 2)(store.get(k)))
    data = store.get(key)
    flen = int.from_bytes(data[-8:-4], "little")
    raised = 0
    for i in range(len(data) - 8 - flen, len(data) - 8):
        damaged = bytearray(data)
        damaged[i] ^= 0x10
        (path / key).write_bytes(bytes(damaged))
        remote = plane.open(_Remote(LocalStore(path)), read_only=True)
        try:
            for r in range(rows):
                remote["x"][r].numpy()
        except plane.PlaneError:
            raised += 1
    (path / key).write_bytes(data)
    assert raised > 0


def test_v2_unchanged_state_keeps_its_key(v2: tuple[Path, dict[str, Any]]) -> None:
    """States record their dataset's version: an unchanged working state of a version-2
    dataset is its commit's state, so a no-op flush writes nothing, an empty commit is refused
    and a merge does not see uncommitted changes (with version 3 states it did all three)."""
    path, exp = v2
    store = LocalStore(path)
    before = set(store.list(""))
    ds = plane.open(path)
    ds.flush()
    assert not ds.has_changes and set(store.list("")) == before
    with pytest.raises(plane.PlaneError, match="nothing to commit"):
        ds.commit("nothing")
    res = ds.merge("dev")
    assert len(ds) == exp["main_len"] + 1 and res is not None
    ds["w"][0] = 5
    ds.commit("an edit")
    new_states = {k for k in store.list("states/")} - before
    assert new_states and {json.loads(store.get(k))["format_version"] for k in new_states} == {2}
