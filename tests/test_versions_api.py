"""Versioning through the public API, on every backend: commits, branches, tags, diff, merge."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import plane
from plane.core._layout import FORMAT_VERSION
from plane.storage import open_store


def _base(url: str, opts: Any) -> tuple[plane.Dataset, str]:
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("labels", htype="class_label", class_names=["a", "b", "c"])
    ds.create_tensor("x", dtype="float32", shape=(4,))
    ds.extend({"labels": np.arange(20) % 3, "x": np.arange(80, dtype="f4").reshape(20, 4)})
    return ds, ds.commit("base")


def test_commit_log_time_travel(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    ds, c1 = _base(url, opts)
    ds["labels"][0] = 2
    c2 = ds.commit("relabel 0")
    ds.delete([5])
    c3 = ds.commit("drop 5")
    log = ds.log()
    assert [e["id"] for e in log] == [c3, c2, c1]
    assert log[0]["parents"] == [c2] and log[-1]["parents"] == []
    assert [e["message"] for e in log] == ["drop 5", "relabel 0", "base"]
    ds.tag("v1", c1)
    for version, first, n in ((c1, 0, 20), (c2[:8], 2, 20), ("v1", 0, 20), ("main", 2, 19)):
        old = plane.open(url, version=version, storage_options=opts)
        assert int(old["labels"][0].numpy()) == first and len(old) == n
    assert plane.open(url, version=c1, storage_options=opts).read_only
    with pytest.raises(plane.PlaneError, match="nothing to commit"):
        ds.commit("again")
    assert ds.commit("empty", allow_empty=True) != c3


def test_branch_isolation_and_detached_checkout(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    ds, c1 = _base(url, opts)
    ds.branch("alice")
    ds.checkout("alice")
    ds.extend({"labels": [1], "x": np.zeros((1, 4))})
    ds.commit("alice adds")
    assert len(plane.open(url, storage_options=opts)) == 20  # main untouched
    assert len(plane.open(url, version="alice", storage_options=opts)) == 21
    ds.checkout(c1)
    with pytest.raises(plane.ReadOnlyError, match=r"detached.*ds.branch\(name\)"):
        ds.append({"labels": 0, "x": np.zeros(4)})
    ds.checkout("main")
    with pytest.raises(plane.PlaneError, match="already exists"):
        ds.branch("alice")
    with pytest.raises(plane.PlaneError, match="invalid branch name"):
        ds.branch("bad name")
    with pytest.raises(plane.PlaneError, match="it is checked out"):
        ds.versions.delete_branch("main")
    ds.versions.delete_branch("alice")
    assert ds.versions.branches() == ["main"]
    with pytest.raises(plane.VersionNotFoundError, match="no branch, tag or commit 'alice'"):
        plane.open(url, version="alice", storage_options=opts)


def test_diff_rows_values_and_schema(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    ds, c1 = _base(url, opts)
    ids = ds.row_ids
    ds["labels"][[1, 2]] = [0, 2]   # row 2 already holds 2: not a change
    ds["labels"][3] = "new-class"   # schema change: class_names grows
    ds.delete([4])
    ds.extend({"labels": [0], "x": np.ones((1, 4))})
    ds.create_tensor("note", htype="text")
    c2 = ds.commit("changes")
    d = ds.diff(c1, c2)
    assert set(d.tensors["labels"].updated.tolist()) == {int(ids[1]), int(ids[3])}
    assert d.rows_deleted.tolist() == [int(ids[4])]
    assert d.rows_added.shape[0] == 1 and d.tensors_added == ["note"]
    assert "labels" in d.schema_changed
    assert d.tensors["x"].updated.shape[0] == 0
    vals = {rid: (int(o), int(n)) for rid, o, n in d.values("labels")}
    assert vals[int(ids[1])] == (1, 0)
    assert "rows: +1 -1" in str(d)
    assert not ds.diff()  # working state equals the last commit


def test_diff_before_the_first_commit_on_a_read_only_store(tmp_path: Any) -> None:
    """With no commit yet the base of a diff is the empty version, built in memory: a
    read-only handle can diff too (it raised "no commit to diff against"), and nothing is
    written."""
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": [1, 2, 3]})
    ds.flush()
    ro = plane.open(tmp_path / "d", read_only=True)
    before = sorted(open_store(tmp_path / "d").list(""))
    d = ro.diff()
    assert d.a == "(empty)" and d.tensors_added == ["v"]
    assert d.rows_added.tolist() == sorted(ro.row_ids.tolist())
    assert d.tensors["v"].added.tolist() == ro.row_ids.tolist()
    assert sorted(open_store(tmp_path / "d").list("")) == before


def test_diff_values_of_unflushed_writes() -> None:
    ds = plane.create("mem://")
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": [1, 2, 3]})
    ds.commit("c1")
    ids = ds.row_ids
    ds["v"][1] = 20  # not flushed: the working side of the diff is in memory
    d = ds.diff()
    assert d.b == "working" and d.tensors["v"].updated.tolist() == [int(ids[1])]
    assert [(i, int(o), int(n)) for i, o, n in d.values("v")] == [(int(ids[1]), 2, 20)]


def test_merge_keeps_both_sides_and_reports_conflicts(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    ds, _ = _base(url, opts)
    ds.branch("b")
    ds.checkout("b")
    ds.extend({"labels": [2, 2], "x": np.full((2, 4), 7, "f4")})
    ds["labels"][10] = 0
    ds.create_tensor("score", dtype="float32")
    ds.commit("b work")
    b_ids = set(ds.row_ids.tolist())
    ds.checkout("main")
    ds.extend({"labels": [1], "x": np.zeros((1, 4))})
    ds["labels"][11] = 0
    ds.commit("main work")
    res = ds.merge("b")
    assert res.rows_added == 2 and res.tensors_added == ["score"]
    assert len(ds.log()[0]["parents"]) == 2
    assert len(ds) == 23 and b_ids <= set(ds.row_ids.tolist())
    assert int(ds["labels"][10].numpy()) == 0 and int(ds["labels"][11].numpy()) == 0
    # a row changed differently on both sides is a conflict; nothing changes
    ds.branch("c")
    ds["labels"][0] = 1
    head = ds.commit("main sets 0=b")
    ds.checkout("c")
    ds["labels"][0] = 2
    ds.delete([1])
    ds.commit("c sets 0=c")
    ds.checkout("main")
    with pytest.raises(plane.MergeConflictError, match="both updated") as info:
        ds.merge("c")
    assert list(info.value.conflicts) == ["labels"]
    assert ds.commit_id == head and int(ds["labels"][0].numpy()) == 1
    assert plane.open(url, storage_options=opts).commit_id == head
    ds.merge("c", conflicts="ours")
    assert int(ds["labels"][0].numpy()) == 1 and len(ds) == 22


def test_merge_delete_vs_update_and_fast_forward() -> None:
    ds, _ = _base("mem://", None)
    ds.branch("ff")
    ds.checkout("ff")
    ds["labels"][0] = 1
    ff = ds.commit("ff")
    ds.checkout("main")
    assert ds.merge("ff").fast_forward and ds.commit_id == ff
    assert ds.merge("ff").up_to_date
    ds.branch("d")
    ds.checkout("d")
    ds.delete([2])
    ds.commit("delete row 2")
    ds.checkout("main")
    ds["labels"][2] = 0
    ds.commit("update row 2")
    with pytest.raises(plane.MergeConflictError, match="deleted we updated"):
        ds.merge("d")
    res = ds.merge("d", conflicts="theirs")
    assert res.rows_deleted == 1 and len(ds) == 19


def _ids(ds: plane.Dataset) -> list[int]:
    return [int(i) for i in ds.row_ids]


def test_merge_base_is_the_best_common_ancestor_not_the_nearest() -> None:
    """A short path to an old common ancestor must not hide the newer one it leads to."""
    from plane.version import merge_base, merge_bases

    ds = plane.create("mem://")
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": [0, 1]})
    c0 = ds.commit("c0")
    ds.branch("old")
    ds.extend({"v": [2, 3]})
    ds.commit("c1")
    ds.extend({"v": [4]})
    c3 = ds.commit("c3")
    ds.branch("side")
    ds.branch("b")
    ds.checkout("side")
    for k in range(3):  # a long path from the merge below back to c3
        ds.extend({"v": [10 + k]})
        ds.commit(f"s{k}")
    ds.checkout("old")
    ds.extend({"v": [20]})
    ds.commit("o1")
    ds.merge("side")  # merge commit: c0 is 2 steps away, c3 is 5
    ds.checkout("b")
    gone = _ids(ds)[2]  # a row that c1 added: in c3, not in c0
    ds.delete([2])
    ds.commit("b deletes a c1 row")
    ds.checkout("old")
    store = ds.store
    assert merge_bases(store, ds.commit_id, ds.versions.resolve("b")[1]) == [c3]
    assert merge_base(store, ds.commit_id, ds.versions.resolve("b")[1]) == c3 != c0
    res = ds.merge("b")
    assert res.rows_deleted == 1 and gone not in _ids(ds)
    assert sorted(int(x) for x in ds["v"].numpy()) == [0, 1, 3, 4, 10, 11, 12, 20]


def test_criss_cross_merge_uses_the_newest_best_base() -> None:
    from plane.version import merge_base, merge_bases

    ds = plane.create("mem://")
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": [0, 1, 2]})
    ds.commit("c0")
    ds.branch("x")
    ds["v"][0] = 100
    a1 = ds.commit("a1")
    ds.checkout("x")
    ds["v"][1] = 200
    x1 = ds.commit("x1")
    ds.merge(a1)  # x: merge(x1, a1)
    ds.checkout("main")
    ds.merge(x1)  # main: merge(a1, x1) -- criss-cross: both a1 and x1 are best bases
    ds.checkout("x")
    ds["v"][2] = 300
    ds.commit("x2")
    ds.checkout("main")
    store, theirs = ds.store, ds.versions.resolve("x")[1]
    assert sorted(merge_bases(store, ds.commit_id, theirs)) == sorted([a1, x1])
    newest = max((a1, x1), key=lambda c: ([e["time"] for e in ds.log() if e["id"] == c], c))
    assert merge_base(store, ds.commit_id, theirs) == newest
    ds.merge("x")
    assert [int(x) for x in ds["v"].numpy()] == [100, 200, 300]


def test_one_row_update_writes_a_small_delta(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("label", dtype="int64")
    ds.create_tensor("vec", dtype="float32", shape=(32,))
    n = 50_000
    ds.extend({"label": np.arange(n), "vec": np.random.default_rng(0).random((n, 32), "f4")})
    ds.commit("base")
    store = open_store(tmp_path / "d")
    before = dict((k, s) for k, s, _ in store.list_info(""))
    ds["label"][123] = -1
    ds.commit("one row")
    after = dict((k, s) for k, s, _ in store.list_info(""))
    new = {k: after[k] for k in after if k not in before}
    assert not [k for k in new if k.startswith("chunks/")]  # the small patch is in the part
    assert sorted(k.split("/")[0] for k in new) == ["commits", "parts", "refs", "states"]
    assert sum(new.values()) < 8 * 1024  # one part (with the patch) + state + commit + ref
    assert plane.open(tmp_path / "d")["label"][123].numpy() == -1
    before = set(store.list(""))
    ds["vec"][:100] = np.ones((100, 32), "f4")  # 12.8 KB of values: a patch chunk of its own
    ds.commit("100 rows")
    new_chunks = [k for k in set(store.list("")) - before if k.startswith("chunks/")]
    assert len(new_chunks) == 1 and store.get(new_chunks[0]).__len__() < 16 * 1024
    assert (plane.open(tmp_path / "d")["vec"][:100].numpy() == 1).all()


def test_branch_is_one_small_object(tmp_path: Any) -> None:
    ds, _ = _base(str(tmp_path / "d"), None)
    store = open_store(tmp_path / "d")
    before = set(store.list(""))
    ds.branch("x")
    new = set(store.list("")) - before
    assert len(new) == 1 and len(store.get(new.pop())) < 512


def test_gc_reclaims_deleted_branch_data(tmp_path: Any) -> None:
    ds, _ = _base(str(tmp_path / "d"), None)
    ds.branch("tmp")
    ds.checkout("tmp")
    ds.extend({"labels": np.zeros(5000, int), "x": np.ones((5000, 4))})
    ds.commit("tmp data")
    ds.checkout("main")
    ds.versions.delete_branch("tmp")
    assert plane.gc(tmp_path / "d").unreachable == []  # young objects are kept by default
    dry = plane.gc(tmp_path / "d", older_than=0)
    assert dry.dry_run and any(k.startswith("chunks/") for k in dry.unreachable)
    done = plane.gc(tmp_path / "d", older_than=0, dry_run=False)
    assert sorted(done.unreachable) == sorted(dry.unreachable)
    assert plane.gc(tmp_path / "d", older_than=0).unreachable == []
    again = plane.open(tmp_path / "d")
    assert len(again) == 20 and again["x"].numpy().shape == (20, 4)


def test_format_version_1_datasets_keep_patch_chunks_separate(tmp_path: Any) -> None:
    """Version 1 had no inline patches: such a dataset is read, and updated, in its format."""
    import json

    from plane.format._hash import seal

    ds = plane.create(tmp_path / "d")
    ds.create_tensor("label", dtype="int64")
    ds.extend({"label": np.arange(100)})
    ds.commit("base")
    store = open_store(tmp_path / "d")
    info = {"format": "tensorplane", "format_version": 1, "created": 0.0,
            "default_branch": "main"}
    store.put("dataset.json", seal(json.dumps(info).encode()))
    old = plane.open(tmp_path / "d")
    before = set(store.list("chunks/"))
    old["label"][5] = -5
    old.commit("v1 update")
    assert len(set(store.list("chunks/")) - before) == 1  # a patch chunk, as version 1 wrote
    assert plane.open(tmp_path / "d", read_only=True)["label"][5].numpy() == -5
    info["format_version"] = FORMAT_VERSION + 1
    store.put("dataset.json", seal(json.dumps(info).encode()))
    with pytest.raises(plane.FormatVersionError, match=f"version {FORMAT_VERSION + 1}"):
        plane.open(tmp_path / "d")
