"""Getting data out (issue #15, "Export", "HuggingFace", "Ray"): `to_arrow` / `to_pandas` /
`to_batches` of a dataset, a row slice and a query result, `plane export` to Parquet, HF
`datasets` both ways and a query's rows on Ray. The types are the reverse of the ingest, so
Parquet -> `extend_from` -> `to_arrow` -> Parquet gives back the same schema and values."""

from __future__ import annotations

import itertools
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
from plane.cli import main
from plane.core._snapshot import Snapshot
from plane.export._arrow import to_batches
from plane.format._media import encode

JPEG = encode(np.full((4, 4, 3), 9, np.uint8), "jpeg")


def _mem(name: str) -> str:
    """A fresh in-memory dataset URL (mem:// stores live as long as the process)."""
    return f"mem://export-{name}-{uuid.uuid4().hex[:8]}"


# ---- the round trip, property-based --------------------------------------------------------
INTS = [pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(),
        pa.uint64()]
FLOATS = [pa.float16(), pa.float32(), pa.float64()]


def _ints(t: pa.DataType, wide: bool = True) -> st.SearchStrategy[int]:
    """Integers of type `t`; `wide=False`: 64-bit ones within +-2**53. (The ingest of a list
    column with nulls converts rows one by one, and numpy promotes a row of uint64 above
    2**63 and a row of int64 to float64 together: 2**63 + 1 is stored as 2**63.)"""
    info = np.iinfo(t.to_pandas_dtype())
    lo, hi = int(info.min), int(info.max)
    if not wide:
        lo, hi = max(lo, -(2**53)), min(hi, 2**53)
    return st.integers(lo, hi)


def _floats(t: pa.DataType) -> st.SearchStrategy[float]:
    width = {pa.float16(): 16, pa.float32(): 32, pa.float64(): 64}[t]
    return st.floats(width=width, allow_nan=False)


@st.composite
def _column(draw: Any, n: int, i: int, wide: bool = True) -> tuple[str, pa.Array]:
    """One column of `n` rows of a type the ingest maps and the export maps back exactly."""
    kind = draw(st.sampled_from(["int", "float", "bool", "string", "binary", "fsl_float",
                                 "fsl_int", "list_int", "label_names", "label_ids",
                                 "nested"]))
    name = f"c{i}_{kind}"
    if kind == "int":
        t = draw(st.sampled_from(INTS))
        return name, pa.array(draw(st.lists(_ints(t), min_size=n, max_size=n)), t)
    if kind == "float":
        t = draw(st.sampled_from(FLOATS))
        vals = draw(st.lists(_floats(t), min_size=n, max_size=n))
        return name, pa.array(np.asarray(vals, t.to_pandas_dtype()), t)
    if kind == "bool":
        return name, pa.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if kind == "string":
        return name, pa.array(draw(st.lists(st.text(max_size=8), min_size=n, max_size=n)))
    if kind == "binary":  # not JPEG / PNG, which the ingest sniffs as images
        b = st.binary(max_size=8).filter(lambda v: not v.startswith((b"\xff", b"\x89")))
        return name, pa.array(draw(st.lists(b, min_size=n, max_size=n)), pa.binary())
    if kind in ("fsl_float", "fsl_int"):
        t = draw(st.sampled_from(FLOATS[1:] if kind == "fsl_float" else INTS))
        d = draw(st.integers(1, 4))
        el = _floats(t) if kind == "fsl_float" else _ints(t, wide)
        vals = draw(st.lists(st.lists(el, min_size=d, max_size=d), min_size=n, max_size=n))
        return name, pa.array(vals, pa.list_(t, d))
    if kind == "list_int":
        t = draw(st.sampled_from(INTS))
        vals = draw(st.lists(st.lists(_ints(t, wide), max_size=5), min_size=n, max_size=n))
        return name, pa.array(vals, pa.list_(t))
    if kind == "label_names":
        vals = draw(st.lists(st.sampled_from(["cat", "dog", "emu"]), min_size=n, max_size=n))
        return name, pa.array(vals).dictionary_encode()
    if kind == "label_ids":  # an integer column named like a label: class ids, no names
        vals = draw(st.lists(st.integers(0, 1000), min_size=n, max_size=n))
        return f"label_{i}", pa.array(vals, pa.int64())
    rows = []  # nested: a rectangular 2-d sample per row, its shape varying
    for _ in range(n):
        a, b = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        rows.append(draw(st.lists(st.lists(st.integers(-9, 9), min_size=b, max_size=b),
                                  min_size=a, max_size=a)))
    return name, pa.array(rows, pa.list_(pa.list_(pa.int64())))


