"""Link tensors (URIs into the lake: local, file://, s3://), materialize, and video/audio
decoding — including video + sensor + labels in one sample."""

from __future__ import annotations

import io
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import plane
from plane.format._media import decode, encode


def _images(root: Path, n: int = 12) -> list[tuple[Path, bytes]]:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        data = encode(rng.integers(0, 255, (8 + i % 3, 8, 3), np.uint8), "jpeg")
        p = root / f"img{i:02d}.jpg"
        p.write_bytes(data)
        out.append((p, data))
    return out


def _linked(tmp_path: Path) -> tuple[plane.Dataset, list[tuple[Path, bytes]]]:
    files = _images(tmp_path / "lake")
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("img", htype="link[image]")
    ds.create_tensor("label", htype="class_label")
    uris: list[Any] = []
    for i, (p, _) in enumerate(files):
        uris.append(str(p) if i % 3 == 0 else p if i % 3 == 1 else p.as_uri())
    ds.extend({"img": uris, "label": [i % 2 for i in range(len(files))]})
    ds.commit("links")
    return ds, files


def test_link_tensor_reads_fetches_and_decodes(tmp_path: Path) -> None:
    ds, files = _linked(tmp_path)
    assert ds["img"].meta.htype == "link[image]" and ds["img"].meta.link == "image"
    uris = ds["img"].text()
    assert uris[0] == str(files[0][0]) and uris[2] == files[2][0].as_uri()
    assert ds["img"].bytes() == [d for _, d in files]
    got = ds["img"].numpy(aslist=True)
    for g, (_, d) in zip(got, files):
        np.testing.assert_array_equal(g, decode(d, "jpeg"))
    assert ds[4]["img"].numpy().shape == (9, 8, 3)
    batches = list(ds.numpy(batch_size=4, tensors=["img", "label"], seed=0))
    assert sum(len(b["img"]) for b in batches) == 12
    assert isinstance(batches[0]["img"], list) and batches[0]["img"][0].dtype == np.uint8


def test_missing_linked_object_is_named_and_skippable(tmp_path: Path) -> None:
    ds, files = _linked(tmp_path)
    files[5][0].unlink()
    with pytest.raises(plane.ObjectNotFoundError,
                       match=r"tensor 'img', row 5: linked object .*img05\.jpg does not exist"):
        ds["img"].numpy(aslist=True)
    assert ds["img"][4].numpy().shape == (9, 8, 3)  # the others still read
    loader = ds.numpy(batch_size=4, tensors=["img", "label"], shuffle=False, on_error="skip")
    seen = sum(len(b["label"]) for b in loader)
    assert loader.skipped_rows == 4 and seen == 8


def test_materialize_copies_linked_bytes_into_chunks(tmp_path: Path) -> None:
    ds, files = _linked(tmp_path)
    files[3][0].rename(files[3][0].with_suffix(".bak"))
    before = ds["img"].text()
    with pytest.raises(plane.ObjectNotFoundError, match="row 3"):
        ds["img"].materialize()
    assert ds["img"].meta.htype == "link[image]" and ds["img"].text() == before
    files[3][0].with_suffix(".bak").rename(files[3][0])
    ds.delete([7])
    ds["img"].materialize()
    assert ds["img"].meta.htype == "image" and ds["img"].meta.sample_compression == "jpeg"
    ds.commit("materialized")
    for p, _ in files:
        p.unlink()  # the data now lives in the dataset
    again = plane.open(tmp_path / "ds", read_only=True)
    assert again["img"].bytes() == [d for i, (_, d) in enumerate(files) if i != 7]
    assert plane.open(tmp_path / "ds", version=again.log()[1]["id"])["img"].meta.htype == \
        "link[image]"  # the older commit still holds the links
    with pytest.raises(plane.SchemaError, match="not a link"):
        ds["label"].materialize()


