"""Errors fit Python's habits: a bad argument is a ValueError, a missing optional extra an
ImportError, a missing branch or tag a VersionNotFoundError (a KeyError); each is still a
PlaneError, and the dataset is left as it was."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import plane
from plane.cli import parse_pairs
from plane.query import list_indexes


def _ds(tmp_path: Path) -> plane.Dataset:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("x", dtype="float32")
    ds.extend({"x": np.arange(12, dtype=np.float32).reshape(6, 2)})
    ds.commit("six rows")
    return ds


def test_missing_dependency_error_is_an_import_error() -> None:
    assert issubclass(plane.MissingDependencyError, ImportError)
    assert issubclass(plane.MissingDependencyError, plane.PlaneError)


@pytest.mark.parametrize("call", [
    lambda ds: ds.numpy(batch_size=0),
    lambda ds: ds.numpy(on_error="ignore"),
    lambda ds: ds.numpy(num_workers=-1),
    lambda ds: ds.numpy(worker_mode="fibers"),
    lambda ds: ds.extend_from(),
    lambda ds: ds.extend_from(arrow=[1, 2], on_error="retry"),
    lambda ds: ds.extend_from(arrow=42),
], ids=["batch_size", "loader_on_error", "num_workers", "worker_mode", "no_source",
        "ingest_on_error", "arrow_type"])
def test_bad_arguments_are_value_errors(tmp_path: Path, call: object) -> None:
    ds = _ds(tmp_path)
    head = ds.commit_id
    with pytest.raises(plane.InvalidArgumentError) as got:
        try:
            call(ds)  # type: ignore[operator]
        except ValueError as e:  # what a caller who knows only Python would write
            assert isinstance(e, plane.PlaneError)
            raise
    assert str(got.value)
    assert ds.commit_id == head and len(ds) == 6 and not ds.has_changes


def test_bad_merge_policy_is_a_value_error_and_changes_nothing(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    ds.versions.create_branch("b")
    ds.versions.checkout("b")
    ds.extend({"x": np.ones((1, 2), np.float32)})
    ds.commit("on b")
    ds.versions.checkout("main")
    ds.extend({"x": np.zeros((1, 2), np.float32)})
    ds.commit("on main")
    head = ds.commit_id
    with pytest.raises(ValueError, match=r"conflicts='sideways'.*fail"):
        ds.merge("b", conflicts="sideways")
    assert ds.commit_id == head and len(ds) == 7
    assert ds["x"].numpy()[-1].tolist() == [0.0, 0.0]


def test_cli_pairs_are_value_errors() -> None:
    assert parse_pairs(["a=b"], "--map") == {"a": "b"}
    with pytest.raises(ValueError, match="--map takes NAME=VALUE"):
        parse_pairs(["novalue"], "--map")


def test_missing_torch_is_an_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    ds = _ds(tmp_path)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'tensorplane\[torch\]'") as got:
        ds.pytorch()
    assert isinstance(got.value, plane.MissingDependencyError)


def test_missing_faiss_is_an_import_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    ds = _ds(tmp_path)
    monkeypatch.setitem(sys.modules, "faiss", None)
    with pytest.raises(ImportError, match=r"pip install 'tensorplane\[index\]'"):
        ds.create_index("x", kind="flat", progress=False)
    assert list_indexes(ds) == []  # nothing was registered


def test_missing_fsspec_backend_is_an_import_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import fsspec

    def no_backend(protocol: str) -> None:
        raise ImportError(f"no module for {protocol}")

    monkeypatch.setattr(fsspec, "get_filesystem_class", no_backend)
    with pytest.raises(ImportError, match="pip install gcsfs"):
        plane.open_store("gs://bucket/ds")


def test_missing_branch_or_tag_is_version_not_found(tmp_path: Path) -> None:
    ds = _ds(tmp_path)
    ds.versions.tag("v1")
    for call, what in [(lambda: ds.versions.delete_branch("nope"), "no branch 'nope'"),
                       (lambda: ds.versions.delete_tag("nope"), "no tag 'nope'")]:
        with pytest.raises(plane.VersionNotFoundError, match=what):
            try:
                call()
            except KeyError:  # VersionNotFoundError is a KeyError, and still a PlaneError
                raise
    assert ds.versions.branches() == ["main"] and list(ds.versions.tags()) == ["v1"]
