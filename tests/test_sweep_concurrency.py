"""The concurrency sweep as a test: N writer processes on one branch (local disk and S3), each
making many small commits (appends, updates of its own rows, updates of shared hot rows).

Checked: nothing is lost (replaying every successful commit's writes in history order gives the
final values, and every successful commit is in the history), a true conflict raises
CommitConflictError naming the hot row, and nothing fails spuriously (no conflict on rows only
that writer touched, no "too many concurrent writers")."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane
from plane.core._state import Commit

_ROOT = str(Path(__file__).resolve().parents[1])

_WRITER = textwrap.dedent("""
    import json, random, sys
    import numpy as np
    import plane
    url, opts, out = sys.argv[1], json.loads(sys.argv[2]) or None, sys.argv[3]
    w, commits, seed = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    hot = json.loads(sys.argv[7])
    rng = random.Random(seed)
    ds = plane.open(url, storage_options=opts)
    own = []  # committed row ids of this writer
    log = []

    def pos(rid):
        return int(np.flatnonzero(ds.row_ids == rid)[0])

    print("ready", flush=True)
    sys.stdin.readline()  # the parent releases every writer at once
    for i in range(commits):
        stamp = (w + 1) * 10**9 + i * 10
        writes, added, hot_hit = {}, {}, False
        if not own or rng.random() < 0.4:
            k = rng.randint(1, 3)
            keys = [stamp + j for j in range(k)]
            ds.extend({"key": np.array(keys, np.int64), "v": np.array(keys, np.int64)})
            new = ds.row_ids[-k:].tolist()
            added = {str(r): key for r, key in zip(new, keys)}
            if rng.random() < 0.5:  # update a row appended in this same commit
                ds["v"][len(ds) - 1] = stamp + 5
                writes[str(new[-1])] = stamp + 5
        if own and (rng.random() < 0.7 or not added):
            rid = rng.choice(own)
            ds["v"][pos(rid)] = stamp + 6
            writes[str(rid)] = stamp + 6
        if rng.random() < 0.3:
            rid = rng.choice(hot)
            ds["v"][pos(rid)] = stamp + 7
            writes[str(rid)] = stamp + 7
            hot_hit = True
        try:
            cid = ds.commit(f"w{w} c{i}")
        except plane.CommitConflictError as e:
            log.append({"ok": False, "error": str(e), "hot": hot_hit,
                        "touched": sorted(int(r) for r in writes)})
            ds = plane.open(url, storage_options=opts)  # nothing was written: start over
            continue
        log.append({"ok": True, "commit": cid, "writes": writes, "added": added})
        own += [int(r) for r in added]
    with open(out, "w") as f:
        json.dump(log, f)
    print("done", flush=True)
