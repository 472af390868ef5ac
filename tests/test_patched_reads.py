"""Reads of patched tensors: the same values as a full rewrite of the same data, and a patched
uniform tensor stays on the vectorised path (no per-sample conversion of unpatched rows)."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
import plane.core._reader as rd

_N = itertools.count()


def _jpeg(shade: int, hw: tuple[int, int] = (8, 8)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (hw[1], hw[0]), (shade, 255 - shade, 7)).save(buf, "JPEG")
    return buf.getvalue()


def _value(t: str, k: int, odd: bool) -> Any:
    """The value of tensor `t` for token `k`; `odd` gives another shape where one can."""
    if t == "x":
        return np.float32(k)
    if t == "v":
        return np.full(3 if odd else 2, k, np.int16)
    if t == "t":
        return f"text {k}" * (k % 3)
    if t == "j":
        return {"k": k, "tags": ["a"] * (k % 3)}
    return _jpeg(k % 250, (8, 12) if odd else (8, 8))


_TENSORS = ("x", "v", "t", "j", "img")


def _create(rows: list[dict[str, Any]]) -> plane.Dataset:
    ds = plane.create(f"mem://patched-{next(_N)}")
    ds.create_tensor("x", dtype="float32", chunk_bytes=1024)
    ds.create_tensor("v", dtype="int16", chunk_bytes=1024)
    ds.create_tensor("t", htype="text", chunk_bytes=1024)
    ds.create_tensor("j", htype="json", chunk_bytes=1024)
    ds.create_tensor("img", htype="image", sample_compression="jpeg", chunk_bytes=1024)
    if rows:
        ds.extend({t: [r[t] for r in rows] for t in _TENSORS})
    return ds


def _same(a: Any, b: Any) -> None:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


_op = st.one_of(
    st.tuples(st.just("update"), st.integers(0, 10**6), st.sampled_from(_TENSORS),
              st.integers(0, 999), st.booleans()),
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("append"), st.integers(1, 5), st.integers(0, 999)),
    st.tuples(st.just("commit")),
)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(n=st.integers(1, 30), ops=st.lists(_op, max_size=20), data=st.data())
def test_patched_reads_equal_a_full_rewrite(n: int, ops: list[Any], data: Any) -> None:
    model = [{t: _value(t, i, False) for t in _TENSORS} for i in range(n)]
    ds = _create(model)
    ds.commit("base")
    for op in ops:
        if op[0] == "update" and model:
            _, i, t, k, odd = op
            i %= len(model)
            model[i][t] = _value(t, k, odd)
            ds[t][i] = model[i][t]
        elif op[0] == "delete" and len(model) > 1:
            i = op[1] % len(model)
            del model[i]
            ds.delete([i])
        elif op[0] == "append":
            new = [{t: _value(t, op[2] + j, False) for t in _TENSORS} for j in range(op[1])]
            model += new
            ds.extend({t: [r[t] for r in new] for t in _TENSORS})
        elif op[0] == "commit":
            ds.commit("step", allow_empty=True)
    fresh = _create(model)
    assert len(ds) == len(fresh) == len(model)
    m = len(model)
    picks = [slice(None), slice(m // 3, m)]
    picks.append(sorted(data.draw(st.lists(st.integers(0, m - 1), min_size=1, max_size=8))))
    picks.append(data.draw(st.lists(st.integers(0, m - 1), min_size=1, max_size=8)))
    for t in _TENSORS:
        for key in picks:
            _same(ds[t][key].numpy(), fresh[t][key].numpy())
            _same(ds[t][key].numpy(aslist=True), fresh[t][key].numpy(aslist=True))
        if t == "img":
            assert ds["img"].bytes() == fresh["img"].bytes()
    for sql in ("SELECT * WHERE x < 500", "SELECT * WHERE x >= 0 ORDER BY x DESC LIMIT 5"):
        got, want = ds.query(sql), fresh.query(sql)
        assert len(got) == len(want)
        _same(got["x"], want["x"])


def _counting(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the samples that go through per-sample conversion (`_finish`, `decode_sample`)."""
    calls = {"samples": 0}
    finish, decode = rd._finish, rd.decode_sample

    def counted_finish(meta: Any, raws: list[Any], *a: Any, **k: Any) -> Any:
        calls["samples"] += len(raws)
        return finish(meta, raws, *a, **k)

    def counted_decode(*a: Any, **k: Any) -> Any:
        calls["samples"] += 1
        return decode(*a, **k)

    monkeypatch.setattr(rd, "_finish", counted_finish)
    monkeypatch.setattr(rd, "decode_sample", counted_decode)
    return calls


@pytest.mark.parametrize("shape", [(), (4,)])
def test_a_patched_uniform_tensor_converts_no_unpatched_sample(
        monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...]) -> None:
    n = 20_000
    ds = plane.create(f"mem://cliff-{next(_N)}")
    ds.create_tensor("y", dtype="float32", chunk_bytes=16 << 10)
    ds.create_tensor("w", dtype="int32")
    rng = np.random.default_rng(0)
    want = rng.random((n, *shape), dtype=np.float32)
    ds.extend({"y": want, "w": np.arange(n, dtype=np.int32)})
    ds.commit("base")
    for i in (3, 7_000, 19_999):  # one-row commits: a fold plus a patch of the newest
        ds["y"][i] = np.full(shape, -i, np.float32)
        want[i] = -i
        ds["w"][i] = -1
        ds.commit(f"edit {i}")
    calls = _counting(monkeypatch)
    got = ds["y"].numpy()
    np.testing.assert_array_equal(got, want)
    picked = np.sort(rng.choice(n, 500, replace=False))
    np.testing.assert_array_equal(ds["y"][picked.tolist()].numpy(), want[picked])
    shuffled = rng.permutation(n)[:5_000]  # not in order: each position looked up
    np.testing.assert_array_equal(ds["y"][shuffled.tolist()].numpy(), want[shuffled])
    assert len(ds.query("SELECT * WHERE w < 0")) == 3
    assert calls["samples"] <= 3 * 3  # at most the patched rows; never the other ~20k


