"""Cleanup deletes only what it wrote; gc reclaims what killed writers leave; local commits are
durable; credentials stay off command lines (issue #12, items 1, 10, 11, 12)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import plane
import plane.cli
from plane.cli import DEST_OPTIONS_ENV, SOURCE_OPTIONS_ENV
from plane.storage import LocalStore


def cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    rc = plane.cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def parquet(path: Path, start: int = 0, n: int = 5) -> Path:
    pq.write_table(pa.table({"a": pa.array(np.arange(start, start + n, dtype=np.int64))}), path)
    return path


# ---- 1. cleanup after a failed create deletes only what the call wrote ------------------------
def test_ingest_into_a_folder_of_other_files_deletes_nothing(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    src = parquet(project / "train.parquet")
    (project / "notes.txt").write_text("mine")
    before = tree(project)
    rc, out, err = cli(capsys, "ingest", "parquet", src, project)
    assert rc == 1 and out == ""
    assert "is not empty and holds no tensorplane dataset; choose an empty location" in err
    assert tree(project) == before  # the source and every other file are still there


def test_ingest_opens_a_dataset_another_process_created_meanwhile(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "ds"
    real_create = plane.create

    def racing_create(store: Any, **kw: Any) -> plane.Dataset:
        theirs = real_create(str(dest))  # the other process wins the race ...
        theirs.create_tensor("a", dtype="int64")
        theirs.extend({"a": [100, 101]})
        theirs.commit("theirs")
        return real_create(store, **kw)  # ... so ours is refused

    monkeypatch.setattr(plane, "create", racing_create)
    src = parquet(tmp_path / "x.parquet")
    rc, out, err = cli(capsys, "ingest", "parquet", src, dest)
    assert (rc, err) == (0, "") and out.startswith("ingested 5 of 5 rows")
    ds = plane.open(dest, read_only=True)
    assert [e["message"] for e in ds.log()] == [f"ingest {src}", "theirs"]
    assert ds["a"].numpy().tolist() == [100, 101, 0, 1, 2, 3, 4]


def test_failed_ingest_leaves_a_created_dataset_someone_else_committed_to(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "ds"

    def other_commits_then_we_fail(ds: plane.Dataset, *a: Any) -> int:
        theirs = plane.open(str(dest))
        theirs.create_tensor("b", dtype="int64")
        theirs.extend({"b": [7]})
        theirs.commit("theirs")
        raise plane.IngestError("injected failure of our ingest")

    monkeypatch.setattr(plane.cli, "_ingest_into", other_commits_then_we_fail)
    rc, _, err = cli(capsys, "ingest", "parquet", parquet(tmp_path / "x.parquet"), dest)
    assert rc == 1 and "injected failure" in err
    ds = plane.open(dest, read_only=True)  # their commit survives our cleanup
    assert [e["message"] for e in ds.log()] == ["theirs"] and ds["b"].numpy().tolist() == [7]


def test_failed_ingest_into_a_new_dataset_removes_what_it_wrote(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    good = parquet(tmp_path / "a.parquet")
    bad = tmp_path / "b.parquet"
    pq.write_table(pa.table({"a": pa.array(["not a number"] * 3)}), bad)
    dest = tmp_path / "ds"
    rc, _, err = cli(capsys, "ingest", "parquet", good, bad, dest, "--batch-rows", "2")
    assert rc == 1 and "b.parquet" in err
    assert not dest.exists() or tree(dest) == {}


def test_create_refuses_a_create_in_progress_and_deletes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    store = LocalStore(path)
    from plane.core._layout import FORMAT_VERSION, RefStore
    from plane.core._state import State

    key = State().save(store)  # another process is half-way through create()
    assert RefStore(store, FORMAT_VERSION).advance("main", 0, {"commit": None, "state": key})
    before = tree(path)
    with pytest.raises(plane.DatasetExistsError, match="is not empty"):
        plane.create(path)
    assert tree(path) == before  # a refused create deletes nothing


def _half_created(path: Path) -> LocalStore:
    """What another process's create() has written before its header."""
    from plane.core._layout import FORMAT_VERSION, RefStore
    from plane.core._state import State

    store = LocalStore(path)
    key = State().save(store)
    assert RefStore(store, FORMAT_VERSION).advance("main", 0, {"commit": None, "state": key})
    return store


def _finish_create(store: LocalStore) -> None:
    from plane.core._layout import FORMAT_VERSION, write_dataset_info

    write_dataset_info(store, {"format": "tensorplane", "format_version": FORMAT_VERSION,
                               "created": time.time(), "default_branch": "main"})


