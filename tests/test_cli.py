"""The `plane` command line, run for real on datasets built with the Python API."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import plane
from plane.cli import main
from plane.core._layout import RefStore
from plane.format._media import encode
from plane.storage import open_store

DATE = re.compile(r"^Date:   \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$", re.M)


# ---- helpers ---------------------------------------------------------------------------------
def cli(capsys: pytest.CaptureFixture[str], *argv: Any) -> tuple[int, str, str]:
    """Run `plane ARGV` in-process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes: a snapshot to prove nothing changed."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            out[str(p.relative_to(root))] = p.read_bytes()
    return out


def build(path: Path) -> tuple[plane.Dataset, str, str]:
    """12 rows; commit c1 ("base"); then relabel row 1, delete row 4, add a row and a tensor;
    commit c2 ("second")."""
    ds = plane.create(path)
    ds.create_tensor("labels", htype="class_label", class_names=["a", "b", "c"])
    ds.create_tensor("x", dtype="float32", shape=(4,))
    ds.create_tensor("note", htype="text")
    ds.extend({"labels": np.arange(12) % 3, "x": np.arange(48, dtype="f4").reshape(12, 4),
               "note": [f"n{i}" for i in range(12)]})
    c1 = ds.commit("base")
    ds["labels"][1] = 0
    ds.delete([4])
    ds.extend({"labels": [2], "x": np.full((1, 4), 9, "f4"), "note": ["new"]})
    ds.create_tensor("score", dtype="float32")
    c2 = ds.commit("second")
    return ds, c1, c2


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, plane.Dataset, str, str]:
    path = tmp_path / "ds"
    ds, c1, c2 = build(path)
    return path, ds, c1, c2


