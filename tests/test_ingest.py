"""Ingestion: Parquet / Arrow / image folders into tensors, type inference, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
from plane.format._media import encode

N = 240


def _jpegs(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    return [encode(rng.integers(0, 255, (16, 16, 3), np.uint8), "jpeg") for _ in range(n)]


def _table(n: int = N, start: int = 0) -> pa.Table:
    rng = np.random.default_rng(start)
    idx = np.arange(start, start + n)
    return pa.table({
        "img": pa.array(_jpegs(n, start), pa.binary()),
        "label": pa.array(idx % 7),
        "cls": pa.array([f"c{i % 3}" for i in idx]).dictionary_encode(),
        "emb": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.random(n * 8).astype(np.float32)), 8),
        "tok": pa.array([list(range(i, i + i % 5 + 1)) for i in idx], pa.list_(pa.int32())),
        "txt": pa.array([f"text {i}" for i in idx]),
        "meta": pa.array([{"a": int(i), "b": str(i)} for i in idx]),
        "ts": pa.array(idx.astype("datetime64[s]")),
        "x": pa.array(rng.random(n)),
    })


def _lake(root: Path, parts: int = 3, n: int = N) -> tuple[Path, pa.Table]:
    lake = root / "lake"
    lake.mkdir(parents=True)
    t = _table(n)
    step = -(-n // parts)
    for p in range(parts):
        pq.write_table(t.slice(p * step, step), lake / f"part-{p}.parquet", row_group_size=50)
    (lake / "_SUCCESS").write_bytes(b"")
    return lake, t


def _state(ds: plane.Dataset) -> tuple[Any, ...]:
    return (len(ds), sorted(ds.tensors), ds.has_changes, ds.commit_id,
            sorted(ds.store.list("versions/")) if hasattr(ds.store, "list") else None)


def _check_round_trip(ds: plane.Dataset, t: pa.Table, names: dict[str, str] | None = None
                      ) -> None:
    names = names or {c: c for c in t.column_names}
    col = {c: t.column(c).to_pylist() for c in t.column_names}
    n = t.num_rows
    for c, tensor in names.items():
        got = ds[tensor].numpy(aslist=True)
        assert len(got) == n
        if c == "img":
            from plane.format._media import decode

            for i in (0, n // 2, n - 1):
                assert np.array_equal(got[i], decode(col[c][i], "jpeg"))
        elif c == "cls":
            names_ = ds[tensor].meta.class_names
            assert [names_[int(v)] for v in got] == col[c]
        elif c in ("emb", "tok"):
            assert all(np.allclose(np.asarray(g), np.asarray(v)) for g, v in zip(got, col[c]))
        elif c == "ts":
            assert got == [v.isoformat() for v in col[c]]
        else:
            assert [g.item() if isinstance(g, np.ndarray) else g for g in got] == col[c]


def test_parquet_directory_with_inferred_types(tmp_path: Path) -> None:
    lake, t = _lake(tmp_path)
    ds = plane.create(tmp_path / "ds")
    report = ds.extend_from(parquet=str(lake), batch_rows=32, progress=False, commit="ingest")
    assert report.rows_read == report.rows_written == N and report.files == 3
    assert report.rows_skipped == 0 and report.bytes_written > 0 and report.seconds > 0
    assert "ingested 240 of 240 rows from 3 file(s)" in str(report)
    kinds = {k: (v.meta.htype, v.meta.sample_compression) for k, v in ds.tensors.items()}
    assert kinds == {"img": ("image", "jpeg"), "label": ("class_label", None),
                     "cls": ("class_label", None), "emb": ("embedding", None),
                     "tok": ("generic", None), "txt": ("text", None), "meta": ("json", None),
                     "ts": ("text", None), "x": ("generic", None)}
    assert ds["emb"].meta.shape == (8,) and np.dtype(ds["tok"].meta.dtype) == np.int32
    assert ds["cls"].meta.class_names == ("c0", "c1", "c2")
    # the JPEG bytes are stored as they were, not re-encoded
    raw = ds["img"].bytes()
    assert raw[5] == t.column("img")[5].as_py()
    reopened = plane.open(tmp_path / "ds", read_only=True)
    _check_round_trip(reopened, t)
    assert reopened.log()[0]["message"] == "ingest"


def test_mapping_overrides_and_appending_to_existing_tensors(tmp_path: Path) -> None:
    lake, _t = _lake(tmp_path)
    ds = plane.create(tmp_path / "ds")
    cols = {"img": "images", "cls": "labels", "emb": "embedding", "txt": "caption"}
    ds.extend_from(parquet=[str(p) for p in sorted(lake.glob("*.parquet"))], columns=cols,
                   htypes={"caption": "json"}, progress=False)
    assert sorted(ds.tensors) == sorted(cols.values())
    assert ds["caption"].meta.htype == "json"
    more = _table(60, start=N).set_column(2, "cls", pa.array(
        [f"c{i % 5}" for i in range(60)]).dictionary_encode())
    ds.extend_from(arrow=more, columns=cols, progress=False)
    assert len(ds) == N + 60
    assert ds["labels"].meta.class_names == ("c0", "c1", "c2", "c3", "c4")
    names = ds["labels"].meta.class_names
    assert [names[int(v)] for v in ds["labels"].numpy(aslist=True)[N:]] == \
        [f"c{i % 5}" for i in range(60)]
    ds.commit("two ingests")
    with pytest.raises(plane.SchemaError, match=r"column\(s\) \['nope'\] are not in the source"):
        ds.extend_from(arrow=more, columns={"nope": "x"})


def test_arrow_reader_pandas_and_glob(tmp_path: Path) -> None:
    import pandas as pd

    t = _table(100)
    small = t.select(["label", "txt", "x", "tok"])
    ds = plane.create(f"mem://ingest-{tmp_path.name}")
    reader = pa.RecordBatchReader.from_batches(small.schema, small.to_batches(max_chunksize=30))
    assert ds.extend_from(arrow=reader, progress=False).rows_written == 100
    frame = pd.DataFrame({"label": np.arange(10), "txt": [f"p{i}" for i in range(10)],
                          "x": np.linspace(0, 1, 10), "tok": [[1, 2]] * 10})
    ds.extend_from(arrow=frame, progress=False)
    assert len(ds) == 110 and ds["txt"][105].numpy() == "p5"
    lake, _ = _lake(tmp_path, parts=2, n=40)
    ds2 = plane.create(tmp_path / "ds2")
    ds2.extend_from(parquet=str(lake / "part-*.parquet"), columns={"label": "label"},
                    progress=False)
    assert ds2["label"].numpy().tolist() == [i % 7 for i in range(40)]


def test_image_folder_with_class_per_folder(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    expect = []
    for cls in ("zebra", "cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i, data in enumerate(_jpegs(4, seed=len(cls))):
            (root / cls / f"{i}.jpg").write_bytes(data)
            expect.append((f"{root / cls / f'{i}.jpg'}", cls, data))
    (root / "notes.txt").write_text("not an image")
    ds = plane.create(tmp_path / "ds")
    report = ds.extend_from(images=str(root), labels="folder", batch_rows=5, progress=False)
    assert report.rows_written == 12 and report.files == 12
    assert ds["labels"].meta.class_names == ("cat", "dog", "zebra")
    expect.sort()
    names = ds["labels"].meta.class_names
    got = list(zip(ds["paths"].numpy(aslist=True),
                   [names[int(v)] for v in ds["labels"].numpy(aslist=True)],
                   ds["images"].bytes()))
    assert got == expect
    (root / "cat" / "x.png").write_bytes(encode(np.zeros((4, 4, 3), np.uint8), "png"))
    before = _state(ds)
    with pytest.raises(plane.IngestError, match="mixes"):
        ds.extend_from(images=str(root), labels="folder")
    assert _state(ds) == before


@pytest.mark.s3
def test_parquet_from_s3_into_s3(tmp_path: Path, s3_bucket: tuple[str, Any]) -> None:
    import s3fs

    url, opts = s3_bucket
    fs = s3fs.S3FileSystem(**opts)
    t = _table(120)
    bucket = url.split("/")[2]
    for p in range(2):
        with fs.open(f"{bucket}/lake/p{p}.parquet", "wb") as f:
            pq.write_table(t.slice(p * 60, 60), f, row_group_size=25)
    ds = plane.create(url, storage_options=opts)
    report = ds.extend_from(parquet=f"s3://{bucket}/lake/", storage_options=opts,
                            progress=False, commit="from s3")
    assert report.files == 2 and report.rows_written == 120
    _check_round_trip(plane.open(url, read_only=True, storage_options=opts), t)


# ---- bad input: named, and the dataset left as it was ----------------------------------------
def _bad_jpeg_table(tmp_path: Path) -> Path:
    lake, t = _lake(tmp_path, parts=2)
    imgs = t.column("img").to_pylist()
    imgs[130] = b"\xff\xd8\xff" + b"garbage" * 20  # JPEG magic, no frame header
    pq.write_table(t.slice(120).set_column(0, "img", pa.array(imgs[120:], pa.binary())),
                   lake / "part-1.parquet", row_group_size=50)
    return lake


def test_corrupt_jpeg_raises_skips_or_quarantines(tmp_path: Path) -> None:
    lake = _bad_jpeg_table(tmp_path)
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("seed", htype="text")
    ds.extend({"seed": ["kept"]})
    ds.commit("seed row")
    before = _state(ds)
    with pytest.raises(plane.IngestError,
                       match=r"part-1\.parquet, row 10, column 'img' \(tensor 'img'\).*skip"):
        ds.extend_from(parquet=str(lake), progress=False)
    assert _state(ds) == before and len(plane.open(tmp_path / "ds")) == 1

    report = ds.extend_from(parquet=str(lake), on_error="skip", progress=False)
    assert report.rows_skipped == 1 and report.rows_written == N - 1
    assert report.quarantine_key is None and len(ds) == 1 + N - 1
    assert ds["seed"].numpy(aslist=True)[:2] == ["kept", None]  # new rows: null seeds

    ds2 = plane.create(tmp_path / "ds2")
    report = ds2.extend_from(parquet=str(lake), on_error="quarantine", progress=False)
    assert report.rows_skipped == 1 and report.quarantine_key is not None
    lines = [json.loads(x) for x in ds2.store.get(report.quarantine_key).decode().splitlines()]
    assert len(lines) == 1 and lines[0]["row"] == 10 and lines[0]["column"] == "img"
    assert lines[0]["source"].endswith("part-1.parquet") and "jpeg" in lines[0]["reason"].lower()


def test_verify_decodes_and_catches_a_damaged_jpeg_body(tmp_path: Path) -> None:
    good = _jpegs(20)
    damaged = bytearray(good[7])
    at = damaged.index(b"\xff\xc4")  # a Huffman table: the header probe never reads it
    damaged[at + 5:at + 21] = b"\xff" * 16
    imgs = [*good[:7], bytes(damaged), *good[8:]]
    t = pa.table({"img": pa.array(imgs, pa.binary())})
    ds = plane.create(tmp_path / "ds")
    assert ds.extend_from(arrow=t, progress=False).rows_written == 20  # header probe passes
    ds2 = plane.create(tmp_path / "ds2")
    with pytest.raises(plane.IngestError, match=r"row 7, column 'img'.*do not decode"):
        ds2.extend_from(arrow=t, verify=True, progress=False)
    assert len(ds2) == 0 and not list(ds2.tensors)


def test_unreadable_parquet_file(tmp_path: Path) -> None:
    lake, _ = _lake(tmp_path, parts=3)
    (lake / "part-1.parquet").write_bytes(b"PAR1 this is not really parquet")
    ds = plane.create(tmp_path / "ds")
    before = _state(ds)
    with pytest.raises(plane.IngestError, match=r"part-1\.parquet.*(Parquet|parquet)"):
        ds.extend_from(parquet=str(lake), progress=False)
    assert _state(ds) == before
    report = ds.extend_from(parquet=str(lake), on_error="quarantine", progress=False)
    assert report.files_skipped == 1 and report.rows_written == N - 80
    lines = ds.store.get(report.quarantine_key).decode().splitlines()
    assert "part-1.parquet" in json.loads(lines[0])["source"]


def test_argument_errors(tmp_path: Path) -> None:
    lake, t = _lake(tmp_path, parts=1, n=10)
    ds = plane.create(tmp_path / "ds")
    with pytest.raises(plane.PlaneError, match="exactly one of"):
        ds.extend_from(parquet=str(lake), arrow=t)
    with pytest.raises(plane.PlaneError, match="on_error must be one of"):
        ds.extend_from(arrow=t, on_error="ignore")
    with pytest.raises(plane.PlaneError, match="does not exist"):
        ds.extend_from(parquet=str(tmp_path / "missing"))
    with pytest.raises(plane.SchemaError, match="htypes names"):
        ds.extend_from(arrow=t, htypes={"nope": "text"})
    with pytest.raises(plane.PlaneError, match="pyarrow Table"):
        ds.extend_from(arrow=[1, 2, 3])
    assert len(ds) == 0 and not list(ds.tensors)
    ro = plane.open(tmp_path / "ds", read_only=True)
    with pytest.raises(plane.ReadOnlyError):
        ro.extend_from(arrow=t)


# ---- memory stays bounded on inputs larger than the budget -----------------------------------
def test_memory_is_bounded_on_an_input_larger_than_the_budget(tmp_path: Path) -> None:
    """A 320 MB Parquet file (incompressible bytes, 8 MB row groups) ingests within a 192 MB
    peak-RSS budget above the process's size after imports (VmHWM: ru_maxrss would carry the
    parent's peak over into a spawned child)."""
    src = tmp_path / "big.parquet"
    rng = np.random.default_rng(0)
    with pq.ParquetWriter(src, pa.schema([("blob", pa.binary()), ("i", pa.int64())]),
                          compression="none") as w:
        for g in range(40):
            blobs = [rng.bytes(64 << 10) for _ in range(128)]  # 8 MB row groups
            w.write_table(pa.table({"blob": pa.array(blobs, pa.binary()),
                                    "i": pa.array(np.arange(g * 128, (g + 1) * 128))}))
    code = textwrap.dedent("""
        import sys, plane
        import plane.ingest._ingest, pyarrow.parquet, fsspec  # imports are not the data
        def hwm():
            for line in open("/proc/self/status"):
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
        ds = plane.create(sys.argv[2])
        base = hwm()
        r = ds.extend_from(parquet=sys.argv[1], batch_rows=32, progress=False, commit="big")
        print(hwm() - base, r.rows_written, r.bytes_read)
    """)
    out = subprocess.run([sys.executable, "-c", code, str(src), str(tmp_path / "ds")],
                         capture_output=True, text=True, check=True).stdout.split()
    extra_mb, rows, read = int(out[0]), int(out[1]), int(out[2])
    assert rows == 40 * 128 and read >= 320 << 20
    assert extra_mb < 192, f"peak RSS grew by {extra_mb} MB for a 320 MB input"


