"""Property tests for the format: chunks, the chunk index, sample codecs, sealed objects."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import plane
from plane.format import ChunkIndex, TensorMeta, decode_sample, encode_batch
from plane.format._chunk import encode_chunk, parse_chunk, parse_footer
from plane.format._hash import digest_hex, seal, unseal

DTYPES = st.sampled_from(["uint8", "int16", "int64", "float32", "float64", "bool"])
FAST = settings(max_examples=60, deadline=None)


@st.composite
def sample_lists(draw: st.DrawFn) -> tuple[str, list[np.ndarray]]:
    dtype = draw(DTYPES)
    ndim = draw(st.integers(0, 3))
    n = draw(st.integers(1, 12))
    same = draw(st.booleans())
    shape0 = draw(hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=0, max_side=6))
    out = []
    for _ in range(n):
        shape = shape0 if same else draw(
            hnp.array_shapes(min_dims=ndim, max_dims=ndim, min_side=0, max_side=6))
        out.append(draw(hnp.arrays(dtype, shape)))
    return dtype, out


@FAST
@given(sample_lists(), st.booleans())
def test_chunk_roundtrip(case: tuple[str, list[np.ndarray]], compress: bool) -> None:
    dtype, samples = case
    meta = TensorMeta.build("x", dtype=dtype)
    block, meta = encode_batch(meta, samples, 0)
    data = encode_chunk(block.data, block.shapes, block.offsets, compress)
    chunk = parse_chunk(digest_hex(data), data, "test")
    assert chunk.footer.n == len(samples)
    for i, s in enumerate(samples):
        got = decode_sample(meta, chunk.sample(i), chunk.footer.shapes[i])
        np.testing.assert_array_equal(got, s)
        assert got.shape == s.shape
    # the footer alone (as a range read would fetch it) parses to the same shapes
    f = parse_footer(data[-len(data):], len(data), "test")
    np.testing.assert_array_equal(f.shapes, chunk.footer.shapes)


@FAST
@given(st.lists(st.text(), min_size=1, max_size=20), st.booleans())
def test_text_roundtrip(texts: list[str], compress: bool) -> None:
    meta = TensorMeta.build("t", htype="text")
    block, meta = encode_batch(meta, texts, 0)
    data = encode_chunk(block.data, block.shapes, block.offsets, compress)
    chunk = parse_chunk(digest_hex(data), data, "test")
    assert [decode_sample(meta, chunk.sample(i), chunk.footer.shapes[i])
            for i in range(len(texts))] == texts


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=5), c, max_size=4),
    max_leaves=12,
)


@FAST
@given(st.lists(JSON, min_size=1, max_size=10))
def test_json_roundtrip(values: list[object]) -> None:
    meta = TensorMeta.build("j", htype="json")
    block, meta = encode_batch(meta, values, 0)
    got = [decode_sample(meta, block.data[int(block.offsets[i]):int(block.offsets[i + 1])],
                         block.shapes[i]) for i in range(len(values))]
    assert got == values


@FAST
@given(st.lists(st.lists(st.integers(0, 3), min_size=0, max_size=3), min_size=1, max_size=40),
       st.lists(st.integers(0, 10**6), min_size=1, max_size=20))
def test_index_locate_matches_naive(entry_keys: list[list[int]], probes: list[int]) -> None:
    idx = ChunkIndex()
    naive: list[tuple[int, int]] = []
    for e, ks in enumerate(entry_keys):
        rows = 1 if len(ks) > 1 else (e % 5) + 1  # tiled entries hold one row
        idx.append(rows, [f"{e:08x}{k:024x}" for k in range(len(ks))], [10] * len(ks))
        naive.extend((e, r) for r in range(rows))
    again = ChunkIndex.from_dict(idx.to_dict())
    assert again.keys == idx.keys
    np.testing.assert_array_equal(again.rows, idx.rows)
    pos = np.array([p % len(naive) for p in probes])
    ent, local = again.locate(pos)
    assert list(zip(ent.tolist(), local.tolist())) == [naive[p] for p in pos]


@FAST
@given(st.binary(max_size=200), st.integers(0, 400))
def test_seal_detects_any_flip(payload: bytes, at: int) -> None:
    sealed = seal(payload)
    assert unseal(sealed, "x") == payload
    bad = bytearray(sealed)
    bad[at % len(bad)] ^= 0x01
    with pytest.raises(plane.ChecksumError, match="x is corrupt"):
        unseal(bytes(bad), "x")


@FAST
@given(st.lists(st.integers(-300, 300), min_size=1, max_size=30), DTYPES)
def test_int_casting_is_lossless_or_refused(values: list[int], dtype: str) -> None:
    meta = TensorMeta.build("x", dtype=dtype)
    try:
        block, meta = encode_batch(meta, values, 0)
    except plane.SampleError as e:
        assert "row" in str(e)
        return
    got = np.frombuffer(block.data, meta.np_dtype)
    assert got.astype(np.int64).tolist() == values


def test_tile_chunks_reassemble() -> None:
    ds = plane.create("mem://")
    ds.create_tensor("big", dtype="uint8", chunk_bytes=1024)
    rng = np.random.default_rng(0)
    samples = [rng.integers(0, 255, n, dtype=np.uint8) for n in (1023, 1024, 1025, 5000, 1)]
    ds.extend({"big": samples})
    for s, got in zip(samples, ds["big"].numpy(aslist=True)):
        np.testing.assert_array_equal(got, s)


def test_meta_validation_messages() -> None:
    with pytest.raises(plane.SchemaError, match="sample_compression in"):
        TensorMeta.build("x", htype="embedding", sample_compression="jpeg")
    with pytest.raises(plane.SchemaError, match="not numeric"):
        TensorMeta.build("x", dtype="U5")
    with pytest.raises(plane.SchemaError, match="invalid tensor name"):
        TensorMeta.build("_hidden")
    with pytest.raises(plane.SchemaError, match="class_names only apply"):
        TensorMeta.build("x", class_names=["a"])
    m = TensorMeta.build("img", htype="image", sample_compression="jpg")
    assert m.sample_compression == "jpeg" and m.chunk_compression is None
    assert TensorMeta.from_dict(m.to_dict()) == m