def test_await_created_sees_the_other_create_finish(tmp_path: Path) -> None:
    from plane.core._layout import DATASET_KEY, await_created
    from plane.storage import WrapperStore

    class Finishing(WrapperStore):
        """The other process writes its header after this process looked twice."""
        looks = 0

        def exists(self, key: str) -> bool:
            if key == DATASET_KEY:
                self.looks += 1
                if self.looks == 3:
                    _finish_create(inner)
            return self.inner.exists(key)

    inner = _half_created(tmp_path / "ds")
    assert await_created(Finishing(inner))
    other = LocalStore(tmp_path / "other")
    other.put("notes.txt", b"a user's file")
    looked = Finishing(other)
    assert not await_created(looked, seconds=60) and looked.looks == 1  # no wait for files


def test_cli_ingest_joins_a_dataset_another_process_is_creating(
        capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from plane.core._layout import await_created

    dest = tmp_path / "ds"
    store = _half_created(dest)
    src = parquet(tmp_path / "src.parquet")

    def other_finishes(s: Any, seconds: float = 10.0) -> bool:
        _finish_create(store)  # while this process waits, the other create completes
        return await_created(s, seconds)

    monkeypatch.setattr(plane.cli, "await_created", other_finishes)
    rc, _, err = cli(capsys, "ingest", "parquet", src, dest)
    assert rc == 0, err
    assert len(plane.open(dest)) == len(pq.read_table(src))


def test_overwrite_deletes_only_the_datasets_own_objects(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    ds = plane.create(path)
    ds.create_tensor("a", dtype="int64")
    ds.extend({"a": [1, 2, 3]})
    ds.commit("old")
    (path / "README.txt").write_text("about this dataset")
    (path / "raw").mkdir()
    parquet(path / "raw" / "source.parquet")
    fresh = plane.create(path, overwrite=True)
    assert list(fresh.tensors) == [] and fresh.log() == []
    left = tree(path)
    assert left["README.txt"] == b"about this dataset" and "raw/source.parquet" in left
    assert not [k for k in left if k.startswith(("chunks/", "commits/", "parts/"))]


def test_recording_store_records_only_what_it_created(tmp_path: Path) -> None:
    from plane.storage import RecordingStore

    inner = LocalStore(tmp_path)
    inner.put("theirs", b"x")
    rec = RecordingStore(inner)
    assert rec.put_if_absent("theirs", b"y") is False
    assert rec.put_if_absent("mine", b"y") is True
    rec.put_many({"a": b"1", "b": b"2"})
    rec.put("c", b"3")
    assert rec.written == {"mine", "a", "b", "c"}


# ---- 10. gc reclaims temp files and orphan index objects --------------------------------------
def _small(path: Path) -> plane.Dataset:
    ds = plane.create(path)
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(20)})
    ds.commit("c1")
    return ds


def test_gc_removes_old_temp_files_and_keeps_young_ones(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    _small(path)
    dead1, dead2, live = ".tmp-" + "a" * 32, ".tmp-" + "b" * 32, ".tmp-" + "c" * 32
    old = [path / "chunks" / dead1, path / "refs" / "heads" / "main" / dead2]
    young = path / "parts" / live
    theirs = path / ".tmp-not-ours"  # not a name LocalStore makes: never touched
    for p in [*old, young, theirs]:
        p.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    for p in [*old, theirs]:
        os.utime(p, (hour_ago, hour_ago))
    dry = plane.gc(path, older_than=60)
    assert sorted(dry.temporary) == [f"chunks/{dead1}", f"refs/heads/main/{dead2}"]
    assert all(p.exists() for p in old)  # a dry run deletes nothing
    report = plane.gc(path, older_than=60, dry_run=False)
    assert sorted(report.temporary) == sorted(dry.temporary)
    assert not any(p.exists() for p in old)
    assert young.exists() and theirs.exists()  # a live writer's, and a stranger's, are kept
    assert "2 temp files of unfinished writes" in str(report)
    assert plane.open(path)["v"].numpy().tolist() == list(range(20))


def test_failed_put_leaves_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalStore(tmp_path)
    store.put("d/k", b"old")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="No space"):
        store.put("d/k", b"new")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path / "d")) == ["k"] and store.get("d/k") == b"old"


