"""Concurrent writers: real processes racing on one branch (local disk and S3), conflicts."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest

import plane

_WRITER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import plane
    url, opts = sys.argv[1], json.loads(sys.argv[2])
    tag, rounds = int(sys.argv[3]), int(sys.argv[4])
    ds = plane.open(url, storage_options=opts or None)
    print("ready", flush=True)
    sys.stdin.readline()  # the parent releases both writers at once
    for i in range(rounds):
        ds.extend({"v": np.arange(20) + tag * 100_000 + i * 100, "who": [str(tag)] * 20})
        ds.commit(f"writer {tag} round {i}")
    print("done", flush=True)
""")


def _race(url: str, opts: dict[str, Any] | None, rounds: int) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, url, json.dumps(opts or {}),
                               str(tag), str(rounds)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for tag in (1, 2)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0 and "done" in out


@pytest.mark.parametrize("backend", ["local", pytest.param("s3", marks=pytest.mark.s3)])
def test_two_processes_commit_to_one_branch(backend: str, tmp_path: Any,
                                            request: pytest.FixtureRequest) -> None:
    if backend == "s3":
        url, opts = request.getfixturevalue("s3_bucket")
    else:
        url, opts = str(tmp_path / "d"), None
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("v", dtype="int64")
    ds.create_tensor("who", htype="text")
    ds.commit("empty schema", allow_empty=True)
    rounds = 8
    _race(url, opts, rounds)
    got = plane.open(url, storage_options=opts)
    messages = [e["message"] for e in got.log()]
    for tag in (1, 2):
        for i in range(rounds):
            assert f"writer {tag} round {i}" in messages
    assert len(got) == 2 * rounds * 20
    values = got["v"].numpy()
    expect = [t * 100_000 + i * 100 + k for t in (1, 2) for i in range(rounds) for k in range(20)]
    assert sorted(values.tolist()) == sorted(expect)
    assert len(set(got.row_ids.tolist())) == len(got)
    # every writer's rows stay in its own commit order
    for tag in (1, 2):
        mine = values[values // 100_000 == tag]
        assert mine.tolist() == sorted(mine.tolist())


def test_same_row_updates_conflict_disjoint_rows_rebase(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(10)})
    ds.commit("base")
    a = plane.open(tmp_path / "d")
    b = plane.open(tmp_path / "d")
    a["v"][3] = 100
    b["v"][4] = 200
    a.commit("a sets 3")
    b.commit("b sets 4")  # disjoint rows: rebased onto a's commit
    got = plane.open(tmp_path / "d")
    assert got["v"][[3, 4]].numpy().tolist() == [100, 200]
    assert [e["message"] for e in got.log()][:2] == ["b sets 4", "a sets 3"]
    a = plane.open(tmp_path / "d")
    b = plane.open(tmp_path / "d")
    rid = int(a.row_ids[5])
    a["v"][5] = 1
    b["v"][5] = 2
    head = a.commit("a sets 5")
    with pytest.raises(plane.CommitConflictError, match=rf"'v': row ids \[{rid}\]"):
        b.commit("b sets 5")
    final = plane.open(tmp_path / "d")
    assert final.commit_id == head and int(final["v"][5].numpy()) == 1
    c = plane.open(tmp_path / "d")
    d = plane.open(tmp_path / "d")
    c.delete([6])
    d["v"][6] = 9
    c.commit("c deletes 6")
    with pytest.raises(plane.CommitConflictError, match="touch the same rows"):
        d.commit("d updates 6")
    assert len(plane.open(tmp_path / "d")) == 9


def test_writer_that_loses_two_races_in_a_row_keeps_its_rows(tmp_path: Any) -> None:
    from collections.abc import Callable

    from plane.storage import LocalStore, WrapperStore

    class Interleave(WrapperStore):
        """Runs one queued action (another writer's commit) before each branch move."""

        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.before: list[Callable[[], object]] = []

        def put_if_absent(self, key: str, data: bytes) -> bool:
            if key.startswith("refs/heads/") and self.before:
                self.before.pop(0)()
            return self.inner.put_if_absent(key, data)

    ds = plane.create(tmp_path / "d")
    ds.create_tensor("v", dtype="int64")
    ds.commit("schema", allow_empty=True)
    a, b = plane.open(tmp_path / "d"), plane.open(tmp_path / "d")
    store = Interleave(LocalStore(tmp_path / "d"))
    c = plane.open(store)
    a.extend({"v": [1, 1]})
    b.extend({"v": [2, 2, 2]})
    c.extend({"v": [3]})
    c.create_tensor("extra", htype="text")
    c["extra"][0] = "c"
    store.before = [lambda: a.commit("a"), lambda: b.commit("b")]
    c.commit("c")  # loses to a, rebases, loses to b, rebases again, lands
    got = plane.open(tmp_path / "d")
    assert sorted(got["v"].numpy().tolist()) == [1, 1, 2, 2, 2, 3]
    assert got["extra"].numpy() == [None, None, None, None, None, "c"]  # nulls rebased
    assert [e["message"] for e in got.log()][:3] == ["c", "b", "a"]
