"""Byte-flip fuzz of every kind of stored object: after changing one byte of one object, every
read either returns exactly the original answer or raises a PlaneError (typically a
ChecksumError naming the object) — never a changed answer, never a raw exception.

The reads: whole-tensor reads of every tensor, single rows by range reads on a remote-like
store and from local buffers, sample shapes, a SHAPE() filter, a query through each index kind
(bm25, btree, minmax, flat), the loader (chunks used early, samples checked one by one),
load_view, and the version metadata (branches, tags, log, another branch and a tag).
The default suite runs a short sweep; ``-m slow`` runs a long one.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
from plane.storage import MemoryStore, Store, WrapperStore

N = 300


class _Remote(WrapperStore):
    """A store seen as remote (no local buffers): single rows are range reads."""

    @property
    def local_buffers(self) -> bool:  # type: ignore[override]
        return False


def _jpeg(i: int) -> bytes:
    from PIL import Image

    a = np.random.default_rng(i).integers(0, 255, (8 + i % 3, 8, 3), dtype=np.uint8)
    b = io.BytesIO()
    Image.fromarray(a).save(b, format="JPEG")
    return b.getvalue()


def _build() -> dict[str, bytes]:
    """A dataset with every kind of object: chunks (raw with per-sample sums, zstd, media,
    inline and stored patches), parts, states, commits, branch and tag refs, dataset.json,
    index manifests, partitions and refs of each kind, a view."""
    rng = np.random.default_rng(0)
    store = MemoryStore()
    ds = plane.create(store)
    ds.create_tensor("x", dtype="float32", shape=(None, 6), chunk_bytes=16 << 10)
    ds.create_tensor("embedding", htype="embedding", dtype="float32", chunk_bytes=16 << 10)
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
    ds.create_tensor("w", dtype="int32")
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.extend({"x": [rng.random((50 + i % 5, 6), dtype=np.float32) for i in range(N)],
               "embedding": rng.random((N, 128), dtype=np.float32),
               "caption": [f"a {'cat' if i % 3 else 'dog'} number {i}" for i in range(N)],
               "labels": [i % 2 for i in range(N)], "w": list(range(N)),
               "images": [_jpeg(i) for i in range(N)]})
    ds.commit("rows")
    ds.tag("t1")
    ds["x"][3] = np.ones((7, 6), np.float32)  # an inline patch
    ds["embedding"][5:12] = np.zeros((7, 128), np.float32)  # a stored patch chunk (> 2 KiB)
    ds["labels"][4] = "cat"
    ds.delete([10])
    ds.commit("patch and delete")
    for tensor, kind in [("caption", "bm25"), ("labels", "btree"), ("w", "minmax"),
                         ("embedding", "flat")]:
        ds.create_index(tensor, kind=kind)
    ds.query("SELECT id WHERE labels = 'dog' AND w < 40").save("dogs")
    ds.branch("dev")
    ds.checkout("dev")
    ds["w"][0] = 1000
    ds.commit("dev")
    return {k: store.get(k) for k in store.list("")}


def _canon(v: Any) -> Any:
    """A value as something `==` compares exactly (arrays by dtype, shape and bytes)."""
    if isinstance(v, np.ndarray):
        return ("nd", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, list | tuple):
        return tuple(_canon(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _canon(x)) for k, x in v.items()))
    return v


ROWS = (0, 3, 5, 11, 150, N - 2)


def _reads() -> dict[str, Callable[[Store], Any]]:
    q = np.linspace(0, 1, 128, dtype=np.float32)

    def remote(s: Store) -> plane.Dataset:
        return plane.open(_Remote(s), read_only=True)

    def local(s: Store) -> plane.Dataset:
        return plane.open(s, read_only=True)

    def rows(s: Store, t: str) -> Any:  # a fresh dataset per row: nothing cached
        return [remote(s)[t][i].numpy() for i in ROWS]

    def shapes(s: Store) -> Any:
        return [remote(s)["x"][i].shape for i in ROWS] + [remote(s)["x"].shape,
                                                          remote(s)["images"].shape]

    def whole(s: Store) -> Any:
        ds = remote(s)
        return [ds[t][:].numpy(aslist=True) for t in ds.tensors]

    def loader(s: Store) -> Any:
        ds = local(s)
        return [b for b in ds.numpy(batch_size=64, shuffle=False, tensors=["x", "embedding"])]

    def query(sql: str) -> Callable[[Store], Any]:
        return lambda s: (lambda v: (v.ids, v.scores))(local(s).query(sql, params={"q": q}))

    def view(s: Store) -> Any:
        v = plane.load_view(local(s), "dogs")
        return v.ids, v.commit_id, v["w"]

    def versions(s: Store) -> Any:
        ds = local(s)
        out = [ds.versions.branches(), ds.versions.tags(),
               [(e["id"], e["message"]) for e in ds.log()]]
        for version in ("dev", "t1"):
            d = plane.open(s, read_only=True, version=version)
            out += [d.commit_id, d["w"][:].numpy(), d["labels"][:].numpy()]
        return out

    return {
        "x rows": lambda s: rows(s, "x"),
        "embedding rows": lambda s: rows(s, "embedding"),
        "image rows": lambda s: rows(s, "images"),
        "local rows": lambda s: [local(s)["x"][i].numpy() for i in ROWS],
        "shapes": shapes,
        "SHAPE()": query("SELECT id WHERE SHAPE(x)[0] > 52"),
        "whole": whole,
        "loader": loader,
        "bm25": query("SELECT id WHERE CONTAINS(caption, 'dog')"),
        "bm25 rank": query("SELECT id, score ORDER BY BM25(caption, 'dog number') DESC "
                           "LIMIT 7"),
        "btree": query("SELECT id WHERE labels = 'cat'"),
        "minmax": query("SELECT id WHERE w > 250"),
        "flat": query("SELECT id, score ORDER BY COSINE_SIMILARITY(embedding, $q) DESC "
                      "LIMIT 5"),
        "view": view,
        "versions": versions,
    }


def _answers(objects: dict[str, bytes]) -> dict[str, Any]:
    store = MemoryStore()  # a fresh store (and URL): no partition loaded before
    for k, v in objects.items():
        store.put(k, v)
    out = {}
    for name, read in _reads().items():
        try:
            out[name] = _canon(read(store))
        except plane.PlaneError as e:
            out[name] = e
    return out


_BASE: dict[str, Any] = {}


def _base() -> tuple[dict[str, bytes], dict[str, Any]]:
    if not _BASE:
        objects = _build()
        _BASE["objects"], _BASE["answers"] = objects, _answers(objects)
    return _BASE["objects"], _BASE["answers"]


def _kind(key: str) -> str:
    if key.startswith("indexes/"):
        return "/".join(key.split("/")[:2]) if key.count("/") > 1 else "indexes/manifest"
    return key.split("/")[0]


KINDS = ("chunks", "chunk footer", "parts", "states", "commits", "refs", "dataset.json",
         "indexes/manifest", "indexes/data", "indexes/refs", "views")


def _flip_one(kind: str, which: int, at: int, xor: int) -> None:
    objects, want = _base()
    assert not any(isinstance(v, Exception) for v in want.values()), want
    keys = sorted(k for k in objects if _kind(k) == kind.replace("chunk footer", "chunks"))
    assert keys, kind
    key = keys[which % len(keys)]
    data = bytearray(objects[key])
    if kind == "chunk footer":  # the footer, its checksum, length and magic
        start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
        at = start + at % (len(data) - start)
    else:
        at %= len(data)
    data[at] ^= xor
    got = _answers({**objects, key: bytes(data)})
    for name, answer in got.items():
        if isinstance(answer, plane.PlaneError):
            continue  # refused: fine (a damaged object may stop anything that needs it)
        assert answer == want[name], f"{name} changed after flipping byte {at} of {key}"


_FLIPS = dict(kind=st.sampled_from(KINDS), which=st.integers(0, 1 << 16),
              at=st.integers(0, 1 << 24), xor=st.integers(1, 255))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(**_FLIPS)
def test_one_flipped_byte_never_changes_an_answer(kind: str, which: int, at: int,
                                                  xor: int) -> None:
    _flip_one(kind, which, at, xor)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(**_FLIPS)
def test_one_flipped_byte_never_changes_an_answer_long(kind: str, which: int, at: int,
                                                       xor: int) -> None:
    _flip_one(kind, which, at, xor)


def test_every_kind_of_object_is_present() -> None:
    objects, want = _base()
    assert {_kind(k) for k in objects} == set(KINDS) - {"chunk footer"}
    assert not any(isinstance(v, Exception) for v in want.values())