def test_overwriting_patched_rows_leaves_the_cached_chunks_alone() -> None:
    ds = plane.create(f"mem://cache-{next(_N)}")
    ds.create_tensor("y", dtype="int64")
    ds.extend({"y": np.arange(1000)})
    first = ds.commit("base")
    ds["y"][10] = -10
    ds.commit("edit")
    assert ds["y"].numpy()[10] == -10
    ds.checkout(first)  # the same base chunks, now without the patch
    np.testing.assert_array_equal(ds["y"].numpy(), np.arange(1000))


def test_a_patch_that_changes_a_shape_reads_as_a_list_as_before() -> None:
    ds = plane.create(f"mem://shape-{next(_N)}")
    ds.create_tensor("v", dtype="float32")
    ds.extend({"v": np.zeros((300, 2), np.float32)})
    ds.commit("base")
    ds["v"][5] = np.ones(3, np.float32)
    got = ds["v"].numpy()
    assert isinstance(got, list) and len(got) == 300
    assert got[5].tolist() == [1, 1, 1] and all(g.shape == (2,) for i, g in enumerate(got)
                                                if i != 5)
    ds["v"][5] = np.ones(2, np.float32)  # back to one shape: one array again
    arr = ds["v"].numpy()
    assert isinstance(arr, np.ndarray) and arr.shape == (300, 2) and arr[5].tolist() == [1, 1]


def test_one_image_read_by_range_is_one_array_like_a_cached_read(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("img", htype="image", sample_compression="jpeg")
    ds.extend({"img": [_jpeg(k) for k in range(4)]})
    ds.commit("base")
    cold = plane.open(tmp_path / "d", read_only=True)  # nothing cached: a range read
    one = cold["img"][2:3].numpy()
    assert isinstance(one, np.ndarray) and one.shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(one, cold["img"][1:4].numpy()[1:2])


def test_a_patch_over_the_one_odd_base_row_reads_as_one_array() -> None:
    ds = plane.create(f"mem://odd-{next(_N)}")
    ds.create_tensor("v", dtype="float32")
    ds.extend({"v": [np.zeros(2, np.float32)] * 5 + [np.zeros(3, np.float32)]
               + [np.zeros(2, np.float32)] * 294})
    ds.commit("base")
    assert isinstance(ds["v"].numpy(), list)  # ragged before the patch
    ds["v"][5] = np.ones(2, np.float32)
    arr = ds["v"].numpy()
    assert isinstance(arr, np.ndarray) and arr.shape == (300, 2) and arr[5].tolist() == [1, 1]
    assert not arr[np.arange(300) != 5].any()


def test_ragged_images_with_a_patch_decode_each_row_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    ds = plane.create(f"mem://ragged-{next(_N)}")
    ds.create_tensor("img", htype="image", sample_compression="jpeg")
    ds.extend({"img": [_jpeg(k, (8, 8) if k % 2 else (8, 12)) for k in range(40)]})
    ds.commit("base")
    ds["img"][3] = _jpeg(99)
    calls = _counting(monkeypatch)
    got = ds["img"].numpy()
    assert isinstance(got, list) and len(got) == 40
    assert [g.shape for g in got] == [(8, 8, 3) if k % 2 else (8, 12, 3) for k in range(40)]
    assert calls["samples"] <= 40  # 39 rows read once + the patched one


@pytest.mark.parametrize("kind", ["hnsw", "flat"])
def test_unfiltered_top_k_after_edits_excludes_stale_index_rows(kind: str) -> None:
    """After edits an unfiltered top-k excludes the rows changed since the index's commit from
    the index search (their new values are searched exactly), instead of allowing every other
    row: the answer is the exact one, deleted rows never appear, and explain says so."""
    pytest.importorskip("faiss")
    rng = np.random.default_rng(3)
    n, d = 3000, 8
    ds = plane.create(f"mem://overfetch-{next(_N)}")
    ds.create_tensor("e", htype="embedding", dtype="float32")
    ds.extend({"e": rng.random((n, d), dtype=np.float32)})
    ds.commit("c")
    ds.create_index("e", kind=kind)
    q = rng.random(d, dtype=np.float32)
    sql = "SELECT * ORDER BY COSINE_SIMILARITY(e, $q) DESC LIMIT 10"
    before = ds.query(sql, {"q": q}).ids
    gone = int(before[1])  # a row the index ranks high: deleted
    moved = int(before[0])  # another: changed away from q
    ids = ds.row_ids
    ds["e"][int(np.flatnonzero(ids == moved)[0])] = -q
    ds["e"][7] = q  # the best match is now a changed row
    ds.delete([int(np.flatnonzero(ids == gone)[0])])
    ds.commit("edits")
    got = ds.query(sql, {"q": q}).ids
    e = ds["e"][:].numpy()
    sims = (e @ q) / (np.linalg.norm(e, axis=1) * np.linalg.norm(q))
    want = ds.row_ids[np.argsort(-sims, kind="stable")[:10]]
    assert gone not in got.tolist() and moved not in got.tolist()
    assert got[0] == ds.row_ids[7]
    if kind == "flat":
        assert got.tolist() == want.tolist()
    else:  # approximate
        assert len(set(got.tolist()) & set(want.tolist())) >= 8
    assert "changed since excluded from it" in ds.explain(sql, {"q": q})
