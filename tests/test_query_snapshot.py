"""Queries read a Snapshot: views stream, pending writes are read without being published,
derived data is kept per version, and a pickled Snapshot queries like the dataset."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane
from plane.query import _exec, _indexes, run_sql


def _make(path: Path, n: int = 40) -> plane.Dataset:
    ds = plane.create(path)
    ds.create_tensor("width", dtype="int64")
    ds.create_tensor("caption", htype="text")
    ds.extend({"width": np.arange(n, dtype=np.int64), "caption": [f"row {i}" for i in range(n)]})
    ds.commit("data")
    return ds


def _streamed(loader: Any) -> list[int]:
    return sorted(int(x) for b in loader for x in np.asarray(b["width"]).reshape(-1))


@pytest.mark.parametrize("read_only", [False, True])
def test_a_query_view_of_a_committed_dataset_streams(tmp_path: Path, read_only: bool) -> None:
    pytest.importorskip("torch")
    _make(tmp_path / "d")
    ds = plane.open(tmp_path / "d", read_only=read_only)
    res = ds.query("SELECT id, width WHERE width > 30 LIMIT 5")
    assert res["width"].tolist() == [31, 32, 33, 34, 35]
    batches = list(res.pytorch(batch_size=2))
    assert [len(b["width"]) for b in batches] == [2, 2, 1]
    assert _streamed(batches) == [31, 32, 33, 34, 35]
    found = ds.search().where("width < 3").limit(10).run()
    assert _streamed(found.pytorch(batch_size=2)) == [0, 1, 2]
    assert _streamed(found.numpy(batch_size=2)) == [0, 1, 2]


def test_a_query_reads_pending_writes_without_publishing_them(tmp_path: Path) -> None:
    ds = _make(tmp_path / "d")
    head = ds.commit_id
    ds.extend({"width": [100, 101], "caption": ["new a", "new b"]})
    res = ds.query("SELECT width WHERE width >= 100")
    assert sorted(res["width"].tolist()) == [100, 101]
    assert res.commit_id is None  # an uncommitted version
    other = plane.open(tmp_path / "d")
    assert len(other) == 40 and len(other.query("SELECT width WHERE width >= 100")) == 0
    assert ds.has_changes and ds.commit_id == head and len(ds) == 42
    ds.flush()  # publishing is still the writer's call
    assert len(plane.open(tmp_path / "d")) == 42


def test_a_view_of_pending_writes_is_not_saved(tmp_path: Path) -> None:
    ds = _make(tmp_path / "d")
    ds.extend({"width": [100], "caption": ["new"]})
    res = ds.query("SELECT width WHERE width >= 100")
    with pytest.raises(plane.PlaneError, match="commit the dataset first"):
        res.save("pending")
    assert list(ds.store.list("views/")) == []
    ds.commit("more")
    key = ds.query("SELECT width WHERE width >= 100").save("committed")
    assert key == "views/committed.json"
    again = plane.load_view(plane.open(tmp_path / "d", read_only=True), "committed")
    assert again["width"].tolist() == [100] and again.commit_id == ds.commit_id
    assert plane.load_view(ds.snapshot(), "committed").ids.tolist() == again.ids.tolist()


def test_a_repeated_query_reuses_what_it_derived(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _make(tmp_path / "d", n=200)
    ds.create_index("width", kind="btree")
    ds.extend({"width": [5], "caption": ["five"]})  # pending: rows changed since the index
    calls = {"find": 0, "changed": 0}
    real_find, real_changed = _indexes._find_index, _exec.changed_rows

    def find(*a: Any) -> Any:
        calls["find"] += 1
        return real_find(*a)

    def changed(*a: Any) -> Any:
        calls["changed"] += 1
        return real_changed(*a)

    monkeypatch.setattr(_indexes, "_find_index", find)
    monkeypatch.setattr(_exec, "changed_rows", changed)
    sql = "SELECT width WHERE width = 5"
    first = ds.query(sql)
    assert calls == {"find": 1, "changed": 1} and first["width"].tolist() == [5, 5]
    assert ds.snapshot() is first.snapshot  # unchanged state: the same Snapshot
    assert ds.query(sql).ids.tolist() == first.ids.tolist()
    assert calls == {"find": 1, "changed": 1}  # nothing derived again
    ds.extend({"width": [5], "caption": ["again"]})
    assert len(ds.query(sql)) == 3 and calls == {"find": 2, "changed": 2}
    assert len(first) == 2  # a view keeps its version


def test_a_search_runs_on_the_version_it_is_run_on(tmp_path: Path) -> None:
    ds = _make(tmp_path / "d")
    s = ds.search().where("width >= 40")
    assert len(s.run()) == 0
    ds.extend({"width": [40], "caption": ["forty"]})
    assert s.run()["width"].tolist() == [40]


def test_a_pickled_snapshot_queries_like_the_dataset(tmp_path: Path) -> None:
    ds = _make(tmp_path / "d", n=200)
    ds.create_index("width", kind="btree")
    ds.extend({"width": [5], "caption": ["five"]})
    snap = pickle.loads(pickle.dumps(ds.snapshot()))
    assert snap.commit_id is None and snap.base_commit == ds.commit_id
    sql = "SELECT width WHERE width = 5"
    assert run_sql(snap, sql).ids.tolist() == ds.query(sql).ids.tolist()
    plan = plane.query.explain_sql(snap, sql)
    assert "btree index at commit" in plan and "1 rows changed since" in plan


def test_a_view_of_pending_writes_streams(tmp_path: Path) -> None:
    ds = _make(tmp_path / "d")
    ds.extend({"width": [100], "caption": ["new"]})
    res = ds.query("SELECT width WHERE width >= 100")
    assert _streamed(res.numpy(batch_size=2)) == [100]
    assert ds.has_changes and len(plane.open(tmp_path / "d")) == 40


def test_an_index_of_uncommitted_rows_is_refused_and_nothing_is_written(tmp_path: Path
                                                                        ) -> None:
    ds = _make(tmp_path / "d")
    ds.extend({"width": [100], "caption": ["new"]})
    before = sorted(ds.store.list(""))
    for build in (lambda: ds.create_index("width", kind="btree"), ds.indexes.optimize):
        with pytest.raises(plane.QueryError, match="commit first"):
            build()
    assert sorted(ds.store.list("")) == before and ds.has_changes
    ds.flush()  # durable but not committed: still refused
    with pytest.raises(plane.QueryError, match="commit first"):
        ds.create_index("width", kind="btree")
    ds.commit("more")
    assert ds.create_index("width", kind="btree").commit == ds.commit_id