@st.composite
def _tables(draw: Any, wide: bool = True) -> pa.Table:
    n = draw(st.integers(1, 12))
    cols = [draw(_column(n, i, wide)) for i in range(draw(st.integers(1, 5)))]
    return pa.table(dict(cols))


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=_tables())
def test_parquet_plane_parquet_round_trips_types_and_values(tmp_path: Path,
                                                            table: pa.Table) -> None:
    src_file, out_file = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table, src_file)
    ds = plane.create(_mem("roundtrip"))
    ds.extend_from(parquet=str(src_file), progress=False)
    pq.write_table(ds.to_arrow(), out_file)
    src, back = pq.read_table(src_file), pq.read_table(out_file)
    assert back.schema.equals(src.schema), (src.schema, back.schema)
    assert back.equals(src)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=_tables(wide=False), data=st.data())
def test_round_trip_keeps_nulls(tmp_path: Path, table: pa.Table, data: Any) -> None:
    import pyarrow.compute as pc

    cols = {}
    for name, col in zip(table.column_names, table.columns):
        mask = data.draw(st.lists(st.booleans(), min_size=len(col), max_size=len(col)))
        if pa.types.is_dictionary(col.type):
            mask[0] = False  # the names come from the values: keep one
        cols[name] = pc.if_else(pa.array(mask), pa.scalar(None, col.type), col)
    table = pa.table(cols)
    src_file, out_file = tmp_path / "in.parquet", tmp_path / "out.parquet"
    pq.write_table(table, src_file)
    ds = plane.create(_mem("nulls"))
    ds.extend_from(parquet=str(src_file), progress=False)
    pq.write_table(ds.to_arrow(), out_file)
    src, back = pq.read_table(src_file), pq.read_table(out_file)
    assert back.schema.equals(src.schema), (src.schema, back.schema)
    assert back.equals(src)


def test_documented_normalisations(tmp_path: Path) -> None:
    """What does not come back as it went in, as README "Getting data out" says."""
    t = pa.table({"big": pa.array(["a", "b"], pa.large_string()),
                  "vec": pa.array([[1.0, 2.0], [3.0, 4.0]], pa.list_(pa.float32())),
                  "when": pa.array([0, 86400], pa.timestamp("s")),
                  "doc": pa.array([{"a": 1}, {"a": 2}]),
                  "img": pa.array([JPEG, JPEG])})
    ds = plane.create(_mem("norm"))
    ds.extend_from(arrow=t, progress=False)
    out = ds.to_arrow()
    assert out.schema.field("big").type == pa.string()
    assert out.schema.field("vec").type == pa.list_(pa.float32(), 2)  # width fixed
    assert out["when"].to_pylist() == ["1970-01-01T00:00:00", "1970-01-02T00:00:00"]
    assert out["doc"].to_pylist() == ['{"a": 1}', '{"a": 2}']
    assert out.schema.field("img").type == pa.binary() and out["img"].to_pylist() == [JPEG] * 2
    assert out.schema.field("img").metadata == {b"tensorplane.htype": b"image"}
    ds.create_tensor("frames", htype="link[image]")
    ds.extend({"frames": ["s3://lake/a.jpg", "/nowhere/b.png"],  # never fetched
               **{n: [None, None] for n in t.column_names}})
    assert ds[2:].to_arrow(["frames"])["frames"].to_pylist() == ["s3://lake/a.jpg",
                                                                 "/nowhere/b.png"]
    decoded = ds[:2].to_arrow(["img"], decode=True)
    assert decoded.schema.field("img").type == pa.list_(pa.list_(pa.list_(pa.uint8())))
    np.testing.assert_array_equal(np.asarray(decoded["img"][0].as_py()),
                                  ds["img"][0].numpy())