@pytest.mark.s3
def test_links_to_s3_objects(tmp_path: Path, s3_bucket: tuple[str, Any]) -> None:
    import s3fs

    url, opts = s3_bucket
    bucket = url.split("/")[2]
    fs = s3fs.S3FileSystem(**opts)
    files = _images(tmp_path / "lake", 5)
    for p, d in files:
        fs.pipe(f"{bucket}/lake/{p.name}", d)
    ds = plane.create(tmp_path / "ds", link_storage_options={f"s3://{bucket}": opts})
    ds.create_tensor("img", htype="link[image]")
    ds.extend({"img": [f"s3://{bucket}/lake/{p.name}" for p, _ in files]})
    ds.commit("s3 links")
    reopened = plane.open(tmp_path / "ds", read_only=True,
                          link_storage_options={f"s3://{bucket}": opts})
    assert reopened["img"].bytes() == [d for _, d in files]
    rows = [b["img"] for b in reopened.pytorch(batch_size=5, num_workers=2, shuffle=False,
                                               worker_mode="process")]
    assert len(rows) == 1 and len(rows[0]) == 5  # forked workers fetch through s3 too
    on_s3 = plane.create(url, storage_options=opts)  # same protocol: the dataset's options
    on_s3.create_tensor("img", htype="link[image]")
    on_s3.extend({"img": [f"s3://{bucket}/lake/{files[0][0].name}"]})
    assert on_s3["img"].bytes() == [files[0][1]]


def test_ingest_a_uri_column_as_links(tmp_path: Path) -> None:
    files = _images(tmp_path / "lake", 6)
    src = tmp_path / "index.parquet"
    pq.write_table(pa.table({"uri": [str(p) for p, _ in files], "y": list(range(6))}), src)
    ds = plane.create(tmp_path / "ds")
    ds.extend_from(parquet=str(src), htypes={"uri": "link[image]"}, progress=False)
    assert ds["uri"].meta.htype == "link[image]"
    assert ds["uri"].bytes() == [d for _, d in files]


# ---- video and audio ---------------------------------------------------------------------------
av = pytest.importorskip("av")


def _mp4(t: int, h: int = 32, w: int = 48) -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for i in range(t):
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), i * 30, np.uint8), "rgb24")
            for pkt in s.encode(frame):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    return buf.getvalue()


def _wav(n: int, ch: int = 2) -> tuple[bytes, np.ndarray]:
    x = (np.sin(np.arange(n * ch) / 7.0) * 20000).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(ch)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(x.tobytes())
    return buf.getvalue(), x.reshape(n, ch).astype(np.float32) / 32768


