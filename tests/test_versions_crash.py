"""SIGKILL a writer at random points during commits: the last commit always opens and verifies."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
from typing import Any

import numpy as np
import pytest

import plane
from plane.core._layout import RefStore
from plane.core._state import Commit, State, TensorPart
from plane.storage import open_store

ROWS = 150


def _writer(path: str, conn: Any) -> None:
    ds = plane.open(path)
    i = 0
    while True:
        conn.send("writing")
        ds.extend({"v": np.arange(ROWS) + i, "t": [f"r{i}"] * ROWS,
                   "img": np.full((ROWS, 8, 8, 3), i % 255, np.uint8)})
        ds.commit(f"round {i}")
        conn.send("committed")
        i += 1


def _check(path: str) -> int:
    """Every ref points at existing, verified objects; the head commit reads back fully."""
    store = open_store(path)
    refs = RefStore(store)
    for b in refs.branches():
        seq, rec = refs.head(b)  # type: ignore[misc]
        state = State.load(store, rec["state"])  # verifies the checksum in its name
        for pkey in state.tensors.values():
            part = TensorPart.load(store, pkey)
            for k in part.index.keys:
                assert store.exists(f"chunks/{k}"), f"ref {b}/{seq} reaches missing chunk {k}"
        if rec.get("commit"):
            Commit.load(store, rec["commit"])
    ds = plane.open(path, read_only=True)
    commits = [e for e in ds.log() if e["message"].startswith("round")]
    head = plane.open(path, version=ds.commit_id, read_only=True) if ds.commit_id else ds
    assert len(head) == ROWS * len(commits)
    for name in head.tensors:
        head[name].numpy()  # reads every chunk, verifying every checksum
    return len(commits)


def test_sigkill_during_commits_never_breaks_the_dataset(tmp_path: Any) -> None:
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs fork")
    path = str(tmp_path / "d")
    ds = plane.create(path)
    ds.create_tensor("v", dtype="int64", chunk_bytes=2048)
    ds.create_tensor("t", htype="text", chunk_bytes=1024)
    ds.create_tensor("img", htype="image", chunk_bytes=4096)
    ds.commit("schema", allow_empty=True)
    ctx = mp.get_context("fork")
    rng = np.random.default_rng(7)
    mid_write = 0  # kills that landed between "writing" and "committed"
    previous = 0
    for _ in range(50):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=_writer, args=(path, child), daemon=True)
        p.start()
        assert parent.recv() == "writing"  # the child is inside its first write now
        # the random kill point: somewhere in the next ~3 commits
        parent.poll(float(rng.uniform(0, 0.08)))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        last = "writing"
        while parent.poll():
            try:
                last = parent.recv()
            except EOFError:
                break
        mid_write += last == "writing"
        n = _check(path)
        assert n >= previous  # committed history is never lost
        previous = n
    assert mid_write >= 5, "too few kills landed during a write to test anything"
    report = plane.gc(path, older_than=0)
    assert all(not k.startswith("refs/") for k in report.unreachable)
