"""plane._runtime, the bottom layer: the shared I/O pool, the LRU bounded in bytes."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from plane._runtime import IO_THREADS, LRU, io_pool, process_pool, usable_cpus
from plane.storage import MemoryStore


def test_lru_keeps_the_recently_read_within_its_bound() -> None:
    lru = LRU(10, len)
    lru.put("a", b"xxxx")
    lru.put("b", b"yyyy")
    assert lru.get("a") == b"xxxx"  # a is now the most recent
    lru.put("c", b"zzzz")  # 12 bytes > 10: the least recently read (b) goes
    assert lru.get("b") is None and lru.get("a") == b"xxxx" and lru.get("c") == b"zzzz"
    assert lru.total == 8
    lru.put("big", b"0" * 11)  # larger than the bound: not kept, nothing evicted for it
    assert lru.get("big") is None and lru.total == 8


def test_one_io_pool_per_process_as_wide_as_the_store_default() -> None:
    assert io_pool() is io_pool() is process_pool("io", IO_THREADS)
    assert io_pool()._max_workers == IO_THREADS == MemoryStore.io_threads
    assert usable_cpus() >= 1


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "darwin", reason="needs fork")
def test_a_forked_child_gets_its_own_pool() -> None:
    parent = io_pool()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the inherited pool has no threads; it must not be reused
        ok = io_pool() is not parent and io_pool().submit(lambda: 7).result(timeout=10) == 7
        os.write(w, b"1" if ok else b"0")
        os._exit(0)
    os.close(w)
    got = os.read(r, 1)
    os.waitpid(pid, 0)
    assert got == b"1"


def test_a_read_on_an_io_thread_does_not_wait_on_the_io_pool(tmp_path: Path) -> None:
    """Read-ahead used to run on the I/O pool and fan out on it again: with every I/O thread
    waiting for tasks queued behind them, the loader hung. Reads from I/O threads run inline."""
    import numpy as np

    import plane
    from plane._runtime import IO_THREADS, io_pool

    ds = plane.create(tmp_path / "d")
    ds.create_tensor("x", dtype="int64", chunk_bytes=1024)
    ds.extend({"x": np.arange(4000)})
    ds.commit("c")
    snap = ds.snapshot()
    keys = [k for e in range(snap.index("x").num_entries) for k in snap.index("x").entry_keys(e)]
    assert len(keys) > 2
    readers = [plane.open(tmp_path / "d", read_only=True).snapshot().reader
               for _ in range(2 * IO_THREADS)]  # more outer calls than I/O threads
    futs = [io_pool().submit(r.chunks, keys, lambda k: "test") for r in readers]
    got = [f.result(timeout=60) for f in futs]
    assert all(sorted(g) == sorted(set(keys)) for g in got)