def test_video_sensor_and_labels_in_one_sample(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("video", htype="video", sample_compression="mp4")
    ds.create_tensor("audio", htype="audio", sample_compression="wav")
    ds.create_tensor("imu", dtype="float32", shape=(None, 6))  # a sensor trace per clip
    ds.create_tensor("label", htype="class_label")
    clips = [_mp4(6), _mp4(3)]
    sound, expect = _wav(800)
    imu = [np.random.default_rng(i).random((10 + i, 6), np.float32) for i in range(2)]
    ds.extend({"video": clips, "audio": [sound, sound], "imu": imu, "label": ["walk", "run"]})
    ds.commit("clips")
    assert ds["video"].shape == (2, None, 32, 48, 3)
    assert ds["audio"].shape == (2, 800, 2)
    v = ds[0]["video"].numpy()
    assert v.shape == (6, 32, 48, 3) and v.dtype == np.uint8
    assert np.abs(v[:, 16, 24, 0].astype(int) - np.arange(6) * 30).max() <= 6  # frame order
    np.testing.assert_allclose(ds[1]["audio"].numpy(), expect, atol=1e-6)
    assert ds["video"].bytes() == clips
    batch = next(iter(ds.pytorch(batch_size=2, shuffle=False)))
    assert [tuple(x.shape) for x in batch["video"]] == [(6, 32, 48, 3), (3, 32, 48, 3)]
    assert tuple(batch["audio"].shape) == (2, 800, 2)
    assert [tuple(x.shape) for x in batch["imu"]] == [(10, 6), (11, 6)]
    assert ds["label"].meta.class_names == ("walk", "run")
    before = len(ds)
    with pytest.raises(plane.SampleError, match=r"tensor 'video': mp4 bytes are broken.*row 2"):
        ds.append({"video": b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40, "audio": sound,
                   "imu": imu[0], "label": "walk"})
    assert len(ds) == before


def test_linked_video_and_audio(tmp_path: Path) -> None:
    (tmp_path / "lake").mkdir()
    clip, (sound, expect) = _mp4(4), _wav(300, ch=1)
    (tmp_path / "lake" / "a.mp4").write_bytes(clip)
    (tmp_path / "lake" / "a.wav").write_bytes(sound)
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("clip", htype="link[video]")
    ds.create_tensor("sound", htype="link[audio]")
    ds.extend({"clip": [str(tmp_path / "lake" / "a.mp4")],
               "sound": [str(tmp_path / "lake" / "a.wav")]})
    assert ds[0]["clip"].numpy().shape == (4, 32, 48, 3)
    np.testing.assert_allclose(ds[0]["sound"].numpy(), expect, atol=1e-6)
    ds["clip"].materialize()
    assert ds["clip"].meta.htype == "video" and ds["clip"].meta.sample_compression == "mp4"
    assert ds["clip"].shape == (1, 4, 32, 48, 3)


def test_jpeg_batches_decode_in_place_exactly_like_one_by_one(tmp_path: Path) -> None:
    """The batch path (decode straight into one array) equals decoding each image."""
    from plane.format._media import decode_batch

    rng = np.random.default_rng(3)
    rgb = [encode(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), "jpeg") for _ in range(40)]
    gray = [encode(rng.integers(0, 255, (24, 32), dtype=np.uint8), "jpeg") for _ in range(9)]
    for datas, shape in ((rgb, (24, 32, 3)), (gray, (24, 32, 1))):
        got = decode_batch(datas, "jpeg", shape)
        assert got is not None and got.shape == (len(datas), *shape)
        assert got.ctypes.data % 32 == 16  # rows off 32-byte boundaries: cached stores
        assert all((got[i] == decode(d, "jpeg")).all() for i, d in enumerate(datas))
    for wrong in ((12, 32, 3), (48, 64, 3)):  # bytes that are not the recorded shape
        with pytest.raises(plane.SampleError, match="not its recorded shape"):
            decode_batch(rgb[:5], "jpeg", wrong)
    assert decode_batch(rgb, "png", (24, 32, 3)) is None
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("img", htype="image", sample_compression="jpeg")
    ds.create_tensor("y", dtype="int64")
    ds.extend({"img": rgb, "y": np.arange(40)})
    seen = 0
    for b in ds.numpy(batch_size=16, shuffle=True, seed=1):
        for img, y in zip(b["img"], b["y"]):
            assert (img == decode(rgb[int(y)], "jpeg")).all()
            seen += 1
    assert seen == 40
    # batches decode in reader threads (one per CPU by default) or worker processes: the
    # same batches in the same order either way
    ref = [b["y"].tolist() for b in ds.numpy(batch_size=6, seed=2)]
    for workers, mode in ((1, "thread"), (3, "thread"), (2, "process")):
        got_rows = [b["y"].tolist() for b in ds.pytorch(batch_size=6, seed=2,
                                                        num_workers=workers, worker_mode=mode)]
        assert got_rows == ref, (workers, mode)


def test_without_simplejpeg_jpeg_still_probes_decodes_and_loads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """simplejpeg is optional: without it, headers are parsed in Python, images decode with
    Pillow, and the batch path steps aside (a failed import is remembered, never a module)."""
    import sys

    import plane.format._media as media

    img = np.arange(24 * 32 * 3, dtype=np.uint8).reshape(24, 32, 3)
    jpg = encode(img, "jpeg")
    want = decode(jpg, "jpeg")
    monkeypatch.setitem(sys.modules, "simplejpeg", None)  # import simplejpeg -> ImportError
    monkeypatch.setattr(media, "_MODS", {})
    monkeypatch.setattr(media, "_MISSING", set())
    assert media.probe(jpg, "jpeg") == (24, 32, 3)
    assert media.decode_batch([jpg, jpg], "jpeg", (24, 32, 3)) is None
    got = media.decode(jpg, "jpeg")
    assert got.shape == (24, 32, 3) and np.abs(got.astype(int) - want).max() <= 8
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("img", htype="image", sample_compression="jpeg")
    ds.extend({"img": [jpg] * 10})
    batch = next(iter(ds.numpy(batch_size=10)))
    assert batch["img"].shape == (10, 24, 32, 3)


