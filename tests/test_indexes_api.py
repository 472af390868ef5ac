"""ds.indexes: list, look up, drop (versioned) and optimize the indexes of a version."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import plane
from plane.dataset import IndexEntry


def _ds(path: Path, n: int = 8) -> plane.Dataset:
    rng = np.random.default_rng(0)
    ds = plane.create(path)
    ds.create_tensor("emb", htype="embedding", shape=(4,))
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("w", dtype="int32")
    ds.extend({"emb": rng.standard_normal((n, 4)).astype("f4"),
               "caption": [f"red car {i}" if i % 2 else f"blue bike {i}" for i in range(n)],
               "w": np.arange(n, dtype="i4")})
    ds.commit("rows")
    return ds


_SQL = "SELECT w ORDER BY COSINE_SIMILARITY(emb, $q) DESC LIMIT 3"


def test_indexes_list_their_name_tensor_kind_metric_rows_and_staleness(tmp_path: Path
                                                                        ) -> None:
    ds = _ds(tmp_path / "d")
    assert list(ds.indexes) == [] and len(ds.indexes) == 0 and "Indexes(none)" == repr(
        ds.indexes)
    ds.create_index("emb", kind="flat", metric="l2")
    ds.create_index("caption", kind="bm25")
    entries = list(ds.indexes)
    assert [e.name for e in entries] == ["caption/bm25", "emb/flat"] == ds.indexes.names()
    e = ds.indexes["emb/flat"]
    assert isinstance(e, IndexEntry)
    assert (e.tensor, e.kind, e.metric, e.rows, e.commit, e.stale) == (
        "emb", "flat", "l2", 8, ds.commit_id, False)
    assert ds.indexes[1] == e and "emb/flat" in ds.indexes and len(ds.indexes) == 2
    assert "emb/flat: flat (l2) on 'emb', 8 rows" in repr(ds.indexes)
    ds["w"][0] = 100  # another tensor changed: the emb index still covers every emb row
    ds.commit("w only")
    assert ds.indexes["emb/flat"].commit != ds.commit_id and not ds.indexes["emb/flat"].stale
    ds.extend({"emb": [np.ones(4, "f4")], "caption": ["x"], "w": [8]})
    assert ds.indexes["emb/flat"].stale  # pending rows count too
    ds.commit("one more")
    assert ds.indexes["emb/flat"].stale and ds.indexes["emb/flat"].rows == 8
    built = ds.indexes.optimize("emb")
    assert [(i.tensor, i.kind, i.rows) for i in built] == [("emb", "flat", 9)]
    assert not ds.indexes["emb/flat"].stale and ds.indexes["caption/bm25"].stale
    assert ds.indexes.optimize("emb") == []  # nothing older left


def test_a_bad_index_name_lists_the_indexes(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.create_index("emb", kind="flat")
    with pytest.raises(plane.IndexNotFoundError,
                       match="no index 'emb'.*'<tensor>/<kind>'.*'emb/hnsw'.*indexes: "
                       "'emb/flat'") as e:
        ds.indexes["emb"]
    assert isinstance(e.value, KeyError)
    with pytest.raises(KeyError, match="indexes: 'emb/flat'"):
        ds.indexes.drop("emb/hnsw")
    assert not ds.has_changes and ds.indexes.names() == ["emb/flat"]


def test_drop_is_versioned_and_deletes_nothing(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.create_index("emb", kind="flat")
    indexed = ds.commit_id
    q = {"q": np.ones(4, "f4")}
    assert "flat index" in ds.explain(_SQL, q)
    before = set(ds.store.list(""))
    want = ds.query(_SQL, q)["w"].tolist()
    ds.indexes.drop("emb/flat")
    assert ds.indexes.names() == [] and ds.has_changes
    assert "flat index" not in ds.explain(_SQL, q)
    assert ds.query(_SQL, q)["w"].tolist() == want  # exact search: same answer
    dropped = ds.commit("drop the index")
    assert set(ds.store.list("indexes/")) == {k for k in before if k.startswith("indexes/")}
    assert plane.open(tmp_path / "d").indexes.names() == []
    ds.checkout(indexed)  # the older version still uses it
    assert ds.indexes.names() == ["emb/flat"]
    assert "flat index" in ds.explain(_SQL, q)
    ds.checkout("main")
    assert ds.commit_id == dropped
    ds.create_index("emb", kind="flat")  # built again: used from this commit on
    assert ds.indexes.names() == ["emb/flat"] and ds.indexes["emb/flat"].commit == dropped


def test_drop_is_refused_read_only(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.create_index("emb", kind="flat")
    ro = plane.open(tmp_path / "d", read_only=True)
    with pytest.raises(plane.ReadOnlyError, match="drop index 'emb/flat'"):
        ro.indexes.drop("emb/flat")
    assert ro.indexes.names() == ["emb/flat"]


def test_a_drop_on_one_branch_leaves_the_other(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.create_index("emb", kind="flat")
    ds.branch("keep")
    ds.indexes.drop("emb/flat")
    ds.commit("drop on main")
    ds.checkout("keep")
    assert ds.indexes.names() == ["emb/flat"]
    ds.checkout("main")
    assert ds.indexes.names() == []


def test_the_facade_moved_optimize_index_and_apply_fragments() -> None:
    public = {n for n in vars(plane.Dataset) if not n.startswith("_")
              and callable(getattr(plane.Dataset, n))}
    assert {"rename_tensor", "take_ids"} <= public
    assert not {"optimize_index", "apply_fragments", "drop_index"} & public
    assert callable(plane.apply_fragments)


def test_a_merge_carries_a_drop_and_a_drop_follows_a_rename(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.create_index("emb", kind="flat")
    ds.create_index("caption", kind="bm25")
    ds.checkout("cleanup", create=True)
    ds.indexes.drop("caption/bm25")
    ds.commit("drop bm25")
    ds.checkout("main")
    ds.extend({"emb": [np.ones(4, "f4")], "caption": ["x"], "w": [8]})
    ds.commit("main moves on")
    assert ds.indexes.names() == ["caption/bm25", "emb/flat"]
    ds.merge("cleanup")
    assert ds.indexes.names() == ["emb/flat"]
    ds.rename_tensor("emb", "vec")
    assert ds.indexes.names() == ["vec/flat"]
    ds.indexes.drop("vec/flat")  # hides the ref made under the former name
    ds.commit("rename and drop")
    assert ds.indexes.names() == []
    assert "flat index" not in ds.explain(_SQL.replace("emb", "vec"), {"q": np.ones(4, "f4")})
