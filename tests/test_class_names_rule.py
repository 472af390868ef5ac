"""Class labels: ids wherever values are read as data, names where rows are rendered for a
person (issue #15 item 7; the rule is in the README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import plane
from plane.cli import main


@pytest.fixture
def ds(tmp_path: Path) -> plane.Dataset:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("label", htype="class_label", class_names=["cat", "dog", "bird"])
    ds.create_tensor("w", dtype="int64")
    ds.extend({"label": ["dog", 0, 2, 1], "w": [0, 1, 2, 3]})
    ds.commit("four")
    return ds


def test_data_paths_read_ids(ds: plane.Dataset) -> None:
    assert ds["label"].numpy().tolist() == [1, 0, 2, 1]
    assert ds[0]["label"].numpy() == 1
    view = ds.query("SELECT label, w WHERE label = 'dog'")
    assert np.asarray(view["label"]).tolist() == [1, 1]
    batch = next(iter(ds.numpy(batch_size=4, shuffle=False)))
    assert batch["label"].tolist() == [1, 0, 2, 1]
    old = ds.commit_id
    ds["label"][1] = "bird"
    new = ds.commit("relabel")
    (_, before, after), = ds.diff(old, new).values("label")
    assert (int(np.asarray(before)), int(np.asarray(after))) == (0, 2)


def test_rendered_rows_show_names(ds: plane.Dataset, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    view = ds.query("SELECT label, w WHERE label = 'dog'")
    assert [r["label"] for r in view.rows()] == ["dog", "dog"]
    assert "dog" in str(view)
    assert main(["query", str(tmp_path / "ds"), "SELECT label WHERE w = 2"]) == 0
    assert "bird" in capsys.readouterr().out
    assert main(["show", str(tmp_path / "ds"), "--tensors", "label,w", "--limit", "2"]) == 0
    assert capsys.readouterr().out.splitlines() == ["[0] label=1 (dog)  w=0",
                                                    "[1] label=0 (cat)  w=1"]