""")


def _sweep(url: str, opts: dict[str, Any] | None, tmp: Path, writers: int, commits: int,
           hot_rows: int = 3) -> dict[str, int]:
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("key", dtype="int64")
    ds.create_tensor("v", dtype="int64")
    ds.extend({"key": np.arange(hot_rows), "v": np.arange(hot_rows)})
    ds.commit("hot rows")
    hot = ds.row_ids.tolist()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [_ROOT, *filter(None, [os.environ.get("PYTHONPATH")])]))
    procs = [subprocess.Popen(
        [sys.executable, "-c", _WRITER, url, json.dumps(opts or {}), str(tmp / f"w{w}.json"),
         str(w), str(commits), str(1000 + w), json.dumps(hot)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        for w in range(writers)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            out, _ = p.communicate(timeout=600)
            assert p.returncode == 0 and "done" in out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    logs = [json.loads((tmp / f"w{w}.json").read_text()) for w in range(writers)]
    return _check(url, opts, hot, logs)


def _check(url: str, opts: dict[str, Any] | None, hot: list[int],
           logs: list[list[dict[str, Any]]]) -> dict[str, int]:
    final = plane.open(url, storage_options=opts)
    chain = []  # history, oldest first (rebases keep it linear)
    c: str | None = final.commit_id
    while c is not None:
        chain.append(c)
        parents = Commit.load(final.store, c).parents
        c = parents[0] if parents else None
    chain.reverse()
    order = {c: i for i, c in enumerate(chain)}
    ok = [e for log in logs for e in log if e["ok"]]
    failed = [e for log in logs for e in log if not e["ok"]]
    lost = [e["commit"] for e in ok if e["commit"] not in order]
    # replay every successful commit's writes in history order: that is the final dataset
    expect = dict(zip(hot, range(len(hot))))
    for e in sorted((e for e in ok if e["commit"] in order), key=lambda e: order[e["commit"]]):
        expect.update({int(r): k for r, k in e["added"].items()})
        expect.update({int(r): v for r, v in e["writes"].items()})
    got = dict(zip(final.row_ids.tolist(), final["v"].numpy().tolist()))
    wrong = {r: (expect.get(r), got.get(r)) for r in set(expect) | set(got)
             if expect.get(r) != got.get(r)}
    spurious, true = [], []
    for e in failed:
        named = [int(x) for x in re.findall(r"\d+", e["error"].split("row ids", 1)[-1])
                 ] if "row ids" in e["error"] else []
        if e["hot"] and named and set(named) <= set(hot) & set(e["touched"]):
            true.append(e)
        else:
            spurious.append(e)
    figures = {"tried": len(ok) + len(failed), "committed": len(ok), "lost": len(lost),
               "wrong_values": len(wrong), "spurious": len(spurious),
               "true_conflicts": len(true)}
    print(f"\nsweep {final.url}: {figures}")
    assert not lost, f"successful commits missing from history: {lost[:5]}"
    assert not wrong, f"rows whose final value is not the replayed one: {list(wrong.items())[:5]}"
    assert not spurious, f"spurious commit failures: {[e['error'][:300] for e in spurious[:3]]}"
    return figures


def _two(tmp_path: Path, rows: int = 4) -> tuple[str, plane.Dataset, plane.Dataset]:
    url = str(tmp_path / "d")
    ds = plane.create(url)
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(rows)})
    ds.commit("base")
    return url, plane.open(url), plane.open(url)


def test_rows_both_writers_appended_are_not_shared(tmp_path: Path) -> None:
    """Each writer's appended rows are numbered from the base's end on both sides: updating
    or deleting one's own new row clashed with the other's new row of the same number."""
    url, a, b = _two(tmp_path)
    a.extend({"v": [10, 12]})
    a["v"][4] = 11
    a.delete([5])
    b.extend({"v": [20, 22]})
    b["v"][4] = 21
    b["v"][5] = 23
    b.commit("b updates its new rows")
    a.commit("a updates and deletes its new rows")
    assert plane.open(url)["v"].numpy().tolist() == [0, 1, 2, 3, 21, 23, 11]
    url, a, b = _two(tmp_path / "again")
    a.extend({"v": [10]})
    a["v"][4] = 11
    b.extend({"v": [20]})
    b.delete([4])
    b.commit("b deletes its new row")
    a.commit("a updates its new row")
    assert plane.open(url)["v"].numpy().tolist() == [0, 1, 2, 3, 11]


def test_fold_of_a_later_base_is_no_conflict_on_own_rows(tmp_path: Path) -> None:
    """The other side's history folded a base newer than ours: its fold holds every row ever
    patched, among them rows only this writer changed; only a changed value counts."""
    from plane.core._working import PATCH_COMPACT_AT

    url, ds, _ = _two(tmp_path, rows=10)
    ds["v"][1] = 100  # a's row, patched long ago: it is in every later fold
    ds.commit("a's row once")
    for i in range(PATCH_COMPACT_AT - 2):
        ds["v"][9] = 900 + i
        ds.commit(f"hot {i}")  # base S: PATCH_COMPACT_AT - 1 patches
    a, x = plane.open(url), plane.open(url)
    a["v"][1] = 101
    x["v"][5] = 500
    x.commit("x on S: one patch more, no fold yet")
    y = plane.open(url)
    y["v"][6] = 600
    y.commit("y folds x's base, then its own patch")
    a.commit("a updates its own row again")
    got = plane.open(url)["v"].numpy().tolist()
    assert got == [0, 101, 2, 3, 4, 500, 600, 7, 8, 900 + PATCH_COMPACT_AT - 3]
    # a real clash across such a fold still raises, naming the row
    a, x = plane.open(url), plane.open(url)
    for i in range(PATCH_COMPACT_AT):
        x["v"][2] = 200 + i
        x.commit(f"x {i}")  # x folds along the way
    a["v"][2] = -2
    rid = int(a.row_ids[2])
    with pytest.raises(plane.CommitConflictError, match=rf"row ids \[{rid}\]"):
        a.commit("a clashes on row 2")
    assert plane.open(url)["v"][2].numpy() == 200 + PATCH_COMPACT_AT - 1


class _Interleave:
    """A store that lets another writer commit before each of the next `n` branch moves."""

    def __new__(cls, inner: Any, other: plane.Dataset, n: int) -> Any:
        from plane.storage import WrapperStore

        class Store(WrapperStore):
            left = n

            def put_if_absent(self, key: str, data: bytes) -> bool:
                if key.startswith("refs/heads/") and self.left:
                    self.left -= 1
                    other["v"][0] = self.left
                    other.commit(f"other {self.left}")
                return self.inner.put_if_absent(key, data)

        return Store(inner)


def test_a_writer_losing_many_races_backs_off_and_lands(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """Losing more than 50 races in a row used to fail ("too many concurrent writers")."""
    import plane.core._working as dmod
    from plane.storage import LocalStore

    bounds: list[float] = []

    class Jitter:
        def uniform(self, lo: float, hi: float) -> float:
            bounds.append(hi)
            return hi / 1000  # keep the test fast; the bound is what is checked

    monkeypatch.setattr(dmod, "_JITTER", Jitter(), raising=False)
    url, _, other = _two(tmp_path)
    c = plane.open(_Interleave(LocalStore(url), other, 60))
    c["v"][3] = 33
    c.commit("c after 60 lost races")
    got = plane.open(url)
    assert got["v"].numpy().tolist() == [0, 1, 2, 33]
    assert [e["message"] for e in got.log()][:2] == ["c after 60 lost races", "other 0"]
    assert len(bounds) == 60  # one pause per lost race, growing, capped
    assert bounds[:3] == sorted(bounds[:3]) and bounds[0] < bounds[2] <= max(bounds)
    assert max(bounds) == bounds[-1] <= 1.0


def test_a_writer_gives_up_only_after_attempts_and_time(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    import plane.core._working as dmod
    from plane.storage import LocalStore

    monkeypatch.setattr(dmod, "_RETRY_SECONDS", 0.0, raising=False)
    monkeypatch.setattr(dmod, "_BACKOFF_CAP", 0.0, raising=False)
    url, _, other = _two(tmp_path)
    c = plane.open(_Interleave(LocalStore(url), other, 1000))
    c["v"][3] = 33
    with pytest.raises(plane.CommitConflictError, match="too many concurrent writers"):
        c.commit("never lands")
    got = plane.open(url)
    assert got["v"][3].numpy() == 3 and "never lands" not in [e["message"] for e in got.log()]


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest
         ) -> tuple[str, dict[str, Any] | None]:
    if backend == "s3":
        url, opts = request.getfixturevalue("s3_bucket")
        return url, opts
    return str(tmp_path / "d"), None


@pytest.mark.parametrize("backend,writers,commits", [
    ("local", 4, 15), pytest.param("s3", 3, 8, marks=pytest.mark.s3)])
def test_sweep_writers_with_hot_rows(backend: str, writers: int, commits: int,
                                     tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url, opts = _url(backend, tmp_path, request)
    figures = _sweep(url, opts, tmp_path, writers, commits)
    assert figures["tried"] == writers * commits
    assert figures["committed"] + figures["true_conflicts"] == figures["tried"]


@pytest.mark.slow
@pytest.mark.parametrize("backend,writers,commits", [
    ("local", 8, 95), pytest.param("s3", 6, 40, marks=pytest.mark.s3)])
def test_sweep_writers_with_hot_rows_long(backend: str, writers: int, commits: int,
                                          tmp_path: Path, request: pytest.FixtureRequest
                                          ) -> None:
    url, opts = _url(backend, tmp_path, request)
    figures = _sweep(url, opts, tmp_path, writers, commits)
    assert figures["committed"] + figures["true_conflicts"] == figures["tried"]
