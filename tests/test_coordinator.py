"""VersionCoordinator: fragments written by Ray tasks, applied in order, committed once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import plane
from actors.coordinator import (
    VersionCoordinator,
    get_coordinator,
    start_coordinator,
    write_and_submit,
)
from plane.format import TensorMeta

ray = pytest.importorskip("ray")

ROWS = 10


# ---- helpers --------------------------------------------------------------------------------
def make_dataset(url: str, storage_options: dict[str, Any] | None = None) -> str:
    """An int64 tensor and a text tensor, committed empty; returns the schema commit."""
    ds = plane.create(url, storage_options=storage_options)
    ds.create_tensor("ids", dtype="int64")
    ds.create_tensor("text", htype="text")
    return ds.commit("schema")


def columns(start: int, n: int = ROWS) -> dict[str, Any]:
    ids = np.arange(start, start + n, dtype=np.int64)
    return {"ids": ids, "text": [f"row-{i}" for i in ids]}


def read(url: str, storage_options: dict[str, Any] | None = None
         ) -> tuple[list[int], list[str], plane.Dataset]:
    ds = plane.open(url, read_only=True, storage_options=storage_options)
    ids = [int(x) for x in np.asarray(ds["ids"].numpy()).reshape(-1)]
    return ids, [str(t) for t in ds["text"].numpy()], ds


def fragment(url: str, fid: str, start: int, n: int = ROWS,
             storage_options: dict[str, Any] | None = None,
             metas: dict[str, TensorMeta] | None = None) -> plane.Fragment:
    """A fragment written from the driver, with the branch's schema unless `metas` is given."""
    ds = plane.open(url, read_only=True, storage_options=storage_options)
    metas = metas or {name: t.meta for name, t in ds.tensors.items()}
    cols = {k: v for k, v in columns(start, n).items() if k in metas}
    return plane.write_fragment(plane.open_store(url, storage_options), fid, metas, cols)


