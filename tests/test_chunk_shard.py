"""A chunk shard (`actors.ChunkShard`, in-process, no Ray) with a memory budget smaller than
the data: the small chunks of secondary tensors (labels) stay resident while the image chunks
stream through the budget, so each chunk is read from the store once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import plane
from actors.chunk_cache import ChunkShard

ROWS = 1500


def test_small_tensor_chunks_stay_while_images_stream(tmp_path: Path) -> None:
    url = str(tmp_path / "ds")
    ds = plane.create(url)
    ds.create_tensor("images", htype="image", sample_compression="jpeg", chunk_bytes=4096)
    ds.create_tensor("labels", htype="class_label", class_names=["a", "b", "c"],
                     chunk_bytes=1024)
    rng = np.random.default_rng(0)
    ds.extend({"images": list(rng.integers(0, 255, (ROWS, 16, 16, 3), dtype=np.uint8)),
               "labels": rng.integers(0, 3, ROWS).tolist()})
    ds.commit("data")
    snap = ds.snapshot()
    images, labels = snap.index("images"), snap.index("labels")
    assert labels.num_entries > 2 and images.num_entries > 20
    memory = 16 << 10  # a few image chunks, of 1.7 MB of them
    assert images.nbytes > 50 * memory
    assert ROWS * 4 * 2 <= memory  # the labels (uint32 in memory) fit the pinned half
    shard = ChunkShard(url, None, 0, memory)
    entry = images.locate(snap.to_physical(np.arange(ROWS, dtype=np.int64)))[0]
    for epoch in range(2):  # visit image chunks in a shuffled order, with their labels
        for e in np.random.default_rng(epoch).permutation(images.num_entries):
            pos = np.flatnonzero(entry == e).astype(np.int64)
            got = shard.gather(snap.state_key, {"images": pos, "labels": pos})
            assert np.array_equal(got["labels"], snap.read("labels", pos))
    gets = shard.counted.gets
    label_keys = [f"chunks/{k}" for e in range(labels.num_entries)
                  for k in labels.entry_keys(e)]
    assert [gets[k] for k in label_keys] == [1] * len(label_keys)  # once, over two epochs
    image_keys = [f"chunks/{k}" for e in range(images.num_entries)
                  for k in images.entry_keys(e)]
    assert {gets[k] for k in image_keys} == {2}  # the cache is smaller: once per epoch
    # the pinned chunks count against the budget: the LRU has what is left
    assert 0 < shard.pinned_bytes <= memory // 2
    assert shard._reader.cache.max_bytes == memory - shard.pinned_bytes


@given(st.lists(st.binary(max_size=64), max_size=40))
def test_packed_samples_come_back_byte_for_byte(samples: list[bytes]) -> None:
    """Media answers travel as one buffer + offsets (zero-copy through the object store)."""
    from actors.chunk_cache import pack_samples, unpack_samples

    buf, offsets = pack_samples(samples)
    assert buf.dtype == np.uint8 and offsets.shape == (len(samples) + 1,)
    assert [bytes(v) for v in unpack_samples(buf, offsets)] == samples


def test_gathered_media_equal_the_stored_bytes_with_edits(tmp_path: Path) -> None:
    """The shard packs media straight from the chunks (`Snapshot.read_packed`), and row by
    row where it cannot: rows rewritten after the commit (patches) and a large sample in
    chunks of its own (tiled) come back as the stored bytes, in the order asked."""
    from actors.chunk_cache import unpack_samples

    url = str(tmp_path / "ds")
    ds = plane.create(url)
    ds.create_tensor("images", htype="image", sample_compression="png", chunk_bytes=2048)
    rng = np.random.default_rng(1)
    imgs = list(rng.integers(0, 255, (60, 8, 8, 3), dtype=np.uint8))
    imgs[7] = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)  # larger than a chunk
    ds.extend({"images": imgs})
    ds.commit("data")
    ds["images"][[3, 40]] = [rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)] * 2
    ds.commit("edit two rows")
    snap = ds.snapshot()
    pos = rng.permutation(60).astype(np.int64)
    shard = ChunkShard(url, None, 0, 1 << 20)
    buf, offsets, shapes = shard.gather(snap.state_key, {"images": pos}, ["images"])["images"]
    want = snap.read("images", pos, decode=False, aslist=True)
    assert [bytes(v) for v in unpack_samples(buf, offsets)] == [bytes(w) for w in want]
    assert np.array_equal(shapes, snap.shapes("images", pos))
    # rows without edits or tiles: the packed path itself, against the row-by-row read
    clean = pos[~np.isin(pos, [3, 7, 40])]
    packed = snap.read_packed("images", clean)
    assert packed is not None
    assert [bytes(v) for v in unpack_samples(*packed)] == \
        [bytes(w) for w in snap.read("images", clean, decode=False, aslist=True)]
    assert snap.read_packed("images", pos) is None  # edited and tiled rows: declined

