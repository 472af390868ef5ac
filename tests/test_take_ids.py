"""ds.take_ids: rows by stable row id, in the given order (diff, merge and query speak ids)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plane
from plane.storage import MemoryStore


def _ds(path: Path | str, n: int = 10) -> plane.Dataset:
    ds = plane.create(path)
    ds.create_tensor("x", dtype="int64")
    ds.create_tensor("t", htype="text")
    ds.extend({"x": np.arange(n), "t": [f"r{i}" for i in range(n)]})
    return ds


def test_take_ids_gives_those_rows_in_the_given_order(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ids = ds.row_ids
    view = ds.take_ids(ids[[7, 2, 2, 9]])
    assert view.positions.tolist() == [7, 2, 2, 9]
    assert view["x"].numpy().tolist() == [7, 2, 2, 9]
    assert view["t"].numpy() == ["r7", "r2", "r2", "r9"]
    assert len(ds.take_ids([])) == 0
    assert ds.take_ids(int(ids[4]))["x"].numpy().tolist() == [4]  # one id
    assert ds.take_ids(ids.tolist())["x"].numpy().tolist() == list(range(10))


def test_take_ids_after_deletes_gives_the_logical_positions(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ids = ds.row_ids
    ds.delete([0, 3, 4])
    view = ds.take_ids(ids[[9, 5, 1]])
    assert view.positions.tolist() == [6, 2, 0]
    assert view["x"].numpy().tolist() == [9, 5, 1]


def test_unknown_or_deleted_ids_raise_naming_them_and_change_nothing(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("ten")
    ids = ds.row_ids
    ds.delete([3])
    with pytest.raises(plane.RowNotFoundError, match=f"1 row id\\(s\\).*: {ids[3]} ") as e:
        ds.take_ids([ids[0], ids[3]])
    assert isinstance(e.value, KeyError) and "deleted" in str(e.value)
    missing = [int(ids.max()) + 1 + i for i in range(7)]
    with pytest.raises(KeyError, match=r"7 row id\(s\).*: " + ", ".join(map(str, missing[:5]))
                       + r" \.\.\."):
        ds.take_ids([ids[1], *missing])
    with pytest.raises(plane.InvalidArgumentError, match="1-d sequence of integers"):
        ds.take_ids([1.5, 2.0])
    with pytest.raises(plane.InvalidArgumentError, match="1-d sequence of integers"):
        ds.take_ids([[int(ids[0])]])
    assert len(ds) == 9 and ds["x"].numpy().tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9]


def test_take_ids_follows_a_diff_and_a_query(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    base = ds.commit("base")
    ds.extend({"x": [100, 101], "t": ["new", "newer"]})
    ds["x"][2] = 42
    head = ds.commit("more")
    d = ds.diff(base, head)
    assert ds.take_ids(d.rows_added)["t"].numpy() == ["new", "newer"]
    assert ds.take_ids(d.tensors["x"].updated)["x"].numpy().tolist() == [42]
    res = ds.query("SELECT x WHERE x >= 100")
    assert ds.take_ids(res.ids)["t"].numpy() == ["new", "newer"]


def test_take_ids_on_a_checked_out_commit_uses_that_version(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d", 4)
    first = ds.commit("four")
    old_ids = ds.row_ids
    ds.delete([0])
    ds.commit("three")
    with pytest.raises(plane.RowNotFoundError):
        ds.take_ids(old_ids[:1])
    ds.checkout(first)
    assert ds.take_ids(old_ids[:1])["x"].numpy().tolist() == [0]


def test_take_ids_across_many_id_runs_is_fast(tmp_path: Path) -> None:
    """A merge carries the other side's ids, so the id runs can be many: the lookup stays a
    binary search (no per-call dict of every id)."""
    n = 200_000
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("x", dtype="int64")
    ds.extend({"x": np.arange(n)})
    ds.commit("base")
    ds.delete(np.arange(0, n, 3))  # a third of the rows gone
    live = ds.row_ids
    rng = np.random.default_rng(0)
    want = rng.permutation(live.shape[0])[:100_000]
    t0 = time.perf_counter()
    view = ds.take_ids(live[want])
    took = time.perf_counter() - t0
    assert np.array_equal(view.positions, want)
    assert took < 2.0, f"take_ids of 100k ids took {took:.2f} s"


_ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 7)),
    st.tuples(st.just("delete"), st.integers(0, 1000)),
    st.tuples(st.just("commit"), st.just(0)),
), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None)
@given(ops=_ops, data=st.data())
def test_take_ids_of_permuted_row_ids_equals_indexing_by_position(
        ops: list[tuple[str, int]], data: st.DataObject) -> None:
    name = f"take-{uuid.uuid4().hex}"
    try:
        ds = plane.create(f"mem://{name}")
        ds.create_tensor("x", dtype="int64")
        counter = 0
        for op, arg in ops:
            if op == "append":
                ds.extend({"x": np.arange(counter, counter + arg)})
                counter += arg
            elif op == "delete" and len(ds):
                ds.delete([arg % len(ds)])
            elif op == "commit" and ds.has_changes:
                ds.commit("step")
        n = len(ds)
        perm = np.asarray(data.draw(st.permutations(list(range(n)))), np.int64) if n \
            else np.zeros(0, np.int64)
        view = ds.take_ids(ds.row_ids[perm])
        assert np.array_equal(view.positions, perm)
        assert view["x"].tolist() == ds[perm]["x"].tolist()
    finally:
        MemoryStore.drop(name)


def test_positions_of_many_shuffled_runs_matches_a_dict(tmp_path: Path) -> None:
    """Row-id runs out of order (merges carry the other side's ids) and deleted rows: the
    run search agrees with a plain id -> position dict."""
    from plane.core._rowmap import positions_of
    from plane.core._snapshot import Snapshot
    from plane.core._state import RowIds, State

    rng = np.random.default_rng(1)
    starts = rng.choice(10**12, 30_000, replace=False) * 1000  # far apart: never adjacent
    lengths = rng.integers(1, 8, starts.shape[0])
    rid = RowIds([int(s) for s in starts], [int(n) for n in lengths])
    physical = int(lengths.sum())
    deleted = np.sort(rng.choice(physical, physical // 4, replace=False)).astype(np.int64)
    snap = Snapshot(MemoryStore(), None, State({}, physical, rid, deleted), {}, info={})
    live_ids = rid.take(np.setdiff1d(np.arange(physical), deleted))
    oracle = {int(i): p for p, i in enumerate(live_ids)}
    want = rng.permutation(live_ids)[:50_000]
    t0 = time.perf_counter()
    got = positions_of(snap, want)
    took = time.perf_counter() - t0
    assert got.tolist() == [oracle[int(i)] for i in want]
    assert took < 1.0, f"50k ids over 30k runs took {took:.2f} s"
    gone = rid.take(deleted[:3])
    with pytest.raises(plane.RowNotFoundError, match=str(int(gone[0]))):
        positions_of(snap, np.concatenate([want[:2], gone]))
