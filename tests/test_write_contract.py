"""Bad data is refused at write time (issue #15 items 2-4): wrong-width embeddings, class ids
outside class_names, and casts that would change a value. Each refusal names the tensor, the
row and the fix, and leaves the dataset as it was."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import plane
from plane._errors import QueryError, SampleError
from plane.format._codecs import encode_batch
from plane.format._meta import TensorMeta


def _state(ds: plane.Dataset) -> tuple[Any, ...]:
    return (len(ds), {n: ds[n].numpy(aslist=True) for n in ds.tensors}.__repr__(),
            {n: ds[n].meta for n in ds.tensors}, sorted(ds.store.list("")))


def _refused(ds: plane.Dataset, call: Any, *words: str) -> str:
    before = _state(ds)
    with pytest.raises(SampleError) as info:
        call()
    assert isinstance(info.value, ValueError)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    assert _state(ds) == before
    return msg


# ---- item 2: embedding widths ------------------------------------------------------------

@pytest.fixture
def emb(tmp_path: Path) -> plane.Dataset:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("e", htype="embedding")
    ds.create_tensor("w", dtype="int64")
    ds.extend({"e": np.ones((3, 16), np.float32), "w": [0, 1, 2]})
    ds.commit("16-d")
    return ds


@pytest.mark.parametrize("bad", [
    lambda: [np.ones(16), np.ones(17)],              # a list: the exact row is named
    lambda: np.ones((2, 17), np.float32),            # one array of wrong-width rows
])
def test_wrong_width_embedding_is_refused(emb: plane.Dataset, bad: Any) -> None:
    values = bad()
    row = 4 if isinstance(values, list) else 3
    _refused(emb, lambda: emb.extend({"e": values, "w": [5, 6]}), "tensor 'e'",
             f"at row {row}", "width 17", "width 16", "fixed by its first vector",
             "shape=(None,)")


def test_width_is_kept_across_reopen_and_updates(emb: plane.Dataset, tmp_path: Path) -> None:
    ds = plane.open(tmp_path / "ds")
    assert ds["e"].meta.width == 16
    _refused(ds, lambda: ds.append({"e": np.ones(15), "w": 9}), "width 15", "width 16")

    def update() -> None:
        ds["e"][1] = np.ones(17)
    _refused(ds, update, "at row 1", "width 17")
    ds.append({"e": np.full(16, 2.0), "w": 9})        # the right width still goes in
    ds.append({"e": None, "w": 10})                   # None is a null, not a width
    assert ds["e"][3].numpy().tolist() == [2.0] * 16
    assert ds["e"][4].numpy() is None
    assert ds["e"].meta.width == 16


def test_declared_shapes_fix_or_free_the_width(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("fixed", htype="embedding", shape=(4,))
    ds.create_tensor("free", htype="embedding", shape=(None,))
    ds.extend({"fixed": np.ones((2, 4)), "free": [np.ones(3), np.ones(7)]})
    assert ds["free"].meta.width is None and ds["free"].shape == (2, None)
    _refused(ds, lambda: ds.append({"fixed": np.ones(5), "free": np.ones(2)}), "at row 2",
             "width 5", "declared shape (4,)")


def test_metas_without_a_width_still_open() -> None:
    old = TensorMeta.build("e", "embedding").to_dict()
    assert "width" not in old  # nothing new is written until a width is learned
    assert TensorMeta.from_dict(old).width is None
    learned = TensorMeta.from_dict({**old, "width": 8})
    assert learned.width == 8 and learned.vector_width == 8


def test_ingest_fixes_the_width_of_a_new_tensor(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    table = pa.table({"e": pa.array([[1.0] * 8, [2.0] * 8], pa.list_(pa.float32()))})
    ds.extend_from(arrow=table, htypes={"e": "embedding"})
    assert ds["e"].meta.width == 8
    _refused(ds, lambda: ds.append({"e": np.ones(9)}), "width 9", "width 8")


QUERY = "SELECT w ORDER BY COSINE_SIMILARITY(e, $q) DESC LIMIT 3"


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, plane.Dataset]:
    out = {}
    rng = np.random.default_rng(0)
    for kind in ("exact", "flat", "ivf_flat", "hnsw"):
        ds = plane.create(tmp_path_factory.mktemp(kind) / "ds")
        ds.create_tensor("e", htype="embedding")
        ds.create_tensor("w", dtype="int64")
        ds.extend({"e": rng.random((400, 16), dtype=np.float32), "w": np.arange(400)})
        ds.commit("c")
        if kind != "exact":
            ds.create_index("e", kind=kind)
            ds.append({"e": rng.random(16, dtype=np.float32), "w": 400})  # a stale row too
            ds.commit("one more")
        out[kind] = ds
    return out


@pytest.mark.parametrize("kind", ["exact", "flat", "ivf_flat", "hnsw"])
@pytest.mark.parametrize("how", ["sql", "sql-filtered", "builder"])
def test_wrong_width_query_vector_is_a_query_error(indexed: dict[str, plane.Dataset], kind: str,
                                                   how: str) -> None:
    ds = indexed[kind]
    q = np.ones(17).tolist()
    with pytest.raises(QueryError, match=r"17 numbers.*16") as info:
        if how == "sql":
            ds.query(QUERY, {"q": q})
        elif how == "sql-filtered":
            ds.query("SELECT w WHERE w > 10 ORDER BY L2_DISTANCE(e, $q) LIMIT 3", {"q": q})
        else:
            ds.search().nearest("e", q).limit(3).run()
    assert "pass a vector of 16" in str(info.value)
    assert len(ds.query(QUERY, {"q": np.ones(16).tolist()})) == 3


# ---- item 3: class ids ---------------------------------------------------------------------

@pytest.fixture
def labels(tmp_path: Path) -> plane.Dataset:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("label", htype="class_label", class_names=["cat", "dog"])
    ds.extend({"label": [0, 1, "dog"]})
    ds.commit("three")
    return ds


@pytest.mark.parametrize("values, row, shown", [
    ([1, 7], 4, "class id 7"),
    (np.array([2], np.uint32), 3, "class id 2"),
])
def test_class_ids_outside_class_names_are_refused(labels: plane.Dataset, values: Any, row: int,
                                                   shown: str) -> None:
    _refused(labels, lambda: labels.extend({"label": values}), "tensor 'label'", shown,
             f"at row {row}", "[0, 2)", "'cat', 'dog'", "class name")


def test_class_id_updates_are_checked_and_names_extend(labels: plane.Dataset) -> None:
    def update() -> None:
        labels["label"][1] = 2
    _refused(labels, update, "class id 2", "at row 1")
    labels.extend({"label": ["bird", 2]})  # a new name, then its id
    assert labels["label"].class_names == ("cat", "dog", "bird")
    assert labels["label"].numpy().tolist() == [0, 1, 1, 2, 2]


def test_class_labels_without_names_take_any_id(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("label", htype="class_label")
    ds.extend({"label": [0, 70000]})
    assert ds["label"].numpy().tolist() == [0, 70000]


# ---- item 4: lossy casts -------------------------------------------------------------------

@pytest.fixture
def typed(tmp_path: Path) -> plane.Dataset:
    ds = plane.create(tmp_path / "ds")
    for n in ("f32", "i32", "u8"):
        ds.create_tensor(n, dtype={"f32": "float32", "i32": "int32", "u8": "uint8"}[n])
    ds.extend({"f32": [1.0], "i32": [1], "u8": [1]})
    ds.commit("one")
    return ds


@pytest.mark.parametrize("tensor, value, words", [
    ("f32", 2**40 + 1, ("integer 1099511627777 is not exactly a float32",
                        "stored as 1099511627776")),
    ("f32", np.float64(1e39), ("overflows float32",)),
    ("i32", 3.5, ("expects int32, got float64 value 3.5", "np.rint")),
    ("i32", float("nan"), ("value nan",)),
    ("i32", float("inf"), ("value inf",)),
    ("u8", 300, ("value 300 out of range for uint8", "[0, 255]")),
    ("u8", 300.0, ("value 300.0 out of range for uint8",)),
    ("u8", -1, ("out of range",)),
    ("i32", 2**31, ("out of range for int32",)),
])
def test_lossy_casts_are_refused(typed: plane.Dataset, tensor: str, value: Any,
                                 words: tuple[str, ...]) -> None:
    row = {"f32": 1.0, "i32": 1, "u8": 1, tensor: value}
    _refused(typed, lambda: typed.extend({k: [1, v] if k == tensor else [v, v]
                                          for k, v in row.items()}),
             f"tensor {tensor!r}", "at row 2", *words)


def test_lossless_casts_are_kept(typed: plane.Dataset) -> None:
    typed.extend({"f32": [2**24, 0.5, np.float64(0.25)], "i32": [3.0, True, np.int64(-7)],
                  "u8": [np.int64(255), 0.0, False]})
    assert typed["f32"][1:].numpy().tolist() == [2.0**24, 0.5, 0.25]
    assert typed["i32"][1:].numpy().tolist() == [3, 1, -7]
    assert typed["u8"][1:].numpy().tolist() == [255, 0, 0]


_DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
           "float16", "float32", "float64"]


def _survives(v: Any, target: np.dtype[Any]) -> bool:
    """The cast rule, from Python numbers: ints must fit and floats be whole for an int
    target; ints must be exact floats; a float may round to a narrower float, not overflow."""
    if isinstance(v, bool):
        return True
    if target.kind == "b":
        return v in (0, 1)
    if target.kind in "iu":
        info = np.iinfo(target)
        return (isinstance(v, int) or (math.isfinite(v) and v == math.floor(v))) and \
            info.min <= v <= info.max
    fi = np.finfo(target)
    if isinstance(v, int):
        if v == 0:
            return True
        odd = abs(v) >> ((abs(v) & -abs(v)).bit_length() - 1)  # drop trailing zero bits
        return odd.bit_length() <= fi.nmant + 1 and abs(v) <= int(fi.max)
    if not math.isfinite(v):
        return True
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.asarray(v).astype(target)))


@settings(max_examples=400, deadline=None)
@given(data=st.data(), src=st.sampled_from(_DTYPES), dst=st.sampled_from(_DTYPES))
def test_cast_rule(data: st.DataObject, src: str, dst: str) -> None:
    """A batch is stored iff every value survives the cast; stored values read back as cast."""
    arr = data.draw(hnp.arrays(np.dtype(src), st.integers(1, 4)))
    meta = TensorMeta.build("x", dtype=dst)
    target = np.dtype(dst)
    ok = all(_survives(v, target) for v in arr.tolist())
    if not ok:
        with pytest.raises(SampleError, match=r"tensor 'x': .* at row \d+; "):
            encode_batch(meta, arr, 0)
        return
    block, _ = encode_batch(meta, arr, 0)
    got = np.frombuffer(bytes(block.data), target)
    for v, g in zip(arr.tolist(), got.tolist()):
        if isinstance(v, float) and target.kind == "f" and np.dtype(src).itemsize > \
                target.itemsize:
            want = np.asarray(v).astype(target).item()  # rounded to the nearest
            assert g == want or (math.isnan(g) and math.isnan(want))
        else:
            assert g == v or (isinstance(v, float) and math.isnan(v) and math.isnan(g))