# ---- rows, views, queries --------------------------------------------------------------------
@pytest.fixture
def small() -> plane.Dataset:
    ds = plane.create(_mem("small"))
    ds.create_tensor("emb", htype="embedding", dtype="float32")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("tokens", dtype="int32")
    rng = np.random.default_rng(3)
    ds.extend({"emb": rng.random((30, 4), dtype=np.float32),
               "labels": np.arange(30) % 2,
               "caption": [f"row {i}" for i in range(30)],
               "tokens": [np.arange(i % 4, dtype=np.int32) for i in range(30)]})
    ds.commit("30 rows")
    return ds


def test_rows_tensors_and_row_ids(small: plane.Dataset) -> None:
    full = small.to_arrow()
    assert full.num_rows == 30 and full.column_names == ["emb", "labels", "caption", "tokens"]
    assert full.schema.field("emb").type == pa.list_(pa.float32(), 4)
    assert full.schema.field("labels").type == pa.dictionary(pa.int32(), pa.string())
    assert full.schema.field("tokens").type == pa.list_(pa.int32())
    np.testing.assert_array_equal(np.stack(full["emb"].to_numpy(zero_copy_only=False)),
                                  small["emb"].numpy())
    assert full["labels"].to_pylist() == ["cat", "dog"] * 15
    assert full["tokens"].to_pylist() == [list(range(i % 4)) for i in range(30)]
    assert small[5:9].to_arrow().equals(full.slice(5, 4))
    assert small.to_arrow(rows=slice(5, 9)).equals(full.slice(5, 4))
    mask = np.arange(30) % 7 == 0
    assert small.to_arrow(["caption"], rows=mask)["caption"].to_pylist() == \
        [f"row {i}" for i in range(0, 30, 7)]
    assert small.to_arrow("caption", rows=[-1, 0])["caption"].to_pylist() == ["row 29", "row 0"]
    ids = small.to_arrow(["labels"], with_row_ids=True)
    assert ids.column_names == ["_row_id", "labels"]
    assert ids["_row_id"].to_pylist() == small.row_ids.tolist()
    assert small[2:4].to_pandas()["caption"].tolist() == ["row 2", "row 3"]


def test_bad_arguments_name_the_fix(small: plane.Dataset) -> None:
    with pytest.raises(plane.TensorNotFoundError, match="no tensor 'nope'.*tensors: emb"):
        small.to_arrow(["nope"])
    with pytest.raises(plane.InvalidArgumentError, match="row 30 is out of range for 30"):
        small.to_arrow(rows=[30])
    with pytest.raises(plane.InvalidArgumentError, match="bool mask needs one value per row"):
        small.to_arrow(rows=np.ones(3, bool))
    with pytest.raises(plane.InvalidArgumentError, match="batch_rows must be >= 1"):
        small.to_arrow(batch_rows=0)
    assert len(small) == 30 and not small.has_changes


def test_empty_selection_keeps_the_schema(small: plane.Dataset) -> None:
    out = small.to_arrow(rows=[])
    assert out.num_rows == 0 and out.schema == small.to_arrow().schema


def test_query_results_in_result_order_with_scores(small: plane.Dataset) -> None:
    q = small["emb"][3].numpy()
    view = small.query("SELECT caption, labels ORDER BY COSINE_SIMILARITY(emb, $q) DESC "
                       "LIMIT 5", {"q": q})
    out = view.to_arrow()
    assert out.column_names == ["caption", "labels", "score"]
    assert out["caption"].to_pylist() == list(view["caption"])
    assert out["caption"][0].as_py() == "row 3"  # the query vector's own row first
    np.testing.assert_allclose(out["score"].to_numpy(), view.scores)
    assert out.schema.field("score").type == pa.from_numpy_dtype(view.scores.dtype)
    frame = view.to_pandas()
    assert frame["caption"].tolist() == list(view["caption"])
    assert str(frame["labels"].dtype) == "category"
    where = small.query("SELECT * WHERE labels = 'dog'").to_arrow(["tokens"])
    assert where.column_names == ["tokens"]
    assert where["tokens"].to_pylist() == [list(range(i % 4)) for i in range(1, 30, 2)]
    with pytest.raises(plane.QueryError, match="no tensor 'nope'"):
        view.to_arrow(["nope"])


