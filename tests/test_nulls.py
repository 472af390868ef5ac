"""Missing values (issue #15 item 5): Arrow-style validity per tensor.

`None` is a null in every htype, a tensor created on existing rows is null in them, and the
null rows read as None / masked, answer `IS NULL`, stay out of comparisons, loaders and vector
search, and travel through commits, branches, merges, rebases, deletes and fragments.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
from plane.core._layout import PARTS, STATES, get_cas_json, put_cas_json
from plane.core._snapshot import Snapshot
from plane.core._state import State, TensorPart


def _five(tmp_path: Path) -> plane.Dataset:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("id", dtype="int64")
    ds.extend({"id": [0, 1, 2, 3, 4]})
    return ds


def _count(ds: plane.Dataset, where: str) -> int:
    return len(ds.query(f"SELECT id WHERE {where}"))


def test_tensor_added_later_reads_null_not_zeros(tmp_path: Path) -> None:
    """The issue's reproduction: [[], [], ...] and then [0, 0, 0, 0, 0, 3]."""
    ds = _five(tmp_path)
    ds.create_tensor("x")
    assert ds["x"].tolist() == [None] * 5
    ds.append({"id": 5, "x": 3})
    assert ds["x"].tolist() == [None, None, None, None, None, 3]
    arr = ds["x"].numpy()
    assert isinstance(arr, np.ma.MaskedArray)
    assert arr.mask.tolist() == [True] * 5 + [False] and int(arr[5]) == 3
    ds.commit("x")
    again = plane.open(tmp_path / "ds")
    assert again["x"].tolist() == [None] * 5 + [3]
    assert again.snapshot().null_mask("x", np.arange(6)).tolist() == [True] * 5 + [False]


def _jpeg() -> bytes:
    pil = pytest.importorskip("PIL.Image")
    buf = io.BytesIO()
    pil.new("RGB", (4, 4), (9, 0, 0)).save(buf, "JPEG")
    return buf.getvalue()


HTYPES: list[tuple[str, dict[str, Any], Any]] = [
    ("scalar", {}, 7),
    ("float", {"dtype": "float32"}, 1.5),
    ("trace", {"dtype": "float32", "shape": (None, 6)}, np.ones((2, 6), np.float32)),
    ("fixed", {"dtype": "uint8", "shape": (2, 2)}, np.ones((2, 2), np.uint8)),
    ("text", {"htype": "text"}, "hello"),
    ("json", {"htype": "json"}, {"a": 1}),
    ("label", {"htype": "class_label", "class_names": ["cat", "dog"]}, "dog"),
    ("emb", {"htype": "embedding"}, np.ones(4, np.float32)),
    ("binary", {"htype": "binary"}, b"\x00\x01"),
    ("link", {"htype": "link[binary]"}, None),  # value: a file written by the test
    ("image", {"htype": "image", "sample_compression": "jpeg"}, None),
]


@pytest.mark.parametrize("name,kwargs,value", HTYPES, ids=[h[0] for h in HTYPES])
def test_none_is_a_null_in_every_htype(tmp_path: Path, name: str, kwargs: dict[str, Any],
                                        value: Any) -> None:
    if name == "link":
        (tmp_path / "obj.bin").write_bytes(b"linked")
        value = str(tmp_path / "obj.bin")
    if name == "image":
        value = _jpeg()
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("id", dtype="int64")
    ds.create_tensor("v", **kwargs)
    ds.append({"id": 0, "v": None})       # before any value: no layout yet
    ds.append({"id": 1, "v": value})
    ds.extend({"id": [2, 3], "v": [None, value]})
    ds.commit("nulls")
    got = plane.open(tmp_path / "ds")
    vals = got["v"].tolist()
    assert [v is None for v in vals] == [True, False, True, False]
    assert got["v"][2].numpy() is None and got["v"][1].numpy() is not None
    assert got.snapshot().null_mask("v", np.arange(4)).tolist() == [True, False, True, False]
    assert _count(got, "v IS NULL") == 2 and _count(got, "v IS NOT NULL") == 2


def test_none_in_a_column_keeps_row_numbers_in_errors(tmp_path: Path) -> None:
    ds = _five(tmp_path)
    ds.create_tensor("x", dtype="uint8")
    with pytest.raises(plane.SampleError, match="at row 7"):
        ds.extend({"id": [5, 6, 7], "x": [None, 1, 300]})
    assert len(ds) == 5 and ds["x"].tolist() == [None] * 5