def test_gc_reclaims_orphan_index_objects_and_keeps_live_indexes(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    ds = _small(path)
    ds.create_index("v", kind="btree")
    ds.checkout("tmp", create=True)  # an index of a commit that becomes unreachable
    ds.extend({"v": [99]})
    ds.commit("on tmp")
    ds.create_index("v", kind="btree")
    ds.checkout("main")
    ds.versions.delete_branch("tmp")
    store = ds.store
    store.put("indexes/data/" + "ab" * 16, b"a partition whose build was killed")
    store.put("indexes/" + "cd" * 16 + ".json", b'{"partitions": []}')
    live = {k for k in store.list("indexes/")}
    report = plane.gc(path, older_than=0, dry_run=False)
    gone = live - set(store.list("indexes/"))
    assert "indexes/data/" + "ab" * 16 in gone and "indexes/" + "cd" * 16 + ".json" in gone
    assert any(k.startswith("indexes/refs/v/btree/") for k in gone)  # the tmp commit's
    assert set(report.unreachable) >= gone
    again = plane.open(path)
    (info,) = plane.query.list_indexes(again)
    assert info.commit == again.commit_id
    assert all(store.exists(p["key"]) for p in info.partitions)
    assert again.query("SELECT v WHERE v >= 18")["v"].tolist() == [18, 19]
    assert plane.gc(path, older_than=0).unreachable == []


def test_gc_keeps_the_commit_of_a_saved_view(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    ds = _small(path)
    ds.checkout("exp", create=True)
    ds.extend({"v": [1000]})
    ds.commit("exp")
    ds.query("SELECT v WHERE v >= 19").save("big")
    ds.checkout("main")
    ds.versions.delete_branch("exp")
    plane.gc(path, older_than=0, dry_run=False)
    view = plane.load_view(plane.open(path), "big")
    assert view["v"].tolist() == [19, 1000]


# ---- 11. durability: objects and directories are fsynced before the ref record links ----------
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name fds")
def test_commit_fsyncs_objects_and_directories_before_the_ref_moves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "ds"
    ds = _small(path)
    ds.extend({"v": np.arange(5)})
    events: list[tuple[str, str]] = []
    real_fsync, real_replace, real_link = os.fsync, os.replace, os.link

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        events.append(("rename", f"{src} {dst}"))

    def link(src: str, dst: str) -> None:
        real_link(src, dst)
        events.append(("link", f"{src} {dst}"))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(os, "link", link)
    ds.commit("c2")
    monkeypatch.undo()
    ((at, ref_link),) = [(i, e[1]) for i, e in enumerate(events) if e[0] == "link"]
    ref_tmp, ref = ref_link.split(" ")
    assert ref.startswith(f"{path}/refs/heads/main/")
    renames = [(i, *e[1].split(" ")) for i, e in enumerate(events) if e[0] == "rename"]
    kinds = {os.path.relpath(dst, path).split("/")[0] for _, _, dst in renames}
    assert kinds == {"chunks", "parts", "states", "commits"}
    synced = [(i, p) for i, (kind, p) in enumerate(events) if kind == "fsync"]
    for i, _, dst in renames:
        assert any(i < j < at and p == dst for j, p in synced), \
            f"{dst} not fsynced before the ref record links"
        assert any(i < j < at and p == os.path.dirname(dst) for j, p in synced), \
            f"directory of {dst} not fsynced before the ref record links"
    assert any(j < at and p == ref_tmp for j, p in synced)  # the record's own bytes
    assert any(j > at and p == os.path.dirname(ref) for j, p in synced)  # and its name
    assert plane.open(path)["v"].numpy().tolist() == [*range(20), *range(5)]


def test_a_store_without_durability_never_fsyncs(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(os, "fsync", calls.append)
    store = LocalStore(tmp_path / "d", durable=False)
    store.put("a/b", b"1")
    assert store.put_if_absent("refs/x", b"2")
    assert calls == []
    LocalStore(tmp_path / "e").put_if_absent("refs/x", b"2")
    assert calls  # the default is durable


# ---- 12. storage options never ride on a child's command line ---------------------------------
def test_ray_ingest_passes_storage_options_outside_argv(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    import jobs.ingest

    seen: dict[str, Any] = {}

    def call(cmd: list[str], env: dict[str, str] | None = None, **kw: Any) -> int:
        seen.update(cmd=cmd, env=env)
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    dest = {"key": "AKIA-DEST", "secret": "s3cr3t-dest", "endpoint_url": "http://x"}
    src = {"secret": "s3cr3t-src"}
    monkeypatch.setenv(DEST_OPTIONS_ENV, '{"stale": 1}')  # never inherited from the caller
    rc, _, _ = cli(capsys, "ingest", "parquet", "s3://lake/t.parquet", "s3://b/ds", "--ray",
                   "--storage-options", json.dumps(dest),
                   "--source-storage-options", json.dumps(src))
    assert rc == 0
    argv = " ".join(seen["cmd"])
    assert "s3cr3t" not in argv and "AKIA" not in argv
    assert seen["cmd"][:3] == [sys.executable, "-m", "jobs.ingest"]
    env = seen["env"]
    assert json.loads(env[DEST_OPTIONS_ENV]) == dest
    assert json.loads(env[SOURCE_OPTIONS_ENV]) == src
    # the child reads them from its environment and removes them (its own children don't
    # inherit them)
    monkeypatch.setattr(os, "environ", dict(env))
    cfg = jobs.ingest.config_from_args(seen["cmd"][3:])
    assert cfg.dest_storage_options == dest and cfg.source_storage_options == src
    assert DEST_OPTIONS_ENV not in os.environ and SOURCE_OPTIONS_ENV not in os.environ


def test_cli_reads_storage_options_from_the_environment(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets need not be on the `plane` command line either: without the flags the options
    come from $PLANE_STORAGE_OPTIONS / $PLANE_SOURCE_STORAGE_OPTIONS."""
    import subprocess

    seen: dict[str, Any] = {}

    def call(cmd: list[str], env: dict[str, str] | None = None, **kw: Any) -> int:
        seen.update(cmd=cmd, env=env)
        return 0

    monkeypatch.setattr(subprocess, "call", call)
    dest, src = {"secret": "s3cr3t-dest"}, {"secret": "s3cr3t-src"}
    monkeypatch.setenv(DEST_OPTIONS_ENV, json.dumps(dest))
    monkeypatch.setenv(SOURCE_OPTIONS_ENV, json.dumps(src))
    argv = ["ingest", "parquet", "s3://lake/t.parquet", "s3://b/ds", "--ray"]
    rc, _, _ = cli(capsys, *argv)
    assert rc == 0 and "s3cr3t" not in " ".join(seen["cmd"])
    assert json.loads(seen["env"][DEST_OPTIONS_ENV]) == dest
    assert json.loads(seen["env"][SOURCE_OPTIONS_ENV]) == src
    monkeypatch.setenv(DEST_OPTIONS_ENV, "{not json")
    rc, _, err = cli(capsys, "summary", "s3://b/ds")
    assert rc != 0 and "--storage-options is not valid JSON" in err


def test_ray_ingest_rejects_bad_options_json_before_starting(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    monkeypatch.setattr(subprocess, "call", lambda *a, **k: pytest.fail("child started"))
    rc, _, err = cli(capsys, "ingest", "parquet", "s3://lake/t.parquet", "s3://b/ds", "--ray",
                     "--storage-options", "{not json")
    assert rc == 2 and "--storage-options is not valid JSON" in err


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name fds")
def test_replacing_an_existing_object_fsyncs_before_the_rename(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A content address written again (a deterministic fold, a re-put chunk) replaces a file
    a durable commit may name: the new bytes reach the disk before the rename."""
    store = LocalStore(tmp_path / "d")
    store.put("chunks/abc", b"committed bytes")
    store.sync()
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str, dst: str) -> None:
        events.append(("rename", src))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    store.put("chunks/abc", b"committed bytes")
    store.put("chunks/new", b"a new object")  # a new name may wait for the next ref move
    monkeypatch.undo()
    renames = [(i, src) for i, (kind, src) in enumerate(events) if kind == "rename"]
    (i_old, tmp_old), (_, tmp_new) = renames
    assert ("fsync", tmp_old) in events[:i_old]
    assert ("fsync", tmp_new) not in events


def test_index_and_view_writes_are_synced(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _small(tmp_path / "ds")
    calls: list[str] = []
    real = LocalStore.sync

    def sync(self: LocalStore) -> None:
        calls.append("sync")
        real(self)

    monkeypatch.setattr(LocalStore, "sync", sync)
    ds.create_index("v", kind="btree")
    assert calls, "an index ref was left unsynced"
    calls.clear()
    ds.query("SELECT * WHERE v < 3").save("small")
    assert calls, "a saved view was left unsynced"


def test_gc_leaves_indexes_alone_when_a_manifest_is_unreadable(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    ds = _small(path)
    ds.create_index("v", kind="btree")
    (info,) = plane.query.list_indexes(ds)
    store = ds.store
    store.put(info.key, b"{truncated")  # a reachable index's manifest, damaged
    before = set(store.list("indexes/"))
    report = plane.gc(path, older_than=0, dry_run=False)
    assert set(store.list("indexes/")) == before
    assert not any(k.startswith("indexes/") for k in report.unreachable)


@pytest.mark.parametrize("keep", [0, -1, 1.5, True])
def test_gc_refuses_to_prune_every_ref_record(tmp_path: Path, keep: Any) -> None:
    path = tmp_path / "ds"
    _small(path)
    before = set(LocalStore(path).list(""))
    with pytest.raises(plane.InvalidArgumentError, match="keep_ref_records"):
        plane.gc(path, older_than=0, dry_run=False, keep_ref_records=keep)
    assert set(LocalStore(path).list("")) == before
    assert plane.open(path)["v"].numpy().tolist() == list(range(20))