# ---- reading: summary, show, log, diff -------------------------------------------------------
def test_summary(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, ds, c1, _ = dataset
    rc, out, err = cli(capsys, "summary", path)
    assert rc == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"Dataset {ds.url} (branch 'main', 12 rows)"
    assert lines[1].split() == ["tensor", "htype", "dtype", "shape", "compression", "chunks",
                                "bytes"]
    rows = {ln.split()[0]: ln.split() for ln in lines[3:]}
    assert set(rows) == {"labels", "x", "note", "score"}
    assert rows["labels"][1:4] == ["class_label", "uint32", "(12,)"]
    assert rows["x"][1:5] == ["generic", "float32", "(12,", "4)"]
    assert rows["note"][1] == "text"
    # --branch selects what is summarised: a branch at the first commit has 12 rows, 3 tensors
    ds.versions.create_branch("old", c1)
    rc, out, _ = cli(capsys, "summary", path, "--branch", "old")
    assert rc == 0
    assert out.splitlines()[0] == f"Dataset {ds.url} (branch 'old', 12 rows)"
    assert "score" not in out and "note" in out


def test_show_start_limit_tensors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("labels", dtype="int64")
    ds.create_tensor("x", dtype="float32", shape=(4,))
    ds.create_tensor("big", dtype="float32", shape=(16,))
    ds.create_tensor("note", htype="text")
    ds.extend({"labels": np.arange(6) * 10, "x": np.arange(24, dtype="f4").reshape(6, 4),
               "big": np.zeros((6, 16), "f4"), "note": [f"n{i}" for i in range(6)]})
    ds.commit("rows")
    rc, out, err = cli(capsys, "show", tmp_path / "ds", "--start", "2", "--limit", "2")
    assert rc == 0 and err == ""
    assert out.splitlines() == [
        "[2] labels=20  x=[ 8., 9.,10.,11.]  big=<float32 array (16,)>  note='n2'",
        "[3] labels=30  x=[12.,13.,14.,15.]  big=<float32 array (16,)>  note='n3'",
    ]
    rc, out, _ = cli(capsys, "show", tmp_path / "ds", "--tensors", "note,labels",
                     "--start", "4")
    assert rc == 0
    assert out.splitlines() == ["[4] note='n4'  labels=40", "[5] note='n5'  labels=50"]
    rc, out, _ = cli(capsys, "show", tmp_path / "ds")  # default: the first 10 (here all 6)
    assert [ln.split()[0] for ln in out.splitlines()] == [f"[{i}]" for i in range(6)]
    rc, out, _ = cli(capsys, "show", tmp_path / "ds", "--start", "6")
    assert rc == 0 and out == ""


def test_log_limit_tags_and_branch(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, ds, c1, c2 = dataset
    ds.tag("v1", c1)
    ds.tag("first", c1)
    rc, out, err = cli(capsys, "log", path)
    assert rc == 0 and err == ""
    assert re.findall(r"^commit (\w+)", out, re.M) == [c2, c1]
    assert f"commit {c1} (tag: " in out and f"commit {c2}\n" in out
    deco = re.search(rf"^commit {c1} \(tag: (.*)\)$", out, re.M)
    assert deco is not None and sorted(deco.group(1).split(", ")) == ["first", "v1"]
    assert re.findall(r"^    (.*)$", out, re.M) == ["second", "base"]
    assert len(DATE.findall(out)) == 2
    assert out.count(f"Author: {ds.log()[0]['author']}\n") == 2
    rc, out, _ = cli(capsys, "log", path, "--limit", "1")
    assert rc == 0 and re.findall(r"^commit (\w+)", out, re.M) == [c2]
    ds.versions.create_branch("old", c1)
    rc, out, _ = cli(capsys, "log", path, "--branch", "old")
    assert rc == 0 and re.findall(r"^commit (\w+)", out, re.M) == [c1]


def test_log_of_a_dataset_without_commits(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    plane.create(tmp_path / "empty")
    rc, out, _ = cli(capsys, "log", tmp_path / "empty")
    assert rc == 0 and out == "(no commits)\n"


def test_diff_text_and_json(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, ds, c1, c2 = dataset
    old = plane.open(path, version=c1, read_only=True)
    ids = old.row_ids
    rc, out, err = cli(capsys, "diff", path, c1, c2)
    assert rc == 0 and err == ""
    assert out.splitlines()[0] == f"diff {c1} -> {c2}"
    assert "  rows: +1 -1" in out.splitlines()
    assert "  + tensor score" in out.splitlines()
    assert f"  ~ labels: 1 rows updated ({int(ids[1])})" in out.splitlines()

    rc, out, _ = cli(capsys, "diff", path, c1, c2, "--json")
    assert rc == 0
    got = json.loads(out)
    api = ds.versions.diff(c1, c2)
    assert got == json.loads(json.dumps(api.to_dict()))
    assert got["a"] == c1 and got["b"] == c2
    assert got["tensors"]["labels"]["updated"] == [int(ids[1])]
    assert got["rows_deleted"] == [int(ids[4])]
    assert got["rows_added"] == api.rows_added.tolist() and len(got["rows_added"]) == 1
    assert got["tensors_added"] == ["score"]
    assert got["tensors"]["x"] == {"added": got["rows_added"], "updated": [],
                                   "deleted": [int(ids[4])]}
    # by branch name and reversed
    rc, out, _ = cli(capsys, "diff", path, "main", c1, "--json")
    back = json.loads(out)
    assert back["tensors_removed"] == ["score"]
    assert back["rows_added"] == [int(ids[4])] and back["rows_deleted"] == got["rows_added"]
    # defaults: head commit vs the working state, which equals it
    rc, out, _ = cli(capsys, "diff", path)
    assert rc == 0 and out.splitlines() == [f"diff {c2} -> working", "  rows: +0 -0",
                                            "  (no changes)"]
    # --exit-code, as git's: 1 when the versions differ, 0 when they do not
    assert cli(capsys, "diff", path, c1, c2, "--exit-code")[0] == 1
    assert cli(capsys, "diff", path, "--exit-code")[0] == 0


def test_query_params_error_shows_a_params_example(capsys: pytest.CaptureFixture[str],
                                                   dataset: Any) -> None:
    path = dataset[0]
    rc, _, err = cli(capsys, "query", path, "SELECT * LIMIT 1", "--params", "not json")
    assert rc == 2 and "--params is not valid JSON" in err
    assert '"q":' in err and "endpoint_url" not in err


# ---- branches, checkout ----------------------------------------------------------------------
def test_branch_list_and_delete(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, ds, c1, c2 = dataset
    ds.versions.create_branch("dev", c1)
    rc, out, err = cli(capsys, "branch", path)
    assert rc == 0 and err == ""
    listed = {ln[2:].split()[0]: (ln[0], ln.split()[-1]) for ln in out.splitlines()}
    assert listed == {"main": ("*", c2), "dev": (" ", c1)}
    rc, out, _ = cli(capsys, "branch", path, "--branch", "dev")  # marks the branch opened
    assert {ln[2:].split()[0]: ln[0] for ln in out.splitlines()} == {"main": " ", "dev": "*"}
    rc, out, err = cli(capsys, "branch", path, "--delete", "dev")
    assert rc == 0 and out == "deleted branch dev\n"
    assert plane.open(path, read_only=True).versions.branches() == ["main"]
    before = files(path)
    rc, out, err = cli(capsys, "branch", path, "--delete", "main")
    assert rc == 1 and out == ""
    assert err.startswith("plane: error: ") and "'main'" in err and "checked out" in err
    rc, _, err = cli(capsys, "branch", path, "--delete", "ghost")
    assert rc == 1 and err == f"plane: error: no branch 'ghost' in {ds.url}\n"
    assert files(path) == before


def test_branch_create_at(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, _, c1, c2 = dataset
    rc, out, err = cli(capsys, "branch", path, "dev", "--at", c1[:10])
    assert (rc, err) == (0, "")
    assert out == f"created branch dev at {c1[:10]}\n"
    rc, out, err = cli(capsys, "branch", path, "head-copy")
    assert (rc, out) == (0, f"created branch head-copy at {c2}\n")
    again = plane.open(path, read_only=True)
    assert again.versions.resolve("dev") == ("dev", c1)
    assert again.versions.resolve("head-copy") == ("head-copy", c2)


def test_checkout_version(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, ds, c1, _ = dataset
    ds.tag("v1", c1)
    before = files(path)
    for version in (c1, c1[:8], "v1"):
        rc, out, err = cli(capsys, "checkout", path, version)
        assert rc == 0 and err == ""
        lines = out.splitlines()
        assert lines[0] == f"Dataset {ds.url} (commit {c1}, 12 rows)"
        assert "score" not in out  # the tensor added after c1
        assert lines[-1] == f"open it with plane.open({str(path)!r}, version={version!r})"
    assert files(path) == before  # a look, not a write
    rc, out, err = cli(capsys, "checkout", path, "nope")
    assert rc == 1 and out == ""
    assert err.startswith("plane: error: no branch, tag or commit 'nope'")


def test_checkout_create_branch(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, _, c1, _ = dataset
    rc, out, err = cli(capsys, "checkout", path, c1, "-b", "fix")
    assert (rc, err) == (0, "")
    assert out.startswith(f"created branch fix at {c1}\n")
    assert plane.open(path, read_only=True).versions.resolve("fix") == ("fix", c1)


# ---- merge -----------------------------------------------------------------------------------
def test_merge_clean_fast_forward_and_up_to_date(capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path) -> None:
    path = tmp_path / "ds"
    ds = plane.create(path)
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(10)})
    ds.commit("base")
    ds.checkout("b", create=True)
    ds.extend({"v": [100, 101]})
    ds["v"][3] = -3
    b_head = ds.commit("b work")
    ds.checkout("main")
    ds.extend({"v": [200]})
    main_head = ds.commit("main work")
    rc, out, err = cli(capsys, "merge", path, "b", "-m", "merge b into main")
    assert rc == 0 and err == ""
    again = plane.open(path, read_only=True)
    head = again.log()[0]
    assert out == f"merge commit {head['id']}: +2 rows, 1 updated, -0 deleted\n"
    assert head["message"] == "merge b into main"
    assert sorted(head["parents"]) == sorted([main_head, b_head])
    assert sorted(again["v"].numpy().tolist()) == sorted(
        [0, 1, 2, -3, *range(4, 10), 100, 101, 200])
    rc, out, _ = cli(capsys, "log", path, "--limit", "1")
    assert f"Merge:  {head['parents'][0][:12]} {head['parents'][1][:12]}\n" in out
    rc, out, _ = cli(capsys, "merge", path, "b")
    assert rc == 0 and out == "already up to date\n"
    # merging main into b (via --branch) is a fast-forward
    rc, out, _ = cli(capsys, "merge", path, "main", "--branch", "b")
    assert rc == 0 and out == f"fast-forward to {head['id']}\n"
    assert plane.open(path, version="b", read_only=True).commit_id == head["id"]


@pytest.mark.parametrize("policy,value", [("ours", 200), ("theirs", 100)])
def test_merge_conflict_fails_then_resolves(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                            policy: str, value: int) -> None:
    path = tmp_path / "ds"
    ds = plane.create(path)
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(6)})
    ds.commit("base")
    rid = int(ds.row_ids[0])
    ds.checkout("b", create=True)
    ds["v"][0] = 100
    ds.commit("b sets row 0")
    ds.checkout("main")
    ds["v"][0] = 200
    head = ds.commit("main sets row 0")
    before = files(path)
    rc, out, err = cli(capsys, "merge", path, "b")
    assert rc == 1 and out == ""
    assert err.startswith("plane: merge conflict: ")
    assert "both updated" in err and f"v: 1 rows: [{rid}]" in err
    assert files(path) == before
    assert plane.open(path, read_only=True).commit_id == head
    rc, out, err = cli(capsys, "merge", path, "b", "--conflicts", policy)
    assert rc == 0 and err == ""
    assert out.startswith("merge commit ") and out.endswith(", 1 conflicts resolved\n")
    again = plane.open(path, read_only=True)
    assert int(again["v"][0].numpy()) == value and len(again) == 6
    assert len(again.log()[0]["parents"]) == 2


# ---- tags ------------------------------------------------------------------------------------
def test_tag_create_list_delete(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, ds, c1, c2 = dataset
    rc, out, err = cli(capsys, "tag", path)
    assert rc == 0 and out == "" and err == ""
    rc, out, err = cli(capsys, "tag", path, "v2")
    assert rc == 0 and out == f"tagged {c2} as v2\n"
    rc, out, _ = cli(capsys, "tag", path, "v1", "--commit", c1[:8], "-m", "first release")
    assert rc == 0 and out == f"tagged {c1} as v1\n"
    assert RefStore(open_store(path)).get_tag("v1")["message"] == "first release"
    rc, out, _ = cli(capsys, "tag", path)
    assert [ln.split() for ln in out.splitlines()] == [["v1", c1], ["v2", c2]]
    assert plane.open(path, version="v1", read_only=True).commit_id == c1
    before = files(path)
    rc, out, err = cli(capsys, "tag", path, "v1")
    assert rc == 1 and "tag 'v1' already exists" in err and err.startswith("plane: error:")
    assert files(path) == before
    rc, out, _ = cli(capsys, "tag", path, "--delete", "v1")
    assert rc == 0 and out == "deleted tag v1\n"
    assert plane.open(path, read_only=True).versions.tags() == {"v2": c2}
    rc, _, err = cli(capsys, "tag", path, "--delete", "v1")
    assert rc == 1 and err == f"plane: error: no tag 'v1' in {ds.url}\n"


# ---- gc --------------------------------------------------------------------------------------
def test_gc_dry_run_then_apply(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, ds, _, c2 = dataset
    ds.checkout("tmp", create=True)
    ds.extend({"labels": np.zeros(300, int), "x": np.ones((300, 4)), "note": ["t"] * 300,
               "score": np.zeros(300)})
    ds.commit("tmp data")
    ds.checkout("main")
    ds.versions.delete_branch("tmp")
    expected = plane.gc(path, older_than=0)
    assert any(k.startswith("chunks/") for k in expected.unreachable)
    n = len(expected.unreachable)
    before = files(path)
    # default grace period (7 days): everything is young, nothing would go
    rc, out, err = cli(capsys, "gc", path)
    assert rc == 0 and err == ""
    assert "would delete 0 unreachable objects" in out and f"kept {n} unreachable" in out
    assert "(dry run" not in out
    rc, out, _ = cli(capsys, "gc", path, "--older-than", "0")
    assert rc == 0
    assert out.splitlines()[0].startswith(f"gc: {expected.reachable} objects reachable; "
                                          f"would delete {n} unreachable objects (")
    assert out.splitlines()[-1] == "(dry run: add --apply to delete)"
    assert files(path) == before
    rc, out, _ = cli(capsys, "gc", path, "--older-than", "0", "--apply")
    assert rc == 0 and f"; deleted {n} unreachable objects (" in out and "dry run" not in out
    left = files(path)
    assert all(k not in left for k in expected.unreachable)
    assert set(before) - set(left) == set(expected.unreachable)
    assert plane.gc(path, older_than=0).unreachable == []
    again = plane.open(path, read_only=True)
    assert again.commit_id == c2 and len(again) == 12
    assert again["x"].numpy().tolist() == ds["x"].numpy().tolist()
    assert again["note"].numpy(aslist=True)[-1] == "new"


# ---- ingest ----------------------------------------------------------------------------------
def _jpeg(i: int) -> bytes:
    return encode(np.full((8, 8, 3), i * 20, np.uint8), "jpeg")


def _parquet(tmp_path: Path) -> tuple[Path, Path, pa.Table]:
    t = pa.table({"img": pa.array([_jpeg(i) for i in range(5)], pa.binary()),
                  "label": pa.array(np.arange(5) % 2),
                  "txt": pa.array([f"t{i}" for i in range(5)]),
                  "extra": pa.array(np.arange(5.0))})
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(t, a)
    pq.write_table(t.slice(0, 3), b)
    return a, b, t


def test_ingest_map_flags_accumulate(capsys: pytest.CaptureFixture[str], tmp_path: Path
                                     ) -> None:
    """`--map a=x --map b=y` kept only the last flag (argparse nargs='*' replaces)."""
    a, _, t = _parquet(tmp_path)
    dest = tmp_path / "ds"
    rc, _, err = cli(capsys, "ingest", "parquet", a, dest, "--map", "img=images",
                     "--map", "label=labels", "--htype", "labels=generic", "--htype",
                     "extra=generic")
    assert rc == 0, err
    ds = plane.open(dest, read_only=True)
    assert list(ds.tensors) == ["images", "labels", "txt", "extra"]
    assert ds["labels"].meta.htype == "generic"
    assert ds["extra"].numpy().tolist() == t["extra"].to_pylist()
    # a map onto a name another column keeps is refused, naming it; nothing is left behind
    rc, _, err = cli(capsys, "ingest", "parquet", a, tmp_path / "d2", "--map", "img=extra")
    assert rc != 0 and "['extra']" in err
    assert not [p for p in (tmp_path / "d2").rglob("*") if p.is_file()]


def test_ingest_parquet(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, b, t = _parquet(tmp_path)
    dest = tmp_path / "ds"
    rc, out, err = cli(capsys, "ingest", "parquet", a, b, dest, "--map", "img=images",
                       "label=labels", "txt=caption", "--htype", "labels=generic",
                       "-m", "first load")
    assert rc == 0 and err == ""
    assert out.startswith("ingested 8 of 8 rows from 2 file(s) in ")
    ds = plane.open(dest, read_only=True)
    # unmapped columns keep their names (they were silently dropped)
    assert len(ds) == 8 and list(ds.tensors) == ["images", "labels", "caption", "extra"]
    assert ds["labels"].meta.htype == "generic"  # inference alone says class_label
    assert ds["images"].meta.htype == "image"
    assert ds["labels"].numpy().tolist() == [0, 1, 0, 1, 0, 0, 1, 0]
    assert ds["caption"].numpy(aslist=True) == [f"t{i}" for i in (0, 1, 2, 3, 4, 0, 1, 2)]
    assert list(ds["images"].bytes()) == [_jpeg(i) for i in (0, 1, 2, 3, 4, 0, 1, 2)]
    log = ds.log()
    assert [e["message"] for e in log] == ["first load"]
    # a second ingest into the existing dataset appends and commits with a default message
    rc, out, _ = cli(capsys, "ingest", "parquet", a, dest, "--map", "img=images",
                     "label=labels", "txt=caption")
    assert rc == 0 and out.startswith("ingested 5 of 5 rows from 1 file(s)")
    ds = plane.open(dest, read_only=True)
    assert len(ds) == 13 and ds.log()[0]["message"] == f"ingest {a}"
    assert ds.log()[1]["id"] == log[0]["id"]
    # without --map every column becomes a tensor, with inferred types
    rc, _, _ = cli(capsys, "ingest", "parquet", a, tmp_path / "all")
    inferred = plane.open(tmp_path / "all", read_only=True)
    assert rc == 0 and sorted(inferred.tensors) == sorted(t.column_names)
    assert inferred["label"].meta.htype == "class_label"


def test_ingest_images_with_folder_labels(capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path) -> None:
    src = tmp_path / "imgs"
    want = {}
    for k, cls in enumerate(("dog", "cat")):
        (src / cls).mkdir(parents=True)
        for i in range(2):
            data = encode(np.full((6, 6, 3), 40 * k + 10 * i, np.uint8), "jpeg")
            (src / cls / f"{i}.jpg").write_bytes(data)
            want[str(src / cls / f"{i}.jpg")] = (cls, data)
    rc, out, err = cli(capsys, "ingest", "images", src, tmp_path / "ds", "--labels", "folder")
    assert rc == 0 and err == ""
    assert out.startswith("ingested 4 of 4 rows from 4 file(s)")
    ds = plane.open(tmp_path / "ds", read_only=True)
    assert len(ds) == 4 and sorted(ds.tensors) == ["images", "labels", "paths"]
    names = ds["labels"].meta.class_names
    assert names == ("cat", "dog")
    got = {p: (names[int(lab)], data) for p, lab, data in zip(
        ds["paths"].numpy(aslist=True), ds["labels"].numpy(), ds["images"].bytes())}
    assert got == want
    assert ds[0]["images"].numpy().shape == (6, 6, 3)
    assert [e["message"] for e in ds.log()] == [f"ingest {src}"]


def test_ingest_missing_source_leaves_the_dataset_unchanged(
        capsys: pytest.CaptureFixture[str], dataset: Any, tmp_path: Path) -> None:
    path, _, _, c2 = dataset
    before = files(path)
    missing = tmp_path / "nope.parquet"
    rc, out, err = cli(capsys, "ingest", "parquet", missing, path)
    assert rc == 1 and out == ""
    assert err.startswith(f"plane: error: input {missing} does not exist")
    assert files(path) == before
    rc, _, err = cli(capsys, "ingest", "images", tmp_path / "no-dir", path)
    assert rc == 1 and err.startswith(f"plane: error: input {tmp_path / 'no-dir'} does not ")
    rc, _, err = cli(capsys, "ingest", "parquet", missing, path, "--map", "img")
    assert rc == 2 and err == "plane: error: --map takes NAME=VALUE pairs, got 'img'\n"
    assert files(path) == before
    assert plane.open(path, read_only=True).commit_id == c2


def test_failed_ingest_into_new_dest_creates_nothing(capsys: pytest.CaptureFixture[str],
                                                     tmp_path: Path) -> None:
    rc, _, err = cli(capsys, "ingest", "parquet", tmp_path / "nope.parquet", tmp_path / "new")
    assert rc == 1 and "does not exist" in err
    assert not (tmp_path / "new").exists()


def test_ingest_branch_into_new_dest(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    a, _, _ = _parquet(tmp_path)
    rc, _, _ = cli(capsys, "ingest", "parquet", a, tmp_path / "ds", "--branch", "dev")
    assert rc == 0
    ds = plane.open(tmp_path / "ds", read_only=True)
    assert len(ds) == 0 and ds.versions.branches() == ["dev", "main"]
    assert len(plane.open(tmp_path / "ds", version="dev", read_only=True)) == 5


def test_ingest_into_unknown_branch_of_existing_dataset(capsys: pytest.CaptureFixture[str],
                                                        dataset: Any, tmp_path: Path) -> None:
    path, *_ = dataset
    a, _, _ = _parquet(tmp_path)
    before = files(path)
    rc, out, err = cli(capsys, "ingest", "parquet", a, path, "--branch", "nope")
    assert rc == 1 and out == ""
    assert err.startswith("plane: error: no branch, tag or commit 'nope'")
    assert files(path) == before


# ---- error paths -----------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["summary"], ["show"], ["log"], ["diff"], ["branch"], ["tag"], ["gc"],
    ["checkout", "{url}", "main"], ["merge", "{url}", "main"], ["tag", "{url}", "v9"],
])
def test_missing_dataset(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                         argv: list[str]) -> None:
    url = tmp_path / "nothing"
    argv = [a.format(url=url) for a in argv] + ([] if len(argv) > 1 else [str(url)])
    rc, out, err = cli(capsys, *argv)
    assert rc == 1 and out == ""
    assert err.startswith("plane: error: no tensorplane dataset at ") and f"{url} (" in err
    assert err.count("\n") == 1  # one line, no traceback
    assert not url.exists()


@pytest.mark.parametrize("argv,message", [
    (["summary", "nosuch://bucket/ds"], "cannot open nosuch://bucket/ds: unknown protocol"),
    (["log", "{url}", "--branch", "nope"], "no branch, tag or commit 'nope'"),
    (["show", "{url}", "--branch", "nope"], "no branch, tag or commit 'nope'"),
    (["tag", "{url}", "v9", "--branch", "nope"], "no branch, tag or commit 'nope'"),
    (["merge", "{url}", "nope"], "no branch, tag or commit 'nope'"),
    (["merge", "{url}", "main", "--branch", "nope"], "no branch, tag or commit 'nope'"),
    (["diff", "{url}", "main", "nope"], "no branch, tag or commit 'nope'"),
    (["tag", "{url}", "v9", "--commit", "nope"], "no branch, tag or commit 'nope'"),
    (["show", "{url}", "--tensors", "labels,nope"], "no tensor 'nope'"),
])
def test_errors_exit_1_and_change_nothing(capsys: pytest.CaptureFixture[str], dataset: Any,
                                          argv: list[str], message: str) -> None:
    path, *_ = dataset
    before = files(path)
    rc, out, err = cli(capsys, *[a.format(url=path) for a in argv])
    assert rc == 1 and out == ""
    assert err.startswith(f"plane: error: {message}") and err.count("\n") == 1
    assert files(path) == before


def test_bad_storage_options_json(capsys: pytest.CaptureFixture[str], dataset: Any) -> None:
    path, *_ = dataset
    rc, out, err = cli(capsys, "summary", path, "--storage-options", "{endpoint_url: x}")
    assert rc == 2 and out == ""
    assert err.startswith("plane: error: ") and "--storage-options" in err


def test_argparse_errors_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["bogus"])
    assert info.value.code == 2
    assert "plane: error: argument cmd: invalid choice: 'bogus'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["merge", "mem://x", "b", "--conflicts", "mine"])
    assert info.value.code == 2 and "invalid choice: 'mine'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"tensorplane {plane.__version__}\n"


# ---- a real process --------------------------------------------------------------------------
def test_module_entry_point_in_a_subprocess(dataset: Any, tmp_path: Path) -> None:
    path, _, c1, c2 = dataset
    run = subprocess.run([sys.executable, "-m", "plane.cli", "log", str(path)],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert re.findall(r"^commit (\w+)", run.stdout, re.M) == [c2, c1]
    bad = subprocess.run([sys.executable, "-m", "plane.cli", "summary", str(tmp_path / "no")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode == 1 and bad.stdout == ""
    assert bad.stderr.startswith("plane: error: no tensorplane dataset at ")
    assert f"{tmp_path / 'no'} (dataset.json is missing)" in bad.stderr
    assert "Traceback" not in bad.stderr


# ---- S3 (moto) -------------------------------------------------------------------------------
@pytest.mark.s3
def test_storage_options_on_s3(capsys: pytest.CaptureFixture[str],
                               s3_bucket: tuple[str, dict[str, Any]]) -> None:
    url, opts = s3_bucket
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(7)})
    c1 = ds.commit("on s3")
    so = json.dumps(opts)
    rc, out, err = cli(capsys, "log", url, "--storage-options", so)
    assert rc == 0 and err == ""
    assert re.findall(r"^commit (\w+)", out, re.M) == [c1] and "    on s3\n" in out
    rc, out, _ = cli(capsys, "summary", url, "--storage-options", so)
    assert rc == 0 and out.splitlines()[0] == f"Dataset {url} (branch 'main', 7 rows)"
    rc, out, _ = cli(capsys, "tag", url, "v1", "--storage-options", so)
    assert rc == 0 and out == f"tagged {c1} as v1\n"
    assert plane.open(url, storage_options=opts, read_only=True).versions.tags() == {"v1": c1}
    rc, out, _ = cli(capsys, "show", url, "--storage-options", so, "--start", "5", "--branch",
                     "v1")
    assert rc == 0 and out == "[5] v=5\n[6] v=6\n"
