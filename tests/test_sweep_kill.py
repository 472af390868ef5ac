"""Kill sweep: SIGKILL writers at random points of every write path (extend + commit, Parquet
ingest, index build, merge, gc). After each kill the dataset opens, its head is exactly the
state before or after the operation (values checked), a later commit works, and after
``plane.gc(older_than=0, dry_run=False)`` every object left is reachable: no orphan chunk,
part, state, commit or index object, and no temp file (issue #12).

Kill points come two ways: a hook in the child that SIGKILLs it just before its n-th rename,
link or unlink (every step between two store writes, and inside a write after its temp file is
complete), and a random delay after the child says it started (anywhere, mid-write included).
The delay is the fault injection only: no assertion depends on timing.

The short version runs in the default suite; ``-m slow`` runs the long one and prints its
figures (tries, kills that landed mid-operation, lost commits, wrong errors, leftovers gc
reclaimed).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import plane
from plane.core._layout import DATASET_KEY, RefStore, chunk_key
from plane.core._state import Commit, State, TensorPart
from plane.format._hash import unseal
from plane.storage import LocalStore, Store

OPS = ("commit", "ingest", "index", "merge", "gc")
INDEXES = (("v", "btree"), ("v", "minmax"), ("t", "bm25"), ("e", "flat"))
SWEPT = ("commits/", "states/", "parts/", "chunks/", "indexes/")


def rows(values: np.ndarray) -> dict[str, Any]:
    """The three tensors of a row follow from its value, so a torn row can't go unseen."""
    v = np.asarray(values, np.int64)
    return {"v": v, "e": np.repeat(v[:, None], 4, 1).astype(np.float32),
            "t": [f"r{x}" for x in v.tolist()]}


def head_values(path: str) -> np.ndarray:
    """The branch head's values, checked for consistency and read in full (checksums)."""
    ds = plane.open(path, read_only=True)
    v, e, t = ds["v"].numpy(), ds["e"].numpy(), ds["t"].numpy(aslist=True)
    assert e.shape == (len(ds), 4) and np.array_equal(e[:, 0], v.astype(np.float32))
    assert t == [f"r{x}" for x in v.tolist()]
    return np.asarray(v)


# ---- the reachable set, computed here independently of gc -------------------------------------
def _json(store: Store, key: str) -> Any:
    raw = store.get(key)
    try:
        return json.loads(raw)
    except ValueError:
        return json.loads(unseal(raw, key))


def reachable(store: Store) -> set[str]:
    """Every object reachable from the ref records, tags and views, loading each (a dangling
    pointer raises)."""
    refs = RefStore(store)
    keys = {DATASET_KEY}
    commits: set[str] = set()
    states: set[str] = set()
    todo: list[str] = []
    for k in store.list("refs/heads/"):
        rec = refs._read(k)
        if not rec.get("deleted"):
            states.add(rec["state"])
            todo += [rec["commit"]] if rec.get("commit") else []
    todo += [str(t["commit"]) for t in refs.tags().values()]
    todo += [_json(store, k)["commit"] for k in store.list("views/")]
    while todo:
        c = todo.pop()
        if c not in commits:
            commits.add(c)
            commit = Commit.load(store, c)
            states.add(commit.state)
            todo += commit.parents
    keys |= states | {f"commits/{c}.json" for c in commits}
    for s in states:
        for pkey in State.load(store, s).tensors.values():
            keys.add(pkey)
            part = TensorPart.load(store, pkey)
            keys |= {chunk_key(k) for k in part.index.keys}
            keys |= {chunk_key(p.key) for p in part.patches if p.data is None}
    for ref in store.list("indexes/refs/"):
        if ref.rsplit("/", 1)[-1] in commits:
            manifest = _json(store, ref)["manifest"]
            keys |= {ref, manifest} | {p["key"] for p in _json(store, manifest)["partitions"]}
    missing = sorted(k for k in keys if not store.exists(k))
    assert not missing, f"reachable but missing: {missing[:5]}"
    return keys


def temp_files(path: str) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
            if f.startswith(".tmp-")]


def leftovers(path: str) -> tuple[list[str], list[str]]:
    """(temp files, unreachable objects) in the dataset now."""
    store = LocalStore(path)
    keep = reachable(store)
    orphans = [k for p in SWEPT for k in store.list(p) if k not in keep]
    return temp_files(path), orphans