def _jpeg_rows(path: Path, n: int = 90) -> tuple[plane.Dataset, list[bytes]]:
    """JPEGs of two sizes in runs of 7 (so some batches share one shape and some do not), in
    several chunks, with the row number as a label."""
    rng = np.random.default_rng(7)
    jpgs = [encode(rng.integers(0, 255, (16 + 8 * ((i // 7) % 2), 16, 3), np.uint8), "jpeg")
            for i in range(n)]
    ds = plane.create(path)
    ds.create_tensor("img", htype="image", sample_compression="jpeg", chunk_bytes=8 << 10)
    ds.create_tensor("y", dtype="int64")
    ds.extend({"img": jpgs, "y": np.arange(n)})
    ds.commit("jpegs")
    return ds, jpgs


def _summary(batches: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out = []
    for b in batches:
        img = b["img"]
        kind = "array" if isinstance(img, np.ndarray) else type(img).__name__
        out.append((kind, b["y"].tolist(), [np.asarray(x).tobytes() for x in img]))
    return out


@pytest.mark.parametrize("batch", [2, 5, 64])
def test_reader_threads_give_inline_batches(tmp_path: Path, batch: int) -> None:
    """Reader threads (units of several batches, split again) hand out exactly the batches,
    types and order of reading inline, one batch at a time."""
    ds, jpgs = _jpeg_rows(tmp_path / "d")
    inline = _summary(list(ds.numpy(batch_size=batch, seed=4, prefetch=False)))
    kinds = {k for k, _, _ in inline}
    assert sum(len(y) for _, y, _ in inline) == len(jpgs)
    if batch == 5:
        assert kinds == {"array", "list"}  # both cases occur
    for workers in (0, 1, 3):
        threaded = list(ds.pytorch(batch_size=batch, seed=4, num_workers=workers))
        got = _summary([{k: (v.numpy() if hasattr(v, "numpy") else
                             [t.numpy() for t in v] if isinstance(v, list) else v)
                         for k, v in b.items()} for b in threaded])
        assert got == inline, workers
    # stopping early leaves nothing behind; a restored loader continues the same order
    loader = ds.numpy(batch_size=batch, seed=4, num_workers=2)
    it = iter(loader)
    head = [next(it) for _ in range(min(3, len(inline) - 1))]
    it.close()
    rest = ds.numpy(batch_size=batch, seed=4, num_workers=2)
    rest.load_state_dict(loader.state_dict())
    assert _summary(head + list(rest)) == inline


def test_jpeg_footer_damage_is_a_checksum_error(tmp_path: Path) -> None:
    """A JPEG chunk's footer steers the decoder (channel count), so such chunks are verified
    whole before use: a damaged footer is a ChecksumError, skippable."""
    from plane.storage import open_store

    _jpeg_rows(tmp_path / "d")
    store = open_store(tmp_path / "d")
    img_keys = []
    for key in sorted(store.list("chunks/")):
        data = bytearray(store.get(key))
        if b"\xff\xd8" in data[:4]:
            img_keys.append((key, data))
    key, data = img_keys[1]
    flen = int.from_bytes(data[-8:-4], "little")
    at = len(data) - 8 - flen + 16
    shapes = np.frombuffer(bytes(data[at:at + 12]), "<u4")
    assert shapes[2] == 3
    data[at + 8] = 1  # first sample's channels 3 -> 1: would decode as grayscale
    store.put(key, bytes(data))
    ds = plane.open(tmp_path / "d", read_only=True)
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
        list(ds.numpy(batch_size=90, seed=1))
    loader = ds.numpy(batch_size=10, seed=1, on_error="skip")
    seen = [b["img"] for b in loader]
    assert loader.skipped_rows > 0
    assert all(np.asarray(x).shape[-1] == 3 for b in seen for x in b)