# ---- without Ray ----------------------------------------------------------------------------
def test_import_does_not_start_ray() -> None:
    code = ("import sys, actors, actors.coordinator; "
            "assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


def test_embedded_order_idempotency_and_persistence(tmp_path: Path) -> None:
    url = str(tmp_path / "ds")
    make_dataset(url)
    c = VersionCoordinator(url)
    assert c.commit("nothing") is None
    frags = {fid: fragment(url, fid, start) for fid, start in
             [("f-02", 20), ("f-00", 0), ("f-01", 10)]}
    for f in frags.values():
        assert c.submit(f)
    assert not c.submit(frags["f-00"])  # pending duplicate
    assert c.status()["pending"] == 3 and c.status()["pending_rows"] == 30
    with pytest.raises(ValueError, match="missing"):
        c.commit("bad order", order=["f-00", "f-01"])
    cid = c.commit("three", order=["f-01", "f-00", "f-02"])
    ids, text, ds = read(url)
    assert ids == [*range(10, 20), *range(0, 10), *range(20, 30)]
    assert text == [f"row-{i}" for i in ids]
    assert [e["message"] for e in ds.log()] == ["three", "schema"]
    assert c.applied_ids() == ["f-00", "f-01", "f-02"]
    marker = json.loads((tmp_path / "ds/coordinator/main/applied/f-01").read_bytes())
    assert marker["commit"] == cid and marker["rows"] == ROWS
    assert not c.submit(frags["f-01"])  # applied duplicate
    assert c.commit("again") is None
    c2 = VersionCoordinator(url)  # a restarted coordinator loads the applied set
    assert c2.applied_ids() == ["f-00", "f-01", "f-02"]
    assert not c2.submit(fragment(url, "f-02", 20))
    assert len(read(url)[2]) == 30


def test_branch_records_cannot_alias_another_branchs(tmp_path: Path) -> None:
    """Branch `main/intents` once kept its records under `coordinator/main/intents/`, where
    `main`'s intents live: a coordinator of `main` took its markers for intents to settle
    (KeyError at start, or deleted them). Now names are encoded (format 3) and only keys one
    level below the prefix are read."""
    url = str(tmp_path / "ds")
    make_dataset(url)
    ds = plane.open(url)
    ds.branch("main/intents")
    sub = VersionCoordinator(url, branch="main/intents")
    assert sub.submit(fragment(url, "f-00", 0))
    assert sub.commit("on the sub-branch") is not None
    # a record an older coordinator of `main/intents` left under the raw name stays untouched
    legacy = tmp_path / "ds/coordinator/main/intents/applied/f-07"
    legacy.parent.mkdir(parents=True)
    legacy.write_text('{"fragment_id": "f-07", "commit": null, "rows": 10, "time": 0}')
    main = VersionCoordinator(url)  # loads main's applied set: must not see the other branch's
    assert main.applied_ids() == [] and sub.applied_ids() == ["f-00"]
    assert legacy.exists()
    assert main.submit(fragment(url, "f-00", 100))
    main.commit("on main")
    assert read(url)[0] == list(range(100, 110))


def test_crash_between_commit_and_markers_is_recovered(tmp_path: Path) -> None:
    url = str(tmp_path / "ds")
    make_dataset(url)
    c = VersionCoordinator(url)
    c.submit(fragment(url, "a", 0))
    c.submit(fragment(url, "b", 10))

    def crash(fragments: Any, commit_id: str | None) -> None:
        raise SystemExit("coordinator died after the ref move")

    c._record_applied = crash  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        c.commit("landed")
    assert list((tmp_path / "ds/coordinator/main/intents").iterdir())
    assert len(read(url)[2]) == 20  # the commit landed; its markers did not
    c2 = VersionCoordinator(url)
    assert c2.applied_ids() == ["a", "b"]
    assert not list((tmp_path / "ds/coordinator/main/intents").iterdir())
    assert not c2.submit(fragment(url, "a", 0))
    assert c2.commit("nothing new") is None
    assert len(read(url)[2]) == 20


def test_failed_commit_drops_its_intent_and_keeps_pending(tmp_path: Path) -> None:
    url = str(tmp_path / "ds")
    make_dataset(url)
    c = VersionCoordinator(url)
    c.submit(fragment(url, "a", 0))

    def fail(message: str = "", allow_empty: bool = False) -> str:
        raise plane.CommitConflictError("simulated lost race")

    c._ds.commit = fail  # type: ignore[method-assign]
    with pytest.raises(plane.CommitConflictError):
        c.commit("fails")
    assert c.pending_ids() == ["a"] and c.applied_ids() == []
    assert not list((tmp_path / "ds/coordinator/main/intents").iterdir())
    assert "commit" not in vars(c._ds)  # the half-applied dataset was reopened
    assert c.commit("works") is not None
    assert read(url)[0] == list(range(10))


def test_submit_rejects_foreign_chunks_and_bad_ids(tmp_path: Path) -> None:
    url, other = str(tmp_path / "ds"), str(tmp_path / "other")
    make_dataset(url)
    make_dataset(other)
    c = VersionCoordinator(url)
    with pytest.raises(plane.ObjectNotFoundError, match="missing from"):
        c.submit(fragment(other, "elsewhere", 0))
    with pytest.raises(ValueError, match="invalid fragment id"):
        c.submit(fragment(url, "a/b", 0))
    with pytest.raises(ValueError, match="not a writable branch"):
        VersionCoordinator(url, branch=read(url)[2].commit_id or "")


def test_commit_rejects_a_fragment_that_breaks_a_fixed_shape(tmp_path: Path) -> None:
    """Checks plane's apply_fragments lacks: a (3,)-sample fragment for a shape=(2,) tensor."""
    url = str(tmp_path / "ds")
    ds = plane.create(url)
    ds.create_tensor("x", dtype="float32", shape=(2,))
    head = ds.commit("schema")
    loose = ds["x"].meta.evolve(shape=None)
    f = plane.write_fragment(plane.open_store(url), "f", {"x": loose},
                             {"x": np.zeros((2, 3), np.float32)})
    c = VersionCoordinator(url)
    assert c.submit(f)
    with pytest.raises(plane.SchemaError, match="shape None, the dataset \\(2,\\)"):
        c.commit("must fail")
    assert plane.open(url, read_only=True).commit_id == head and c.pending_ids() == ["f"]


# ---- Ray ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    # workers cannot import this test module: ship its task functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def coordinator_name(ray_local: None) -> Iterator[str]:
    name = f"coord-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        ray.kill(get_coordinator(name))
    except ValueError:
        pass


@ray.remote  # type: ignore[untyped-decorator]
def ingest(name: str, url: str, opts: dict[str, Any] | None, fid: str, start: int) -> bool:
    return write_and_submit(name, url, opts, fid, columns(start))


@ray.remote(max_retries=3, retry_exceptions=True)  # type: ignore[untyped-decorator]
def flaky_ingest(name: str, url: str, fid: str, start: int, marker: str, hard: bool) -> bool:
    """Submits, then fails on its first attempt (an exception, or the worker process dies)."""
    accepted = write_and_submit(name, url, None, fid, columns(start))
    if not os.path.exists(marker):
        Path(marker).write_text("failed once")
        if hard:
            os._exit(1)
        raise RuntimeError("simulated failure after submit")
    return accepted


def run_parallel_ingest(url: str, opts: dict[str, Any] | None, name: str) -> None:
    schema_commit = plane.open(url, read_only=True, storage_options=opts).commit_id
    handle = start_coordinator(url, storage_options=opts, name=name)
    # submitted in reverse order: the commit order is the fragment ids', not arrival order
    refs = [ingest.remote(name, url, opts, f"frag-{i:02d}", i * 100) for i in range(3, -1, -1)]
    assert ray.get(refs) == [True] * 4
    st = ray.get(handle.status.remote())
    assert st["pending"] == 4 and st["pending_rows"] == 4 * ROWS
    cid = ray.get(handle.commit.remote("ingest 4 fragments"))
    ids, text, ds = read(url, opts)
    expect = [i * 100 + j for i in range(4) for j in range(ROWS)]
    assert ids == expect
    assert text == [f"row-{i}" for i in expect]
    log = ds.log()
    assert [e["id"] for e in log] == [cid, schema_commit]
    assert log[0]["message"] == "ingest 4 fragments" and log[0]["parents"] == [schema_commit]
    assert ray.get(handle.applied_ids.remote()) == [f"frag-{i:02d}" for i in range(4)]
    st = ray.get(handle.status.remote())
    assert (st["pending"], st["head_commit"], st["base_commit"]) == (0, cid, cid)


@pytest.mark.ray
def test_parallel_tasks_local(tmp_path: Path, coordinator_name: str) -> None:
    url = str(tmp_path / "ds")
    make_dataset(url)
    run_parallel_ingest(url, None, coordinator_name)


@pytest.mark.ray
@pytest.mark.s3
def test_parallel_tasks_s3(s3_bucket: tuple[str, dict[str, Any]],
                           coordinator_name: str) -> None:
    url, opts = s3_bucket
    make_dataset(url, opts)
    run_parallel_ingest(url, opts, coordinator_name)


@pytest.mark.ray
def test_retried_tasks_and_restarted_coordinator_do_not_duplicate(
        tmp_path: Path, coordinator_name: str) -> None:
    url = str(tmp_path / "ds")
    make_dataset(url)
    name = coordinator_name
    handle = start_coordinator(url, name=name)
    f = fragment(url, "frag-00", 0)
    assert ray.get(handle.submit.remote(f)) is True
    assert ray.get(handle.submit.remote(f)) is False
    # the same task run twice (a re-run job): the second run is refused
    assert ray.get(ingest.remote(name, url, None, "frag-01", 100)) is True
    assert ray.get(ingest.remote(name, url, None, "frag-01", 100)) is False
    # tasks that submit, then fail once and are retried by Ray
    soft = flaky_ingest.remote(name, url, "frag-02", 200, str(tmp_path / "soft"), False)
    hard = flaky_ingest.remote(name, url, "frag-03", 300, str(tmp_path / "hard"), True)
    assert ray.get([soft, hard]) == [False, False]  # the retries found them submitted
    assert (tmp_path / "soft").exists() and (tmp_path / "hard").exists()
    cid = ray.get(handle.commit.remote("four fragments, retries included"))
    expect = [i * 100 + j for i in range(4) for j in range(ROWS)]
    assert read(url)[0] == expect
    # a new coordinator (after the first one is gone) refuses what was applied
    ray.kill(handle)
    handle = start_coordinator(url, name=name)
    assert ray.get(handle.applied_ids.remote()) == [f"frag-{i:02d}" for i in range(4)]
    assert ray.get(handle.submit.remote(f)) is False
    assert ray.get(ingest.remote(name, url, None, "frag-03", 300)) is False
    assert ray.get(handle.commit.remote("nothing new")) is None
    ids, _, ds = read(url)
    assert ids == expect and ds.commit_id == cid


@pytest.mark.ray
def test_outside_writer_between_submit_and_commit(tmp_path: Path,
                                                  coordinator_name: str) -> None:
    url = str(tmp_path / "ds")
    make_dataset(url)
    name = coordinator_name
    handle = start_coordinator(url, name=name)
    assert ray.get([ingest.remote(name, url, None, f"frag-{i}", i * 100)
                    for i in range(2)]) == [True, True]
    outside = plane.open(url)  # a writer outside Ray, on the same branch
    outside.extend(columns(1000, 3))
    outside_cid = outside.commit("outside")
    cid = ray.get(handle.commit.remote("fragments"))  # its ref move loses, it rebases
    ids, text, ds = read(url)
    expect = [1000, 1001, 1002, *range(0, 10), *range(100, 110)]
    assert ids == expect and text == [f"row-{i}" for i in expect]
    log = ds.log()
    assert [e["message"] for e in log] == ["fragments", "outside", "schema"]
    assert log[0]["id"] == cid and log[0]["parents"] == [outside_cid]
    assert len(set(ds.row_ids.tolist())) == len(expect)


@pytest.mark.ray
def test_bad_fragment_fails_commit_and_changes_nothing(tmp_path: Path,
                                                       coordinator_name: str) -> None:
    url = str(tmp_path / "ds")
    head = make_dataset(url)
    handle = start_coordinator(url, name=coordinator_name)
    good = fragment(url, "frag-0", 0)
    metas = {n: t.meta for n, t in read(url)[2].tensors.items()}
    wrong_dtype = fragment(url, "frag-1", 10, metas={**metas,
                                                     "ids": metas["ids"].evolve(dtype="<f4")})
    wrong_tensors = fragment(url, "frag-2", 20, metas={"ids": metas["ids"]})
    for f in (good, wrong_dtype, wrong_tensors):
        assert ray.get(handle.submit.remote(f))
    with pytest.raises(plane.SchemaError, match=r"'frag-1'.*dtype '<f4', the dataset '<i8'"):
        ray.get(handle.commit.remote("must fail"))
    ray.get(handle.discard.remote(["frag-1"]))
    with pytest.raises(plane.SchemaError, match=r"'frag-2' .*tensors \['ids'\]"):
        ray.get(handle.commit.remote("must fail too"))
    ids, _, ds = read(url)
    assert ids == [] and ds.commit_id == head and [e["id"] for e in ds.log()] == [head]
    assert ray.get(handle.pending_ids.remote()) == ["frag-0", "frag-2"]
    assert ray.get(handle.applied_ids.remote()) == []
    assert ray.get(handle.discard.remote(["frag-2", "nope"])) == ["frag-2"]
    assert ray.get(handle.commit.remote("good only")) is not None
    assert read(url)[0] == list(range(10))


def test_a_malformed_intent_is_named_and_kept(tmp_path: Path) -> None:
    url = str(tmp_path / "ds")
    make_dataset(url)
    bad = tmp_path / "ds/coordinator/main/intents" / ("ab" * 16)
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    with pytest.raises(plane.ChecksumError, match=f"{'ab' * 16} is not a coordinator intent"):
        VersionCoordinator(url)
    assert bad.read_text() == "{not json"
