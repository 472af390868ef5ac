"""Branch and tag names: encoded into one key segment (format 3), never colliding or aliasing;
invalid names refused; format-2 datasets read and written in their own ref layout."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plane
from plane.core._layout import (
    FORMAT_VERSION,
    RefStore,
    decode_ref_name,
    encode_ref_name,
    read_dataset_info,
)
from plane.storage import open_store

_V2 = Path(__file__).parent / "data" / "format_v2.tar.gz"


def _base(url: str, opts: Any = None) -> plane.Dataset:
    ds = plane.create(url, storage_options=opts)
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(4)})
    ds.commit("base")
    return ds


def test_format_version_is_3() -> None:
    assert FORMAT_VERSION == 3


def test_branch_named_like_a_ref_record_does_not_block_main(
        tmp_store_url: tuple[str, Any]) -> None:
    """`main/<20 digits>` used to occupy the key main's next record needs (local disk: every
    commit to main failed "after 50 attempts")."""
    url, opts = tmp_store_url
    ds = _base(url, opts)
    for seq in range(1, 4):
        ds.branch(f"main/{seq:020d}")
    ds["v"][0] = 10
    ds.commit("main moves on")
    ds["v"][1] = 11
    ds.commit("and again")
    ds.checkout("main/00000000000000000002")
    ds["v"][2] = 22
    ds.commit("on the odd branch")
    again = plane.open(url, storage_options=opts)
    assert again["v"].numpy().tolist() == [10, 11, 2, 3]
    odd = plane.open(url, storage_options=opts, version="main/00000000000000000002")
    assert odd["v"].numpy().tolist() == [0, 1, 22, 3]
    assert again.versions.branches() == ["main"] + [f"main/{s:020d}" for s in range(1, 4)]


def test_branch_inside_a_record_name_and_tags_inside_tags(
        tmp_store_url: tuple[str, Any]) -> None:
    """`z/00000000000000000000` beside branch `z` was a raw FileExistsError on local disk."""
    url, opts = tmp_store_url
    ds = _base(url, opts)
    ds.branch("z")
    ds.branch("z/00000000000000000000")
    ds.branch("z/00000000000000000000/deeper")
    ds.tag("a")
    ds.tag("a/b")
    ds.tag("a/b/c")
    assert set(ds.versions.branches()) == {"main", "z", "z/00000000000000000000",
                                           "z/00000000000000000000/deeper"}
    assert set(ds.versions.tags()) == {"a", "a/b", "a/b/c"}
    ds.versions.delete_branch("z")
    assert "z/00000000000000000000" in ds.versions.branches()
    ds.versions.delete_tag("a")
    assert set(ds.versions.tags()) == {"a/b", "a/b/c"}


def test_names_differing_in_case_or_dots_stay_apart(tmp_store_url: tuple[str, Any]) -> None:
    url, opts = tmp_store_url
    ds = _base(url, opts)
    ds.branch("dev")
    ds.branch("Dev")
    ds.branch("d.e.v")
    ds.checkout("Dev")
    ds["v"][3] = 33
    ds.commit("capital")
    assert plane.open(url, storage_options=opts, version="dev")["v"][3].numpy() == 3
    assert plane.open(url, storage_options=opts, version="Dev")["v"][3].numpy() == 33


@pytest.mark.parametrize("name", ["q/.", "t/./u", "a/../b", "x/.hidden", ".x", "/x", "x/",
                                  "a//b", "", "a\0b", "a\nb", "a b", "a:b", "-x",
                                  "é" * 41, "x" * 241, "\ud800"])
def test_invalid_names_raise_and_change_nothing(tmp_path: Path, name: str) -> None:
    ds = _base(str(tmp_path / "d"))
    before = sorted(ds.store.list("refs/"))
    with pytest.raises(plane.RefNameError, match="argument `name`") as e:
        ds.branch(name)
    assert isinstance(e.value, ValueError)
    assert "Use text without spaces" in str(e.value)
    with pytest.raises(plane.RefNameError, match="invalid tag name"):
        ds.tag(name)
    with pytest.raises(plane.RefNameError):
        ds.checkout(name, create=True)
    assert sorted(ds.store.list("refs/")) == before
    assert ds.current_branch == "main"


def test_non_string_name_is_refused(tmp_path: Path) -> None:
    ds = _base(str(tmp_path / "d"))
    with pytest.raises(plane.RefNameError, match="not a str"):
        ds.branch(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["..", ".", "../x", "", "a/./b", "nope", "\ud800"])
def test_looking_up_a_hostile_name_finds_nothing(tmp_path: Path, name: str) -> None:
    ds = _base(str(tmp_path / "d"))
    with pytest.raises(plane.VersionNotFoundError):
        ds.checkout(name)
    with pytest.raises(plane.PlaneError, match="no branch"):
        ds.versions.delete_branch(name)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=30))
def test_encoding_is_one_segment_and_round_trips(name: str) -> None:
    enc = encode_ref_name(name)
    assert "/" not in enc and enc not in (".", "..")
    assert decode_ref_name(enc) == name
    assert enc == enc.lower() or "%" in enc  # capitals only as %XX escapes
    # injective even where case is folded (case-insensitive file systems)
    assert encode_ref_name(name.swapcase()).lower() != enc.lower() or name.swapcase() == name


def test_v3_ref_keys_are_encoded(tmp_path: Path) -> None:
    ds = _base(str(tmp_path / "d"))
    ds.branch("feature/X")
    ds.tag("rel/1")
    keys = set(ds.store.list("refs/"))
    assert "refs/heads/feature%2F%58/00000000000000000000" in keys
    assert "refs/tags/rel%2F1" in keys


def _open_v2(tmp_path: Path) -> tuple[str, dict[str, Any]]:
    with tarfile.open(_V2) as tar:
        tar.extractall(tmp_path, filter="data")
    expected = json.loads((tmp_path / "expected.json").read_text())
    return str(tmp_path / "dataset"), expected


def test_format_v2_dataset_is_read_and_written_in_its_layout(tmp_path: Path) -> None:
    url, exp = _open_v2(tmp_path)
    ds = plane.open(url)
    assert ds.versions.branches() == exp["branches"] == ["dev", "feature/x", "main"]
    assert sorted(ds.versions.tags()) == exp["tags"] == ["v1"]
    assert len(ds) == exp["main_len"] and ds.commit_id == exp["main_commit"]
    assert ds["labels"].numpy().tolist() == exp["labels"]
    ds.checkout("feature/x")
    n = len(ds)
    ds["w"][0] = 1234
    c_feat = ds.commit("v2 feature commit")
    ds.checkout("main")
    ds["w"][1] = 5678
    c_main = ds.commit("v2 main commit")
    ds.branch("later/one")
    ds.tag("v2tag")
    store = open_store(url)
    keys = set(store.list("refs/"))
    assert "refs/heads/feature/x/00000000000000000001" in keys  # the v2 layout, kept
    assert "refs/heads/main/00000000000000000003" in keys
    assert "refs/heads/later/one/00000000000000000000" in keys
    assert "refs/tags/v2tag" in keys
    assert read_dataset_info(store)["format_version"] == 2
    again = plane.open(url)
    assert again.commit_id == c_main and again["w"][1].numpy() == 5678
    assert again["labels"].numpy().tolist() == exp["labels"]
    assert again.versions.branches() == ["dev", "feature/x", "later/one", "main"]
    assert sorted(again.versions.tags()) == ["v1", "v2tag"]
    feat = plane.open(url, version="feature/x")
    assert feat.commit_id == c_feat and len(feat) == n and feat["w"][0].numpy() == 1234
    assert plane.open(url, version="v1", read_only=True).commit_id in {
        e["id"] for e in again.log()}


def test_format_v2_refuses_names_its_layout_cannot_hold(tmp_path: Path) -> None:
    url, _ = _open_v2(tmp_path)
    ds = plane.open(url)
    before = sorted(ds.store.list("refs/"))
    with pytest.raises(plane.RefNameError, match="20 digits"):
        ds.branch("main/00000000000000000009")
    with pytest.raises(plane.RefNameError, match="tag 'v1' exists"):
        ds.tag("v1/patch")
    assert sorted(ds.store.list("refs/")) == before
    ds.branch("main/2024")  # shorter digit runs are fine in either layout
    assert "main/2024" in ds.versions.branches()


def test_gc_keeps_what_encoded_branches_reach(tmp_path: Path) -> None:
    url = str(tmp_path / "d")
    ds = _base(url)
    ds.checkout("Side/B", create=True)
    ds["v"][0] = 99
    ds.commit("side")
    ds.checkout("main")
    report = plane.gc(url, older_than=0, dry_run=False)
    assert not [k for k in report.unreachable if k.startswith(("commits/", "states/"))]
    assert plane.open(url, version="Side/B")["v"][0].numpy() == 99
    assert RefStore(open_store(url)).format_version == read_dataset_info(
        open_store(url))["format_version"] == FORMAT_VERSION