# ---- property: Arrow columns round-trip through inference and encoding ------------------------
_ints = st.lists(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=6), min_size=1,
                 max_size=30)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ints, st.data())
def test_arrow_round_trip_property(rows: list[list[int]], data: st.DataObject) -> None:
    n = len(rows)
    floats = data.draw(st.lists(st.floats(allow_nan=False, width=32), min_size=n, max_size=n))
    texts = data.draw(st.lists(st.text(max_size=12), min_size=n, max_size=n))
    labels = data.draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=n, max_size=n))
    t = pa.table({"tok": pa.array(rows, pa.list_(pa.int32())),
                  "f": pa.array(floats, pa.float32()), "s": pa.array(texts),
                  "lab": pa.array(labels).dictionary_encode()})
    ds = plane.create("mem://prop-ingest", overwrite=True)
    ds.extend_from(arrow=t, batch_rows=data.draw(st.integers(1, 8)), progress=False)
    assert [g.tolist() for g in ds["tok"].numpy(aslist=True)] == rows
    assert ds["f"].numpy().tolist() == pa.array(floats, pa.float32()).to_pylist()
    assert ds["s"].numpy(aslist=True) == texts
    names = ds["lab"].meta.class_names
    assert [names[int(v)] for v in ds["lab"].numpy(aslist=True)] == labels