# ---- the child: one operation, killed by a hook or from outside -------------------------------
def _install_kill_hook(kill_at: int, counter: list[int]) -> None:
    """Count this process's renames, links and unlinks; SIGKILL it just before the
    `kill_at`-th (0: never)."""
    for name in ("replace", "link", "unlink"):
        real = getattr(os, name)

        def hooked(*a: Any, _real: Any = real, **kw: Any) -> Any:
            counter[0] += 1
            if counter[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return _real(*a, **kw)

        setattr(os, name, hooked)


def _child(op: str, path: str, arg: Any, conn: Any, kill_at: int) -> None:
    counter = [0]
    _install_kill_hook(kill_at, counter)
    ds = plane.open(path)
    conn.send("start")
    if op == "commit":
        ds.extend(rows(arg))
        ds.commit(f"add {arg[0]}")
    elif op == "ingest":
        ds.extend_from(parquet=arg, batch_rows=64, commit=f"ingest {arg}", progress=False)
    elif op == "index":
        ds.create_index(*arg, progress=False)
    elif op == "merge":
        ds.merge(arg, message=f"merge {arg}")
    else:
        plane.gc(path, older_than=0, dry_run=False)
    conn.send(("done", counter[0]))
    conn.close()
    os._exit(0)


# ---- the sweep --------------------------------------------------------------------------------
class Sweep:
    def __init__(self, root: Path, seed: int) -> None:
        self.root = root
        self.path = str(root / "ds")
        self.rng = np.random.default_rng(seed)
        self.next_value = 1
        self.figures: Counter[str] = Counter()
        self.wrong: list[str] = []
        self.writes = dict.fromkeys(OPS, 1)  # renames/links/unlinks of an op (learnt)
        self.seconds = dict.fromkeys(OPS, 0.2)  # how long an op takes (learnt)
        ds = plane.create(self.path)
        ds.create_tensor("v", dtype="int64", chunk_bytes=1024)
        ds.create_tensor("e", dtype="float32", shape=(4,), chunk_bytes=1024)
        ds.create_tensor("t", htype="text", chunk_bytes=1024)
        ds.extend(rows(self._values(300)))
        ds.commit("base")

    def _values(self, n: int) -> np.ndarray:
        out = np.arange(self.next_value, self.next_value + n, dtype=np.int64)
        self.next_value += n
        return out

    def _commit_on_main(self, n: int, message: str) -> None:
        ds = plane.open(self.path)
        ds.extend(rows(self._values(n)))
        ds.commit(message)

    def prepare(self, op: str, i: int) -> tuple[Any, np.ndarray, np.ndarray]:
        """(argument of the child, head values before, head values if it completes)."""
        prev = head_values(self.path)
        if op == "commit":
            new = self._values(int(self.rng.integers(1, 200)))
            return new, prev, np.concatenate([prev, new])
        if op == "ingest":
            new = self._values(int(self.rng.integers(1, 300)))
            src = str(self.root / f"in{i}.parquet")
            r = rows(new)
            pq.write_table(pa.table({
                "v": pa.array(r["v"]), "t": pa.array(r["t"]),
                "e": pa.FixedSizeListArray.from_arrays(pa.array(r["e"].ravel()), 4)}), src,
                row_group_size=50)
            return src, prev, np.concatenate([prev, new])
        if op == "index":
            return INDEXES[int(self.rng.integers(len(INDEXES)))], prev, prev
        if op == "merge":  # a side branch changes rows, main appends: a three-way merge
            ds = plane.open(self.path)
            side = f"side{i}"
            ds.checkout(side, create=True)
            at = np.sort(self.rng.choice(len(prev), 5, replace=False))
            changed = self._values(5)
            for name, vals in rows(changed).items():
                ds[name][at.tolist()] = vals
            ds.commit(f"change {at.tolist()}")
            self._commit_on_main(20, "main moves on")
            prev = head_values(self.path)
            new = prev.copy()
            new[at] = changed
            return side, prev, new
        # gc: leave something to collect (a branch's commit, then the branch deleted)
        ds = plane.open(self.path)
        ds.checkout(f"junk{i}", create=True)
        ds.extend(rows(self._values(100)))
        ds.commit("junk")
        ds.checkout("main")
        ds.versions.delete_branch(f"junk{i}")
        return None, prev, prev

    def run_child(self, op: str, arg: Any, mode: str) -> tuple[bool, bool]:
        """Start the child and kill it ("hook": at one of its store steps, "delay": after a
        random time, "none": not at all); (it completed, the kill landed mid-operation)."""
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        kill_at = int(self.rng.integers(1, self.writes[op] + 1)) if mode == "hook" else 0
        p = ctx.Process(target=_child, args=(op, self.path, arg, child, kill_at), daemon=True)
        p.start()
        child.close()
        started = parent.poll(60) and parent.recv() == "start"
        t0 = time.perf_counter()
        if mode == "delay":
            parent.poll(float(self.rng.uniform(0, 1.3 * self.seconds[op])))  # fault injection
        else:
            p.join(120)  # the hook kills it, or it completes
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
        p.join()
        done = None
        try:
            while parent.poll():
                msg = parent.recv()
                if isinstance(msg, tuple):
                    done = msg
        except EOFError:
            pass
        if done is not None:  # the latest complete run: the dataset grows as we go
            self.writes[op] = max(1, int(done[1]))
            if mode == "none":
                self.seconds[op] = time.perf_counter() - t0
        if not started:
            self.wrong.append(f"{op}: the child never started (exit {p.exitcode})")
        return done is not None, done is None and p.exitcode == -signal.SIGKILL

    def check(self, op: str, arg: Any, prev: np.ndarray, new: np.ndarray, done: bool) -> None:
        got = head_values(self.path)  # the dataset opens and reads back whole
        if np.array_equal(got, prev):
            if done and not np.array_equal(prev, new):
                self.figures["lost commits"] += 1  # it returned, yet the head did not move
        elif not np.array_equal(got, new):
            self.wrong.append(f"{op}: head is neither the state before nor after "
                              f"({len(prev)}/{len(new)} rows expected, {len(got)} found)")
        ds = plane.open(self.path, read_only=True)
        infos = plane.query.list_indexes(ds)
        for info in infos:  # a registered index is complete
            for part in info.partitions:
                assert ds.store.exists(part["key"]), f"{info} lacks {part['key']}"
        if op == "index" and done and not any(
                (x.tensor, x.kind, x.commit) == (*arg, ds.commit_id) for x in infos):
            self.figures["lost commits"] += 1  # an index build that returned is registered

    def collect(self) -> None:
        """gc everything unreachable; then nothing unreachable, and no temp file, is left."""
        tmps, orphans = leftovers(self.path)
        self.figures["temp files reclaimed"] += len(tmps)
        self.figures["orphan index objects reclaimed"] += sum(
            k.startswith("indexes/") for k in orphans)
        plane.gc(self.path, older_than=0, dry_run=False)
        tmps, orphans = leftovers(self.path)
        assert (tmps, orphans) == ([], []), f"gc left {tmps[:3]} {orphans[:3]}"
        again = plane.gc(self.path, older_than=0)
        assert (again.unreachable, again.temporary) == ([], [])

    def run(self, tries_per_op: int) -> Counter[str]:
        # one undisturbed run of each op first: how many steps and how long it takes
        plan = [(op, "none") for op in OPS] + [
            (op, ("hook", "delay")[k % 2]) for k in range(tries_per_op) for op in OPS]
        for i, (op, mode) in enumerate(plan):
            arg, prev, new = self.prepare(op, i)
            done, mid = self.run_child(op, arg, mode)
            self.figures["tries"] += mode != "none"
            self.figures["completed"] += done and mode != "none"
            self.figures["killed mid-operation"] += mid
            self.figures[f"killed mid-{op}"] += mid
            try:
                self.check(op, arg, prev, new, done)
                self._commit_on_main(3, f"after try {i}")  # a later commit works
                if op == "merge":
                    plane.open(self.path).versions.delete_branch(arg)
                self.collect()
            except AssertionError:
                raise
            except Exception as e:  # any error here is a wrong one: report them all
                self.wrong.append(f"{op} (try {i}): {type(e).__name__}: {e}")
                break
        self.figures["lost commits"] += 0  # shown even when none
        self.figures["wrong errors"] = len(self.wrong)
        return self.figures


def _sweep(tmp_path: Path, tries_per_op: int, seed: int) -> Counter[str]:
    if "fork" not in mp.get_all_start_methods():
        pytest.skip("needs fork")
    sweep = Sweep(tmp_path, seed)
    figures = sweep.run(tries_per_op)
    print("\nkill sweep:", dict(figures))
    assert sweep.wrong == []
    assert figures["lost commits"] == 0
    assert figures["tries"] == tries_per_op * len(OPS)
    # the sweep tests something: most kills land inside an operation, in every kind of one
    assert figures["killed mid-operation"] >= figures["tries"] // 2
    for op in OPS:
        assert figures[f"killed mid-{op}"] >= 1, f"no kill landed inside {op}"
    return figures


def test_kill_sweep_short(tmp_path: Path) -> None:
    _sweep(tmp_path, tries_per_op=4, seed=12)


@pytest.mark.slow
def test_kill_sweep(tmp_path: Path) -> None:
    _sweep(tmp_path, tries_per_op=40, seed=2026)