def test_batches_are_bounded_in_rows_and_bytes(small: plane.Dataset,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    snap = small.snapshot()
    sizes = [b.num_rows for b in to_batches(snap, batch_rows=7)]
    assert sizes == [7, 7, 7, 7, 2]
    import plane.export._arrow as arrow

    row_bytes = sum(snap.index(n).nbytes for n in snap.tensor_names) / snap.physical
    monkeypatch.setattr(arrow, "BATCH_BYTES", int(row_bytes * 4))
    sizes = [b.num_rows for b in to_batches(snap)]
    assert max(sizes) <= 4 and sum(sizes) == 30
    assert pa.Table.from_batches(list(to_batches(snap))).equals(small.to_arrow())


def test_parquet_row_groups_gather_small_batches(small: plane.Dataset, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A row group per 4096-row batch made `plane export` 3-4x slower than one pyarrow write
    (each group restarts the column dictionaries: bench/data_out_bench.py); batches are now
    gathered up to `row_group_rows` rows and about ROW_GROUP_BYTES."""
    import plane.export._arrow as arrow

    snap = small.snapshot()
    want = small.to_arrow()
    for limit, groups in ((1000, [30]), (8, [7, 7, 7, 7, 2]), (14, [14, 14, 2])):
        out = tmp_path / f"g{limit}.parquet"
        rows = arrow.write_parquet(to_batches(snap, batch_rows=7), want.schema, str(out),
                                   row_group_rows=limit)
        md = pq.ParquetFile(out).metadata
        assert rows == 30
        assert [md.row_group(g).num_rows for g in range(md.num_row_groups)] == groups
        assert pq.read_table(out).equals(want)
    row_bytes = want.nbytes / want.num_rows
    monkeypatch.setattr(arrow, "ROW_GROUP_BYTES", int(row_bytes * 10))
    out = tmp_path / "bytes.parquet"
    arrow.write_parquet(to_batches(snap, batch_rows=3), want.schema, str(out))
    md = pq.ParquetFile(out).metadata
    sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
    assert sum(sizes) == 30 and 1 < len(sizes) < 10 and max(sizes) <= 12
    assert pq.read_table(out).equals(want)
    with pytest.raises(plane.InvalidArgumentError, match="row_group_rows"):
        arrow.write_parquet(iter([]), want.schema, str(tmp_path / "x.parquet"),
                            row_group_rows=0)


def test_nulls_become_arrow_validity(small: plane.Dataset,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """`Snapshot.null_mask` (the null model's read seam) turns into Arrow nulls."""
    def null_mask(self: Snapshot, name: str, positions: np.ndarray) -> np.ndarray | None:
        return positions % 3 == 0

    monkeypatch.setattr(Snapshot, "null_mask", null_mask)
    out = small.to_arrow()
    for name in out.column_names:
        assert out[name].is_null().to_pylist() == [i % 3 == 0 for i in range(30)], name
    assert out["caption"][1].as_py() == "row 1" and out["tokens"][2].as_py() == [0, 1]
    assert out["emb"][1].as_py() == pytest.approx(small["emb"][1].numpy().tolist())
    assert out["labels"][4].as_py() == "cat"


@given(st.lists(st.one_of(st.none(), st.text(max_size=120)), min_size=1, max_size=40),
       st.lists(st.one_of(st.none(), st.binary(max_size=120)), min_size=1, max_size=40),
       st.data())
@settings(max_examples=30, deadline=None)
def test_text_and_bytes_columns_equal_row_by_row_reads(texts: list[str | None],
                                                       blobs: list[bytes | None],
                                                       data: Any) -> None:
    """Text and binary columns are built from the chunk buffers (`read_packed`); rows
    over several chunks, edited rows, nulls and empty values come out as a row-by-row read
    gives them."""
    n = min(len(texts), len(blobs))
    ds = plane.create(_mem("textcol"))
    ds.create_tensor("t", htype="text", chunk_bytes=1024)
    ds.create_tensor("b", htype="binary", chunk_bytes=1024)
    ds.extend({"t": texts[:n], "b": blobs[:n]})
    ds.commit("rows")
    edit = data.draw(st.lists(st.integers(0, n - 1), unique=True, max_size=3))
    if edit:
        ds["t"][edit] = [data.draw(st.one_of(st.none(), st.sampled_from(["é", "", "edited"])))
                         for _ in edit]
        ds.commit("edit")
    rows = np.asarray(data.draw(st.permutations(range(n))), np.int64)
    out = ds.to_arrow(rows=rows)
    assert out["t"].to_pylist() == [ds["t"].numpy(aslist=True)[int(i)] for i in rows]
    assert out["b"].to_pylist() == [ds["b"].numpy(aslist=True)[int(i)] for i in rows]


def test_text_that_is_not_unicode_is_refused_by_row() -> None:
    ds = plane.create(_mem("surrogate"))
    ds.create_tensor("t", htype="text")
    ds.extend({"t": ["fine", "\ud800x", "also fine"]})
    with pytest.raises(plane.SchemaError, match=r"tensor 't': row 1 .*lone surrogate"):
        ds.to_arrow()


@given(st.data())
@settings(deadline=None)
def test_read_packed_equals_row_by_row_bytes(data: st.DataObject) -> None:
    """`Snapshot.read_packed` (one copy per run of adjacent rows) gives the stored bytes of
    any selection, and declines (None) rows it cannot serve as stored: edited ones."""
    ds = plane.create(f"mem://packed-{uuid.uuid4().hex}")
    ds.create_tensor("t", htype="text", chunk_bytes=1024)
    texts = data.draw(st.lists(st.text(max_size=90), min_size=1, max_size=60))
    ds.extend({"t": texts})
    ds.commit("rows")
    n = len(texts)
    pos = np.asarray(data.draw(st.lists(st.integers(0, n - 1), max_size=80)), np.int64)
    snap = ds.snapshot()
    got = snap.read_packed("t", pos)
    assert got is not None
    buf, offsets = got
    assert [bytes(buf[a:b]) for a, b in itertools.pairwise(offsets)] == \
        [texts[i].encode("utf-8", "surrogatepass") for i in pos]
    ds["t"][[0]] = ["edited"]
    ds.commit("edit")
    assert ds.snapshot().read_packed("t", np.array([0], np.int64)) is None


def test_rows_written_before_a_tensor_existed_are_null() -> None:
    ds = plane.create(_mem("late"))
    ds.create_tensor("x", dtype="int64")
    ds.extend({"x": [1, 2]})
    ds.create_tensor("e", htype="embedding")
    ds.extend({"x": [3], "e": [np.ones(2, np.float32)]})
    out = ds.to_arrow()
    assert out["e"].to_pylist() == [None, None, [1.0, 1.0]]


# ---- plane export ----------------------------------------------------------------------------
@pytest.fixture
def on_disk(tmp_path: Path, small: plane.Dataset) -> tuple[str, plane.Dataset]:
    url = str(tmp_path / "ds")
    ds = plane.create(url)
    ds.extend_from(arrow=small.to_arrow(), progress=False)
    ds.commit("copied")
    ds.tag("v1")
    ds.delete([0])
    ds.commit("drop row 0")
    return url, ds


def test_cli_export_writes_parquet(tmp_path: Path, on_disk: tuple[str, plane.Dataset],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    url, ds = on_disk
    out = tmp_path / "all.parquet"
    assert main(["export", url, str(out)]) == 0
    assert "exported 29 rows" in capsys.readouterr().out
    assert pq.read_table(out).equals(ds.to_arrow())
    assert main(["export", url, str(out), "--version", "v1", "--tensors", "caption",
                 "--with-row-ids"]) == 0
    old = pq.read_table(out)
    assert old.column_names == ["_row_id", "caption"] and old.num_rows == 30
    assert main(["export", url, str(out), "--where", "labels = 'cat'", "--tensors",
                 "caption"]) == 0
    assert pq.read_table(out)["caption"].to_pylist() == [f"row {i}" for i in range(2, 30, 2)]
    assert main(["export", url, str(out), "--query",
                 "SELECT caption ORDER BY COSINE_SIMILARITY(emb, $q) DESC LIMIT 3",
                 "--params", '{"q": [1, 0, 0, 0]}']) == 0
    top = pq.read_table(out)
    assert top.column_names == ["caption", "score"] and top.num_rows == 3
    assert top["score"].to_pylist() == sorted(top["score"].to_pylist(), reverse=True)


def test_cli_export_of_a_grouped_query_writes_its_groups(
        tmp_path: Path, on_disk: tuple[str, plane.Dataset]) -> None:
    url, ds = on_disk
    out = tmp_path / "groups.parquet"
    sql = "SELECT labels, COUNT(*) AS n GROUP BY labels"
    assert main(["export", url, str(out), "--query", sql]) == 0
    assert pq.read_table(out).to_pylist() == ds.query(sql).to_arrow().to_pylist()
    assert main(["export", url, str(out), "--query",
                 "SELECT labels, COUNT(*) AS n WHERE caption = 'none' GROUP BY labels"]) == 0
    empty = pq.read_table(out)
    assert empty.num_rows == 0 and empty.column_names == ["labels", "n"]


def test_cli_export_errors_write_nothing(tmp_path: Path, on_disk: tuple[str, plane.Dataset],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = on_disk
    out = tmp_path / "out" / "x.parquet"
    out.parent.mkdir()
    capsys.readouterr()
    assert main(["export", url, str(out), "--tensors", "caption,nope"]) == 1
    assert "no tensor 'nope'" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "missing"), str(out)]) == 1
    assert "no tensorplane dataset" in capsys.readouterr().err
    assert main(["export", url, str(out), "--where", "labels = "]) == 1
    assert "plane: error:" in capsys.readouterr().err
    assert main(["export", url, str(tmp_path / "no" / "dir.parquet")]) == 1
    assert "does not exist; create it" in capsys.readouterr().err
    assert main(["export", url, str(out), "--params", "[1", "--where", "labels = 'cat'"]) == 2
    assert main(["export", url, str(out), "--version", "v1", "--branch", "main"]) == 2
    assert "give --version or --branch, not both" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["export", url, str(out), "--where", "labels = 'cat'", "--query", "SELECT *"])
    assert info.value.code == 2
    assert os.listdir(out.parent) == []  # no output, no temporary file


def test_cli_export_as_a_program(tmp_path: Path, on_disk: tuple[str, plane.Dataset]) -> None:
    import subprocess

    url, _ = on_disk
    out = tmp_path / "p.parquet"
    res = subprocess.run([sys.executable, "-m", "plane.cli", "export", url, str(out),
                          "--tensors", "nope"], capture_output=True, text=True)
    assert res.returncode == 1 and "no tensor 'nope'" in res.stderr and not out.exists()


# ---- HuggingFace -----------------------------------------------------------------------------
datasets = pytest.importorskip("datasets")


@pytest.fixture
def media() -> plane.Dataset:
    ds = plane.create(_mem("media"))
    t = pa.table({"labels": pa.array(["dog", "cat", "dog"]).dictionary_encode(),
                  "img": pa.array([JPEG] * 3),
                  "emb": pa.array([[1.0, 2.0]] * 3, pa.list_(pa.float32(), 2)),
                  "text": ["a", "b", "c"]})
    ds.extend_from(arrow=t, progress=False)
    ds.commit("3 rows")
    return ds


def test_to_hf_and_back(media: plane.Dataset) -> None:
    hf = media.to_hf()
    assert isinstance(hf, datasets.Dataset) and len(hf) == 3
    assert hf.features["labels"] == datasets.ClassLabel(names=["dog", "cat"])
    assert isinstance(hf.features["img"], datasets.Image)
    assert hf[1]["labels"] == 1 and hf[0]["text"] == "a" and hf[0]["emb"] == [1.0, 2.0]
    assert np.asarray(hf[0]["img"]).shape == (4, 4, 3)
    back = plane.from_hf(hf, _mem("from_hf"))
    assert back.commit_id is not None and back["labels"].class_names == ("dog", "cat")
    assert back.to_arrow().equals(media.to_arrow())
    streamed = media.to_hf(streaming=True)
    assert isinstance(streamed, datasets.IterableDataset)
    assert [r["text"] for r in streamed] == ["a", "b", "c"]
    again = plane.from_hf(streamed, _mem("from_hf_streamed"))
    assert again.to_arrow().equals(media.to_arrow())


def test_from_hf_refuses_what_it_cannot_take(media: plane.Dataset,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    nope = _mem("nope")
    splits = datasets.DatasetDict({"train": media.to_hf()})
    with pytest.raises(plane.InvalidArgumentError, match=r"pass e.g. hf_dataset\['train'\]"):
        plane.from_hf(splits, nope)
    with pytest.raises(plane.InvalidArgumentError, match="got list"):
        plane.from_hf([1, 2], nope)
    with pytest.raises(plane.DatasetNotFoundError):
        plane.open(nope)  # nothing was created
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(plane.MissingDependencyError, match=r"tensorplane\[hf\]"):
        media.to_hf()


# ---- Ray -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    old, ctx.execution_options.preserve_order = ctx.execution_options.preserve_order, True
    try:
        yield ray
    finally:
        ctx.execution_options.preserve_order = old
        ray.shutdown()


@pytest.mark.ray
def test_query_to_ray_reads_the_result_rows_in_order(ray_local: Any, tmp_path: Path,
                                                     small: plane.Dataset) -> None:
    ds = plane.create(str(tmp_path / "ray"))
    ds.extend_from(arrow=small.to_arrow(), progress=False)
    ds.commit("copy")
    view = ds.query("SELECT caption, labels ORDER BY COSINE_SIMILARITY(emb, $q) DESC "
                    "LIMIT 12", {"q": np.ones(4, np.float32)})
    rows = list(view.to_ray().iter_rows())
    assert [r["caption"] for r in rows] == list(view["caption"])
    assert [int(r["labels"]) for r in rows] == np.asarray(view["labels"]).tolist()
    np.testing.assert_allclose([r["score"] for r in rows], view.scores)


def test_scattered_rows_read_tasks_keep_their_order(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The Datasource of a query's rows: runs of about a chunk, each task only its rows."""
    pytest.importorskip("ray")
    from plane.loader._ray import PlaneDatasource, to_ray

    ds = plane.create(str(tmp_path / "chunks"))
    ds.create_tensor("x", dtype="int64", chunk_bytes=1024)  # 128 rows a chunk
    ds.extend({"x": np.arange(1000)})
    ds.commit("1000 rows")
    snap = ds.snapshot()
    pos = np.random.default_rng(0).permutation(1000)[:300]
    import ray

    # the Datasource that to_ray hands Ray (no Ray instance needed to plan and read tasks)
    monkeypatch.setattr(ray.data, "read_datasource", lambda src, **_: src)
    source = to_ray(snap, ["x"], None, pos, {"score": pos * 0.5})
    assert isinstance(source, PlaneDatasource)
    sizes = [b - a for a, b in source.units]
    assert sum(sizes) == 300 and min(sizes[:-1]) >= 1000 // snap.index("x").num_entries
    blocks = [b for t in source.get_read_tasks(3) for b in t()]
    got = np.concatenate([b["x"].to_numpy() for b in blocks])
    np.testing.assert_array_equal(got, pos)
    np.testing.assert_array_equal(np.concatenate([b["score"].to_numpy() for b in blocks]),
                                  pos * 0.5)


def test_from_hf_that_fails_leaves_nothing(media: plane.Dataset, tmp_path: Path) -> None:
    hf = media.to_hf(with_row_ids=True)  # `_row_id` cannot name a tensor
    where = tmp_path / "failed"
    with pytest.raises(plane.SchemaError, match="invalid tensor name '_row_id'"):
        plane.from_hf(hf, str(where))
    assert [p for p in where.rglob("*") if p.is_file()] == []  # what it wrote is gone
    with pytest.raises(plane.DatasetNotFoundError):
        plane.open(str(where))
    ok = plane.from_hf(hf, str(where), columns={"labels": "labels", "text": "text"})
    assert ok.to_arrow().equals(media.to_arrow(["labels", "text"]))