def test_a_file_missing_a_mapped_column(tmp_path: Path) -> None:
    lake, _ = _lake(tmp_path, parts=2, n=40)
    pq.write_table(pa.table({"label": pa.array(np.arange(5))}), lake / "part-9.parquet")
    ds = plane.create(tmp_path / "ds")
    before = _state(ds)
    with pytest.raises(plane.IngestError,
                       match=r"part-9\.parquet lacks column\(s\) \['txt'\].*nothing was added"):
        ds.extend_from(parquet=str(lake), columns={"label": "label", "txt": "txt"},
                       progress=False)
    assert _state(ds) == before
    report = ds.extend_from(parquet=str(lake), columns={"label": "label", "txt": "txt"},
                            on_error="quarantine", progress=False)
    assert report.files == 3 and report.files_skipped == 1 and report.rows_written == 40
    rec = json.loads(ds.store.get(report.quarantine_key).decode().splitlines()[0])
    assert rec["source"].endswith("part-9.parquet") and rec["row"] is None


def test_media_columns_go_in_as_the_arrow_buffer(tmp_path: Path) -> None:
    """A JPEG column without nulls is ingested from Arrow's own buffer (EncodedBytes):
    the same bytes, shapes and errors as a list of bytes, also for a sliced batch."""
    from plane.format._codecs import EncodedBytes
    from plane.ingest._infer import column_values

    rng = np.random.default_rng(2)
    jpgs = [encode(rng.integers(0, 255, (8 + i % 3, 12, 3), dtype=np.uint8), "jpeg")
            for i in range(30)]
    col = pa.array(jpgs, pa.binary()).slice(5, 20)  # an offset into the buffers
    vals = column_values(col, "image", "array")
    assert isinstance(vals, EncodedBytes) and len(vals) == 20
    assert list(vals) == jpgs[5:25] and vals[-1] == jpgs[24]
    assert list(vals[3:7]) == jpgs[8:12] and vals[::5] == jpgs[5:25:5]
    with pytest.raises(IndexError):
        vals[20]
    assert isinstance(column_values(pa.array([jpgs[0], None]), "image", "array"), list)
    for big in (False, True):
        t = pa.table({"img": pa.array(jpgs, pa.large_binary() if big else pa.binary())})
        ds = plane.create(tmp_path / f"d{big}")
        ds.extend_from(arrow=t.slice(3), htypes={"img": "image"})
        assert ds["img"].bytes() == jpgs[3:]
        assert [tuple(ds["img"][i].shape) for i in range(3)] == [(8, 12, 3), (9, 12, 3),
                                                                 (10, 12, 3)]
    bad = list(jpgs)
    bad[7] = b"\xff\xd8\xff" + b"\x00" * 40  # a JPEG signature, no image
    ds = plane.create(tmp_path / "bad")
    with pytest.raises(plane.IngestError, match=r"row 7, column 'img'"):
        ds.extend_from(arrow=pa.table({"img": pa.array(bad)}), htypes={"img": "image"})
    assert len(ds) == 0 and "img" not in ds.tensors
    rep = ds.extend_from(arrow=pa.table({"img": pa.array(bad)}), htypes={"img": "image"},
                         on_error="skip")
    assert rep.rows_skipped == 1 and ds["img"].bytes() == jpgs[:7] + jpgs[8:]
