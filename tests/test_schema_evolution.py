"""Schema evolution: ds.rename_tensor, ds[name].astype(dtype) and the versioned ds.info."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import plane
from plane.core._state import State


def _ds(path: Path, n: int = 6) -> plane.Dataset:
    ds = plane.create(path)
    ds.create_tensor("x", dtype="int64")
    ds.create_tensor("emb", htype="embedding", shape=(4,))
    ds.extend({"x": np.arange(n), "emb": np.eye(4, dtype="f4")[np.arange(n) % 4]})
    return ds


def _keys(ds: plane.Dataset) -> list[str]:
    return sorted(ds.store.list(""))


# ---- rename_tensor ---------------------------------------------------------------------------
def test_rename_is_versioned_and_keeps_the_data(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    first = ds.commit("first")
    chunks = set(ds.store.list("chunks/"))
    ds.rename_tensor("x", "label")
    assert list(ds.tensors) == ["label", "emb"]  # same place in the tensor order
    assert ds["label"].numpy().tolist() == list(range(6))
    assert ds.has_changes
    second = ds.commit("rename")
    assert set(ds.store.list("chunks/")) == chunks  # no data copied
    again = plane.open(tmp_path / "d")
    assert list(again.tensors) == ["label", "emb"]
    assert again["label"].numpy().tolist() == list(range(6))
    again.checkout(first)
    assert list(again.tensors) == ["x", "emb"] and "label" not in again
    d = ds.diff(first, second)
    assert d.tensors_renamed == {"x": "label"}
    assert not d.tensors_added and not d.tensors_removed and not d.schema_changed
    assert "renamed to label" in str(d)
    assert not d.tensors["label"].updated.shape[0]


def test_rename_then_write_and_diff_compares_with_the_old_name(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    first = ds.commit("first")
    ds.rename_tensor("x", "y")
    ds["y"][2] = 20
    second = ds.commit("rename and update")
    d = ds.diff(first, second)
    assert d.tensors["y"].updated.tolist() == [int(ds.row_ids[2])]
    assert d.values("y") == [(int(ds.row_ids[2]), 2, 20)]


@pytest.mark.parametrize("new,error,match", [
    ("emb", plane.SchemaError, "already has a tensor 'emb'"),
    ("a/b", plane.SchemaError, "path separator"),
    ("_x", plane.SchemaError, "reserved"),
    ("", plane.SchemaError, "empty"),
])
def test_rename_refuses_bad_or_used_names_and_changes_nothing(
        tmp_path: Path, new: str, error: type[Exception], match: str) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("first")
    with pytest.raises(error, match=match):
        ds.rename_tensor("x", new)
    assert list(ds.tensors) == ["x", "emb"] and not ds.has_changes


def test_rename_of_a_missing_tensor_and_on_read_only(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    first = ds.commit("first")
    with pytest.raises(plane.TensorNotFoundError, match="no tensor 'nope'.*tensors: x, emb"):
        ds.rename_tensor("nope", "y")
    ro = plane.open(tmp_path / "d", read_only=True)
    with pytest.raises(plane.ReadOnlyError, match="rename tensor 'x'"):
        ro.rename_tensor("x", "y")
    ds.checkout(first)
    with pytest.raises(plane.ReadOnlyError, match="detached"):
        ds.rename_tensor("x", "y")
    assert list(plane.open(tmp_path / "d").tensors) == ["x", "emb"]


def test_an_index_follows_its_tensor_through_a_rename(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("first")
    ds.create_index("emb", kind="flat")
    ds.rename_tensor("emb", "vec")
    ds.commit("rename")
    (entry,) = list(ds.indexes)
    assert (entry.name, entry.tensor, entry.stale) == ("vec/flat", "vec", False)
    q = {"q": np.array([0, 1, 0, 0], "f4")}
    sql = "SELECT x ORDER BY COSINE_SIMILARITY(vec, $q) DESC LIMIT 2"
    assert "flat index at commit" in ds.explain(sql, q)
    assert sorted(ds.query(sql, q)["x"].tolist()) == [1, 5]
    ds.extend({"x": [6], "vec": [np.array([0, 1, 0, 0], "f4")]})
    ds.commit("one more")
    assert ds.indexes["vec/flat"].stale
    assert 6 in ds.query(sql.replace("LIMIT 2", "LIMIT 3"), q)["x"].tolist()
    (new,) = ds.indexes.optimize()
    assert new.tensor == "vec" and not ds.indexes["vec/flat"].stale


def test_merge_follows_a_rename_made_on_the_other_branch(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("base")
    ds.checkout("feature", create=True)
    ds.rename_tensor("x", "label")
    ds["label"][0] = 100
    ds.commit("rename on feature")
    ds.checkout("main")
    ds.extend({"x": [6], "emb": [np.ones(4, "f4")]})
    ds.commit("append on main")
    res = ds.merge("feature")
    assert res.commit is not None
    assert list(ds.tensors) == ["label", "emb"]
    assert ds["label"].numpy().tolist() == [100, 1, 2, 3, 4, 5, 6]


def test_merge_keeps_our_rename_and_takes_their_rows(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("base")
    ds.branch("other")
    ds.rename_tensor("x", "label")
    ds.commit("rename on main")
    ds.checkout("other")
    ds.extend({"x": [60], "emb": [np.ones(4, "f4")]})
    ds.commit("append on other")
    ds.checkout("main")
    ds.merge("other")
    assert list(ds.tensors) == ["label", "emb"]
    assert ds["label"].numpy().tolist() == [0, 1, 2, 3, 4, 5, 60]


def test_merge_of_a_rename_and_a_change_of_the_old_name_is_refused(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("base")
    ds.checkout("feature", create=True)
    ds.rename_tensor("x", "label")
    ds.commit("rename")
    ds.checkout("main")
    ds["x"][1] = 11
    head = ds.commit("update x")
    before = _keys(ds)
    with pytest.raises(plane.MergeConflictError,
                       match="renamed to 'label' on feature and changed on branch 'main'.*"
                       "rename_tensor\\('x', 'label'\\)"):
        ds.merge("feature")
    assert ds.commit_id == head and list(ds.tensors) == ["x", "emb"] and not ds.has_changes
    assert _keys(ds) == before
    ds.rename_tensor("x", "label")  # the fix the message names
    ds.commit("rename here too")
    ds.merge("feature")
    assert ds["label"].numpy().tolist() == [0, 11, 2, 3, 4, 5]


def test_merge_of_two_different_renames_is_refused(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("base")
    ds.checkout("feature", create=True)
    ds.rename_tensor("x", "a")
    ds.commit("to a")
    ds.checkout("main")
    ds.rename_tensor("x", "b")
    ds.commit("to b")
    with pytest.raises(plane.MergeConflictError, match="renamed to 'a' on feature and to 'b'"):
        ds.merge("feature")
    assert list(ds.tensors) == ["b", "emb"] and not ds.has_changes


def test_merge_of_a_rename_onto_a_name_we_use_is_refused(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("base")
    ds.checkout("feature", create=True)
    ds.rename_tensor("x", "y")
    ds.commit("x to y")
    ds.checkout("main")
    ds.create_tensor("y", htype="text")
    head = ds.commit("another y")
    before = _keys(ds)
    with pytest.raises(plane.MergeConflictError, match="branch 'main' has another tensor 'y'"):
        ds.merge("feature")
    assert ds.commit_id == head and list(ds.tensors) == ["x", "emb", "y"]
    assert not ds.has_changes and _keys(ds) == before


# ---- astype ----------------------------------------------------------------------------------
def test_astype_rewrites_the_tensor_and_older_commits_keep_the_old_dtype(tmp_path: Path
                                                                         ) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("x", dtype="int64")
    ds.extend({"x": np.arange(5)})
    ds.create_tensor("late", dtype="float64")  # rows 0-4 are empty samples in it
    ds.extend({"x": [5, 6], "late": [1.5, 2.5]})
    ds["x"][1] = 10  # a patch
    ds.delete([3])
    first = ds.commit("int64")
    late = ds["late"].tolist()  # rows 0-4 read as the tensor's empty samples
    ds["x"].astype("int16")
    ds["late"].astype("float32")
    assert ds["x"].dtype == np.dtype("int16")
    assert ds["x"].numpy().tolist() == [0, 10, 2, 4, 5, 6]
    assert ds["late"].dtype == np.dtype("float32")
    assert ds["late"].tolist() == late and late[-2:] == [1.5, 2.5]
    assert ds["late"].meta.dtype == np.dtype("float32").str
    second = ds.commit("narrower")
    index = ds.snapshot().index("late")
    assert index.entry_keys(0) == [] and int(index.rows[0]) == 5  # empty samples stay fills
    again = plane.open(tmp_path / "d")
    assert again["x"].numpy().dtype == np.int16
    again.checkout(first)
    assert again["x"].numpy().dtype == np.int64
    assert again["x"].numpy().tolist() == [0, 10, 2, 4, 5, 6]
    d = ds.diff(first, second)
    assert "x" in d.schema_changed and not d.tensors["x"].updated.shape[0]
    ds.extend({"x": [7], "late": [3.0]})  # later writes use the new dtype
    with pytest.raises(plane.SampleError, match="out of range for int16"):
        ds.extend({"x": [1 << 20], "late": [0.0]})


def test_astype_float64_to_float32_rounds_like_a_write(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("f", dtype="float64")
    ds.extend({"f": [0.1, 1e10 + 1]})
    ds["f"].astype("float32")
    assert ds["f"].numpy().tolist() == np.array([0.1, 1e10 + 1], "f4").tolist()


@pytest.mark.parametrize("dtype,values,match", [
    ("uint8", [1, 300], "value 300 out of range for uint8"),
    ("int32", [-1.5], "not a whole number"),
    ("float32", [1e300], "overflows float32"),
    ("float32", [2**40 + 1], "not exactly a float32"),
])
def test_lossy_astype_is_refused_and_changes_nothing(tmp_path: Path, dtype: str,
                                                     values: list[float], match: str) -> None:
    ds = plane.create(tmp_path / "d")
    src = "float64" if isinstance(values[0], float) else "int64"
    ds.create_tensor("x", dtype=src)
    ds.extend({"x": values})
    ds.commit("values")
    with pytest.raises(plane.SampleError, match=f"astype\\('{dtype}'\\) refused, nothing was "
                       f"changed: .*{match}"):
        ds["x"].astype(dtype)
    assert ds["x"].dtype == np.dtype(src) and not ds.has_changes
    assert ds["x"].numpy().tolist() == values


def test_astype_refusals(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("x", dtype="int64")
    ds.create_tensor("t", htype="text")
    ds.create_tensor("img", htype="image", sample_compression="png")
    ds.create_tensor("lab", htype="class_label", class_names=["a", "b"])
    ds.extend({"x": [1], "t": ["a"], "img": [np.zeros((2, 2, 3), "u1")], "lab": [1]})
    first = ds.commit("one")
    with pytest.raises(plane.SchemaError, match="not a numpy dtype"):
        ds["x"].astype("nope")
    with pytest.raises(plane.SchemaError, match="numeric dtypes only"):
        ds["x"].astype("U4")
    with pytest.raises(plane.SchemaError, match="'t' is text"):
        ds["t"].astype("int8")
    with pytest.raises(plane.SchemaError, match=r"'img' is image \(png\)"):
        ds["img"].astype("uint16")
    with pytest.raises(plane.SchemaError, match="class_label.*integer dtype"):
        ds["lab"].astype("float32")
    with pytest.raises(plane.SchemaError, match="whole tensor"):
        ds["x"][0:1].astype("int8")
    assert not ds.has_changes
    ds.checkout(first)
    with pytest.raises(plane.ReadOnlyError, match="dtype of tensor 'x'"):
        ds["x"].astype("int8")


# ---- ds.info -----------------------------------------------------------------------------------
def test_info_is_versioned_with_the_commits(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    assert dict(ds.info) == {}
    first = ds.commit("no info")
    ds.info["license"] = "cc-by-4.0"
    ds.info.update(description="six rows", citation={"title": "T", "year": 2026})
    assert ds.has_changes
    second = ds.commit("info")
    again = plane.open(tmp_path / "d")
    assert again.info.to_dict() == {"license": "cc-by-4.0", "description": "six rows",
                                    "citation": {"title": "T", "year": 2026}}
    again.checkout(first)
    assert dict(again.info) == {}
    d = ds.diff(first, second)
    assert set(d.info_changed) == {"license", "description", "citation"} and bool(d)
    assert d.info_changed["license"] == (None, "cc-by-4.0")
    del ds.info["citation"]
    ds.info["citation"] = ds.info.get("description")
    ds.commit("edit")
    assert plane.open(tmp_path / "d").info["citation"] == "six rows"


def test_info_values_read_back_are_copies(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.info["tags"] = ["a"]
    tags = ds.info["tags"]
    tags.append("b")  # editing the copy changes nothing ...
    assert ds.info["tags"] == ["a"]
    ds.info["tags"] = tags  # ... until it is assigned back
    assert ds.info["tags"] == ["a", "b"]


def test_info_flush_publishes_it_without_a_commit(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.commit("first")
    ds.info["license"] = "mit"
    ds.flush()
    assert plane.open(tmp_path / "d").info["license"] == "mit"


@pytest.mark.parametrize("value,match", [
    (np.float32(1.0), "is not JSON"),
    ({1, 2}, "is not JSON"),
    (float("nan"), "is not JSON"),
    ("x" * 70_000, "more than 65,536"),
])
def test_non_json_info_is_refused_and_changes_nothing(tmp_path: Path, value: object,
                                                      match: str) -> None:
    ds = _ds(tmp_path / "d")
    ds.info["license"] = "mit"
    ds.commit("info")
    with pytest.raises(plane.SchemaError, match=match):
        ds.info["bad"] = value
    with pytest.raises(plane.SchemaError, match=match):  # all or nothing
        ds.info.update({"description": "ok", "bad": value})
    assert dict(ds.info) == {"license": "mit"} and not ds.has_changes


def test_info_key_errors_and_read_only(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.info["license"] = "mit"
    first = ds.commit("info")
    with pytest.raises(plane.SchemaError, match="keys are str"):
        ds.info.update({1: "x"})
    with pytest.raises(KeyError, match="no info key 'licence'; keys: 'license'"):
        ds.info["licence"]
    with pytest.raises(KeyError, match="no info key"):
        del ds.info["licence"]
    ro = plane.open(tmp_path / "d", read_only=True)
    assert ro.info["license"] == "mit"
    with pytest.raises(plane.ReadOnlyError, match="set ds.info\\['license'\\]"):
        ro.info["license"] = "x"
    ds.checkout(first)
    with pytest.raises(plane.ReadOnlyError, match="detached"):
        ds.info.update(license="x")
    with pytest.raises(plane.ReadOnlyError):
        del ds.info["license"]
    assert plane.open(tmp_path / "d").info.to_dict() == {"license": "mit"}


def test_merge_combines_info_and_refuses_a_key_set_differently(tmp_path: Path) -> None:
    ds = _ds(tmp_path / "d")
    ds.info["license"] = "mit"
    ds.commit("base")
    ds.checkout("b", create=True)
    ds.info["description"] = "from b"
    ds.commit("b")
    ds.checkout("c", create=True)  # from b
    ds.checkout("main")
    ds.info["citation"] = "main"
    ds.commit("main")
    ds.merge("b")
    assert ds.info.to_dict() == {"license": "mit", "description": "from b", "citation": "main"}
    ds.checkout("c")
    ds.info["license"] = "apache"
    ds.commit("c")
    ds.checkout("main")
    ds.info["license"] = "bsd"
    head = ds.commit("main license")
    with pytest.raises(plane.MergeConflictError, match=r"key\(s\) \['license'\] were set"):
        ds.merge("c")
    assert ds.commit_id == head and ds.info["license"] == "bsd"
    ds.merge("c", conflicts="theirs")
    assert ds.info["license"] == "apache"


def test_a_state_without_the_new_fields_keeps_its_stored_form() -> None:
    """States written before info/renames/hidden indexes existed keep their keys: the new
    fields are written only when set."""
    d = State().to_dict()
    assert not {"info", "renames", "hidden_indexes"} & set(d)
    s = State(info={"a": 1}, renames={"y": ["x"]}, hidden_indexes=(("t", "hnsw", "c"),))
    back = State.from_dict(s.to_dict())
    assert (back.info, back.renames, back.hidden_indexes) == (
        {"a": 1}, {"y": ["x"]}, (("t", "hnsw", "c"),))


def test_concurrent_writers_merge_info_keys_and_refuse_a_clash(tmp_path: Path) -> None:
    _ds(tmp_path / "d").commit("base")
    one, two = plane.open(tmp_path / "d"), plane.open(tmp_path / "d")
    one.info["license"] = "mit"
    one.flush()
    two.info["description"] = "rows"
    two.flush()  # rebased on one's write: both keys kept
    assert plane.open(tmp_path / "d").info.to_dict() == {"license": "mit",
                                                         "description": "rows"}
    one, two = plane.open(tmp_path / "d"), plane.open(tmp_path / "d")
    one.info["license"] = "apache"
    one.flush()
    two.info["license"] = "bsd"
    with pytest.raises(plane.CommitConflictError, match=r"ds.info key\(s\) \['license'\]"):
        two.flush()
    assert plane.open(tmp_path / "d").info["license"] == "apache"


def test_a_rename_racing_another_writer_is_refused_not_lost(tmp_path: Path) -> None:
    _ds(tmp_path / "d").commit("base")
    one, two = plane.open(tmp_path / "d"), plane.open(tmp_path / "d")
    one.rename_tensor("x", "y")
    two["x"][0] = 50
    two.flush()
    with pytest.raises(plane.CommitConflictError, match="renamed a tensor.*rename again"):
        one.flush()
    again = plane.open(tmp_path / "d")
    assert list(again.tensors) == ["x", "emb"] and again["x"][0].numpy() == 50


def test_writes_to_a_tensor_another_writer_renamed_are_refused_not_lost(tmp_path: Path
                                                                         ) -> None:
    _ds(tmp_path / "d").commit("base")
    one, two = plane.open(tmp_path / "d"), plane.open(tmp_path / "d")
    one.rename_tensor("x", "y")
    one.flush()
    two.extend({"x": [60], "emb": [np.ones(4, "f4")]})
    with pytest.raises(plane.CommitConflictError, match="'x' was renamed to 'y' concurrently"):
        two.flush()
    again = plane.open(tmp_path / "d")
    assert list(again.tensors) == ["y", "emb"] and len(again) == 6
    three = plane.open(tmp_path / "d")
    three.extend({"y": [60], "emb": [np.ones(4, "f4")]})  # after reopening: fine
    three.flush()
    assert plane.open(tmp_path / "d")["y"].numpy().tolist() == [0, 1, 2, 3, 4, 5, 60]