def test_text_none_is_not_the_empty_string(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("t", htype="text")
    ds.extend({"t": ["", None, "a"]})
    assert ds["t"].numpy() == ["", None, "a"]
    assert _count_t(ds, "t IS NULL") == 1 and _count_t(ds, "t = ''") == 1


def _count_t(ds: plane.Dataset, where: str) -> int:
    return len(ds.query(f"SELECT t WHERE {where}"))


def test_comparisons_on_nulls_are_unknown(tmp_path: Path) -> None:
    ds = _five(tmp_path)
    ds.create_tensor("x")
    ds.create_tensor("t", htype="text")
    ds.extend({"id": [5, 6, 7, 8], "x": [1, None, -2, 4], "t": ["a", "b", None, None]})
    ds.commit("c")
    ids = lambda where: sorted(int(i) for i in ds.query(f"SELECT id WHERE {where}")["id"])  # noqa: E731
    assert ids("x IS NULL") == [0, 1, 2, 3, 4, 6]
    assert ids("x IS NOT NULL") == [5, 7, 8]
    assert ids("x > 0") == [5, 8]
    assert ids("NOT (x > 0)") == [7]
    assert ids("x <= 0 OR x > 0") == [5, 7, 8]
    assert ids("x != 1") == [7, 8]
    assert ids("x NOT IN (1)") == [7, 8]
    assert ids("x NOT BETWEEN 0 AND 2") == [7, 8]
    # three-valued logic: unknown AND false is false, so its negation is true (6, 7);
    # unknown AND true is unknown (8, and 0-4 where both are null)
    assert ids("NOT (x > 0 AND t = 'zz')") == [5, 6, 7]
    # unknown OR true is true (6 is left out), unknown OR false is unknown (7)
    assert ids("NOT (x > 2 OR t = 'b')") == [5]
    ds.create_index("x", kind="btree")
    assert ids("x < 10") == [5, 7, 8]  # the index holds the null rows' empty samples
    assert ids("x = 0") == []
    order = [r["x"] for r in ds.query("SELECT x WHERE id >= 4 ORDER BY x").rows()]
    assert order == [-2, 1, 4, None, None]
    order = [r["x"] for r in ds.query("SELECT x WHERE id >= 4 ORDER BY x DESC").rows()]
    assert order == [4, 1, -2, None, None]


def test_query_rows_and_class_names(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("label", htype="class_label", class_names=["cat", "dog"])
    ds.extend({"label": ["dog", None, "cat"]})
    view = ds.query("SELECT label")
    assert [r["label"] for r in view.rows()] == ["dog", None, "cat"]
    assert view["label"].mask.tolist() == [False, True, False]
    assert _count_label(ds, "label = 'cat'") == 1 and _count_label(ds, "NOT label = 'cat'") == 1


def _count_label(ds: plane.Dataset, where: str) -> int:
    return len(ds.query(f"SELECT label WHERE {where}"))


def test_vector_search_skips_null_vectors(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("e", htype="embedding", shape=(3,))
    ds.extend({"e": [np.array([1, 0, 0], np.float32), None, np.array([0, 1, 0], np.float32)]})
    res = ds.query("SELECT e ORDER BY L2_DISTANCE(e, $q) LIMIT 5",
                   {"q": [0.0, 0.0, 0.0]})
    assert len(res) == 2 and all(r["e"] is not None for r in res.rows())


def test_update_to_none_and_back(tmp_path: Path) -> None:
    ds = _five(tmp_path)
    ds.create_tensor("x")
    ds["x"][:] = [10, 11, 12, 13, 14]
    ds.commit("values")
    ds["x"][1] = None
    ds["x"][[2, 3]] = [None, 33]
    assert ds["x"].tolist() == [10, None, None, 33, 14]
    ds.commit("nulls")
    ds = plane.open(tmp_path / "ds")
    assert ds["x"].tolist() == [10, None, None, 33, 14]
    ds["x"][1] = 21
    ds.commit("back")
    assert plane.open(tmp_path / "ds")["x"].tolist() == [10, 21, None, 33, 14]
    d = ds.diff(ds.log()[1]["id"], ds.log()[0]["id"])
    assert d.tensors["x"].updated.shape[0] == 1


def test_nulls_survive_branch_checkout_merge_and_delete(tmp_path: Path) -> None:
    ds = _five(tmp_path)
    ds.create_tensor("x")
    ds["x"][:] = [0, 1, 2, 3, 4]
    ds.commit("base")
    ds.checkout("dev", create=True)
    ds["x"][0] = None
    ds.append({"id": 5, "x": None})
    ds.create_tensor("note", htype="text")
    ds["note"][2] = "two"
    ds.commit("dev work")
    ds.checkout("main")
    assert ds["x"].tolist() == [0, 1, 2, 3, 4] and "note" not in ds.tensors
    ds["x"][4] = None
    ds.commit("main work")
    ds.merge("dev")
    assert ds["x"].tolist() == [None, 1, 2, 3, None, None]
    assert ds["note"].tolist() == [None, None, "two", None, None, None]
    ds.delete([0, 2])
    ds.commit("delete")
    ds = plane.open(tmp_path / "ds")
    assert ds["x"].tolist() == [1, 3, None, None]
    assert ds["note"].tolist() == [None, None, None, None]
    assert _count(ds, "x IS NULL") == 2
    ds.checkout(ds.log()[-1]["id"])  # the first commit: no nulls in x
    assert ds["x"].tolist() == [0, 1, 2, 3, 4]


def test_nulls_survive_the_rebase_of_concurrent_writers(tmp_path: Path) -> None:
    ds = _five(tmp_path)
    ds.create_tensor("x")
    ds["x"][:] = [0, 1, 2, 3, 4]
    ds.commit("base")
    a, b = plane.open(tmp_path / "ds"), plane.open(tmp_path / "ds")
    a.extend({"id": [5, 6], "x": [None, 6]})
    a["x"][0] = None
    b.extend({"id": [7], "x": [None]})
    b["x"][1] = None
    b.create_tensor("late", htype="text")
    b["late"][2] = "b"
    a.commit("a")
    b.commit("b")  # loses the race, rebases on a's commit
    got = plane.open(tmp_path / "ds")
    by_id = dict(zip(got["id"].tolist(), got["x"].tolist()))
    assert by_id == {0: None, 1: None, 2: 2, 3: 3, 4: 4, 5: None, 6: 6, 7: None}
    late = dict(zip(got["id"].tolist(), got["late"].tolist()))
    assert late == {0: None, 1: None, 2: "b", 3: None, 4: None, 5: None, 6: None, 7: None}


def test_loader_raises_on_nulls_or_skips_them(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("x", dtype="int64")
    ds.create_tensor("y", dtype="int64")
    ds.extend({"x": list(range(10)), "y": [None if i % 3 == 0 else i for i in range(10)]})
    ds.commit("c")
    with pytest.raises(plane.SampleError,
                       match=r"'y' is null at row 0 .*IS NOT NULL.*nulls='skip'"):
        list(ds.numpy(batch_size=4, shuffle=False))
    got = [b["y"] for b in ds.numpy(batch_size=4, shuffle=False, nulls="skip")]
    assert np.concatenate(got).tolist() == [1, 2, 4, 5, 7, 8]
    assert [b["x"].tolist() for b in ds.numpy(batch_size=5, shuffle=False, tensors=["x"])] == \
        [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    view = ds.query("SELECT * WHERE y IS NOT NULL")
    got = [b["y"] for b in view.numpy(batch_size=4, shuffle=False)]
    assert np.concatenate(got).tolist() == [1, 2, 4, 5, 7, 8]
    with pytest.raises(plane.PlaneError, match="nulls must be"):
        ds.numpy(nulls="drop")


def test_fragments_and_ingest_carry_nulls(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("x", dtype="int64")
    ds.create_tensor("t", htype="text")
    metas = {n: t.meta for n, t in ds.tensors.items()}
    frag = plane.write_fragment(ds.store, "f1", metas, {"x": [1, None], "t": [None, "b"]})
    plane.apply_fragments(ds, [frag])
    ds.extend_from(arrow=pa.table({"x": [None, 4], "t": ["c", None]}), progress=False)
    ds.commit("c")
    got = plane.open(tmp_path / "ds")
    assert got["x"].tolist() == [1, None, None, 4]
    assert got["t"].tolist() == [None, "b", "c", None]


def test_a_snapshot_pickles_with_its_nulls(tmp_path: Path) -> None:
    ds = _five(tmp_path)
    ds.create_tensor("x")
    ds.append({"id": 5, "x": 1})
    snap = pickle.loads(pickle.dumps(ds.snapshot()))  # unflushed writes, stored unpublished
    assert snap.null_mask("x", np.arange(6)).tolist() == [True] * 5 + [False]
    assert snap.null_mask("x", np.array([5])) is None
    assert snap.null_mask("id", np.arange(6)) is None


def test_a_part_without_nulls_reads_as_before(tmp_path: Path) -> None:
    """A part written before nulls existed (no "nulls" field) reads its empty samples."""
    ds = _five(tmp_path)
    ds.create_tensor("x", dtype="int64")
    ds.append({"id": 5, "x": 3})
    ds.commit("c")
    store = ds.store
    state = State.load(store, ds.snapshot().state_key)
    d = get_cas_json(store, state.tensors["x"])
    assert "nulls" in d
    del d["nulls"]
    state.tensors["x"] = put_cas_json(store, PARTS, d)
    old = Snapshot.open(store, put_cas_json(store, STATES, state.to_dict()))
    assert old.null_mask("x", np.arange(6)) is None
    assert old.read("x", np.arange(6)).tolist() == [0, 0, 0, 0, 0, 3]
    assert TensorPart.from_dict(get_cas_json(store, state.tensors["id"])).nulls.shape == (0,)
    assert "nulls" not in get_cas_json(store, state.tensors["id"])  # nothing written when none


def test_the_missing_tensor_error_says_null(tmp_path: Path) -> None:
    ds = _five(tmp_path)
    ds.create_tensor("x")
    with pytest.raises(plane.SampleError, match="None for a missing value"):
        ds.append({"id": 5})


OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.one_of(st.none(), st.integers(-5, 5))),
    st.tuples(st.just("set"), st.integers(0, 30), st.one_of(st.none(), st.integers(-5, 5))),
    st.tuples(st.just("delete"), st.integers(0, 30)),
    st.tuples(st.just("commit")),
), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_nulls_follow_an_oracle(tmp_path_factory: Any, ops: list[tuple[Any, ...]]) -> None:
    """Any sequence of appends, updates (values or None), deletes and commits: the values
    read, the null mask and IS NULL agree with a list of Python values."""
    path = tmp_path_factory.mktemp("oracle") / "ds"
    ds = plane.create(path)
    ds.create_tensor("v", dtype="int64")
    ds.create_tensor("t", htype="text")
    want: list[int | None] = []
    for op in ops:
        if op[0] == "append":
            ds.append({"v": op[1], "t": None if op[1] is None else str(op[1])})
            want.append(op[1])
        elif op[0] == "set" and want:
            i = op[1] % len(want)
            ds["v"][i] = op[2]
            ds["t"][i] = None if op[2] is None else str(op[2])
            want[i] = op[2]
        elif op[0] == "delete" and want:
            i = op[1] % len(want)
            ds.delete(i)
            del want[i]
        elif op[0] == "commit":
            ds.commit("step", allow_empty=True)
            ds = plane.open(path)
    assert ds["v"].tolist() == want
    assert ds["t"].tolist() == [None if w is None else str(w) for w in want]
    nulls = sum(w is None for w in want)
    mask = ds.snapshot().null_mask("v", np.arange(len(want)))
    assert (mask.tolist() if mask is not None else [False] * len(want)) == \
        [w is None for w in want]
    if want:
        assert len(ds.query("SELECT v WHERE v IS NULL")) == nulls
        assert len(ds.query("SELECT v WHERE v >= 0 OR v < 0")) == len(want) - nulls


def test_plane_show_prints_a_null_class_label(capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    from plane.cli import main

    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("label", htype="class_label", class_names=["cat", "dog"])
    ds.extend({"label": ["dog", None]})
    ds.commit("c")
    capsys.readouterr()
    assert main(["show", str(tmp_path / "ds")]) == 0
    assert capsys.readouterr().out.splitlines() == ["[0] label=1 (dog)", "[1] label=None"]


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.one_of(st.none(), st.integers(0, 255)), max_size=6),
                        min_size=1, max_size=5))
def test_columns_with_nones_read_back(tmp_path_factory: Any,
                                      batches: list[list[int | None]]) -> None:
    """Batches of values and Nones, in any mix and order (a batch of only Nones before any
    value included), read back as written in every kind of tensor."""
    ds = plane.create(tmp_path_factory.mktemp("cols") / "ds")
    ds.create_tensor("n", dtype="uint8")
    ds.create_tensor("s")                               # dtype and dims learned
    ds.create_tensor("f", dtype="int16", shape=(2,))
    ds.create_tensor("r", dtype="int16", shape=(None, 2))
    ds.create_tensor("t", htype="text")
    ds.create_tensor("j", htype="json")
    want: list[int | None] = []
    for b in batches:
        ds.extend({"n": b, "s": b, "f": [None if v is None else [v, v] for v in b],
                   "r": [None if v is None else np.full((v % 3, 2), v, np.int16) for v in b],
                   "t": [None if v is None else str(v) for v in b],
                   "j": [None if v is None else {"v": v} for v in b]})
        want += b
    ds.commit("c", allow_empty=True)
    ds = plane.open(ds.url)
    assert ds["n"].tolist() == want and ds["s"].tolist() == want
    assert ds["f"].tolist() == [None if v is None else [v, v] for v in want]
    assert ds["r"].tolist() == [None if v is None else [[v, v]] * (v % 3) for v in want]
    assert ds["t"].tolist() == [None if v is None else str(v) for v in want]
    assert ds["j"].tolist() == [None if v is None else {"v": v} for v in want]


def test_materialize_keeps_null_links_null(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"aa")
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("blob", htype="link[binary]")
    ds.extend({"blob": [str(tmp_path / "a.bin"), None]})
    assert ds["blob"].text() == [str(tmp_path / "a.bin"), None]
    ds["blob"].materialize()
    ds.commit("m")
    got = plane.open(tmp_path / "ds")
    assert got["blob"].meta.htype == "binary"
    assert got["blob"].tolist() == [b"aa", None]


@given(rows=st.sets(st.integers(0, 10_000), max_size=200))
def test_null_rows_serialise_as_runs(rows: set[int]) -> None:
    """A part stores its null rows as (start, length) runs: any set round-trips, and a
    tensor created on a million rows costs one run."""
    from plane.core._state import pack_runs, unpack_runs

    arr = np.asarray(sorted(rows), np.int64)
    assert unpack_runs(pack_runs(arr)).tolist() == arr.tolist()
    assert len(pack_runs(np.arange(1_000_000, dtype=np.int64))) < 64


def test_astype_and_rename_keep_nulls(tmp_path: Path) -> None:
    ds = plane.create(str(tmp_path / "ds"))
    ds.create_tensor("x", dtype="int64")
    ds.extend({"x": [1, None, 3]})
    ds.create_tensor("y", dtype="int32")  # rows 0..2 of y are null
    ds.append({"x": None, "y": 7})
    ds.commit("nulls")
    ds["x"].astype("int32")
    ds.rename_tensor("y", "z")
    ds.commit("retyped and renamed")
    again = plane.open(str(tmp_path / "ds"))
    assert again["x"].tolist() == [1, None, 3, None]
    assert again["z"].tolist() == [None, None, None, 7]
    assert again.query("SELECT COUNT(*) WHERE x IS NULL").count == 2
    assert again.query("SELECT COUNT(*) WHERE z IS NOT NULL").count == 1


def test_list_column_with_nulls_keeps_uint64_values_exact() -> None:
    """Rows of a list<uint64> column with a null were converted one by one without the
    column's dtype, so numpy promoted 2**63 + 1 to float64 and stored 2**63."""
    import pyarrow as pa

    ds = plane.create("mem://nulls-u64-lists")
    col = pa.array([[2**63 + 1, 1], None, [5, 6]], pa.list_(pa.uint64()))
    ds.extend_from(arrow=pa.table({"x": col}), progress=False)
    assert ds["x"].tolist() == [[2**63 + 1, 1], None, [5, 6]]
    assert ds["x"].dtype == np.uint64


def test_a_row_written_twice_in_one_update_keeps_the_last_value() -> None:
    ds = plane.create("mem://nulls-dup-update")
    ds.create_tensor("x", dtype="int64")
    ds.extend({"x": [1, 2, 3]})
    ds["x"][[1, 1]] = [None, 2]
    ds["x"][[2, 2]] = [5, None]
    assert ds["x"].tolist() == [1, 2, None]
