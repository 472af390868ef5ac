"""CLI and ingest promises of issue #15 item 11: runtime errors exit 1 (usage errors 2),
image-tree errors name the file, an ingest prints its summary once, what an index build
really built, and views convert to arrays without a loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import plane
from plane.cli import main
from plane.format._media import encode


def _tree(root: Path) -> Path:
    for i in range(3):
        (root / "cat").mkdir(parents=True, exist_ok=True)
        (root / "cat" / f"{i}.jpg").write_bytes(encode(np.full((4, 4, 3), i, np.uint8), "jpeg"))
    bad = root / "cat" / "9-broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    return bad


def test_image_tree_errors_name_the_file(tmp_path: Path) -> None:
    bad = _tree(tmp_path / "imgs")
    ds = plane.create(tmp_path / "ds")
    with pytest.raises(plane.IngestError) as info:
        ds.extend_from(images=str(tmp_path / "imgs"), labels="folder", progress=False)
    assert f"file {bad}" in str(info.value) and "<images>" not in str(info.value)
    assert len(ds) == 0
    report = ds.extend_from(images=str(tmp_path / "imgs"), labels="folder",
                            on_error="quarantine", progress=False)
    assert report.rows_written == 3 and report.errors[0]["source"] == str(bad)


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["summary", str(tmp_path / "nothing")]) == 1  # a runtime error
    assert "plane: error: no tensorplane dataset" in capsys.readouterr().err
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("x")
    ds.commit("empty")
    assert main(["query", str(tmp_path / "ds"), "SELECT *", "--params", "[1"]) == 2  # usage
    assert main(["index", "create", str(tmp_path / "ds")]) == 2
    assert main(["ingest", "parquet", str(tmp_path / "ds"), str(tmp_path / "ds"),
                 "--map", "x"]) == 2


def test_ivf_pq_on_few_rows_says_it_built_ivf_flat(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("e", htype="embedding")
    ds.extend({"e": np.random.default_rng(0).random((300, 8), dtype=np.float32)})
    ds.commit("300 rows")
    info = ds.create_index("e", kind="ivf_pq")
    assert info.kind == "ivf_pq" and info.built == "ivf_flat"
    assert "built as ivf_flat: 300 rows are too few to train ivf_pq" in str(info)
    assert main(["index", "create", str(tmp_path / "ds"), "e", "--kind", "ivf_pq"]) == 0
    assert "built as ivf_flat" in capsys.readouterr().out
    assert ds.create_index("e", kind="flat").built == "flat"


def test_cli_ingest_prints_its_summary_once_on_a_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    _tree(tmp_path / "imgs").unlink()
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert main(["ingest", "images", str(tmp_path / "imgs"), str(tmp_path / "ds"),
                 "--labels", "folder"]) == 0
    out, err = capsys.readouterr()
    assert (out + err).count("ingested 3 of 3 rows") == 1


def test_views_convert_to_arrays_without_a_loader(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("w", dtype="int64")
    ds.create_tensor("t", htype="text")
    ds.extend({"w": [5, 3, 9, 1], "t": ["a", "b", "c", "d"]})
    ds.commit("four")
    res = ds.query("SELECT w, t WHERE w > 2 ORDER BY w DESC")
    got = res.arrays()
    assert list(got) == ["w", "t"]
    assert got["w"].tolist() == [9, 5, 3] and list(got["t"]) == ["c", "a", "b"]
    assert res.arrays(["t"]) == {"t": ["c", "a", "b"]}
    assert ds[1:3].arrays()["w"].tolist() == [3, 9]
    assert ds[1:3].numpy()["w"].tolist() == [3, 9]  # a slice's numpy() stays the dict
