"""jobs.ingest: Parquet / image trees fanned out on a real local Ray instance, committed once
by the version coordinator; retries, idempotent re-runs, S3, bad data, the CLI and YAML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import plane
from configs.ingest import IngestConfig
from plane.format._media import encode

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

from jobs.ingest import run  # noqa: E402  (imports configs, needs nothing from ray yet)


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _table(n: int, start: int = 0) -> pa.Table:
    idx = np.arange(start, start + n)
    rng = np.random.default_rng(start)
    return pa.table({
        "img": pa.array([encode(rng.integers(0, 255, (8, 8, 3), np.uint8), "jpeg")
                         for _ in idx], pa.binary()),
        "kind": pa.array([["cat", "dog", "emu"][i % 3] for i in idx]),
        "emb": pa.FixedSizeListArray.from_arrays(pa.array(rng.random(n * 4, np.float32)), 4),
        "i": pa.array(idx),
    })


def _lake(root: Path, files: int = 3, rows: int = 100) -> Path:
    lake = root / "lake"
    lake.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        pq.write_table(_table(rows, f * rows), lake / f"part-{f:02d}.parquet", row_group_size=20)
    return lake


def _cfg(src: Any, dest: str, **kw: Any) -> IngestConfig:
    base = {"source": str(src), "dest": dest, "row_groups_per_task": 2, "batch_rows": 16,
            "columns": {"img": "images", "kind": "labels", "emb": "embedding", "i": "i"},
            "htypes": {"labels": "class_label"}}
    base.update(kw)
    return IngestConfig.model_validate(base)


def _fail_once(markers: str) -> Any:
    """A task that fails (OSError, which the job retries) the first time it runs each unit,
    leaving a marker file per unit in `markers`, then runs the real one."""
    from jobs.ingest import ingest_unit

    def task(cfg_json: str, unit: Any, metas: Any, mapping: Any) -> dict[str, Any]:
        try:
            os.close(os.open(os.path.join(markers, unit.fragment_id),
                             os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return ingest_unit(cfg_json, unit, metas, mapping)
        raise OSError(f"injected failure of task {unit.fragment_id}")

    return task


def test_fan_out_commits_once_in_source_order_with_retries(ray_local: None,
                                                          tmp_path: Path) -> None:
    lake = _lake(tmp_path)
    dest = str(tmp_path / "ds")
    markers = tmp_path / "markers"
    markers.mkdir()
    out = run(_cfg(lake, dest, message="from the lake"), task=_fail_once(str(markers)))
    assert out["units"] == 3 * 3 and out["units_run"] == 9  # 5 row groups per file, 2 per task
    assert out["files"] == 3 and "from 3 file(s)" in out["summary"]  # files, not units
    assert len(list(markers.iterdir())) == 9  # every task failed once and was retried
    assert out["rows_written"] == 300 and out["commit"]
    ds = plane.open(dest, read_only=True)
    assert ds["i"].numpy().tolist() == list(range(300))  # source order, nothing duplicated
    assert [e["message"] for e in ds.log()] == ["from the lake"]
    assert ds["labels"].meta.class_names == ("cat", "dog", "emu")
    names = ds["labels"].meta.class_names
    assert [names[int(v)] for v in ds["labels"].numpy()] == \
        [["cat", "dog", "emu"][i % 3] for i in range(300)]
    ref = plane.create(tmp_path / "ref")
    ref.extend_from(parquet=str(lake), columns=_cfg(lake, dest).columns, progress=False)
    assert ds["images"].bytes() == ref["images"].bytes()
    np.testing.assert_array_equal(ds["embedding"].numpy(), ref["embedding"].numpy())

    # a re-run skips every committed unit; a new file is the only thing ingested next time
    again = run(_cfg(lake, dest))
    assert again["units_already_committed"] == 9 and again["commit"] is None
    pq.write_table(_table(40, 300), lake / "part-99.parquet", row_group_size=20)
    more = run(_cfg(lake, dest))
    assert more["units_run"] == 1 and more["rows_written"] == 40
    ds = plane.open(dest, read_only=True)
    assert ds["i"].numpy().tolist() == list(range(340))


def test_bad_rows_raise_or_are_quarantined(ray_local: None, tmp_path: Path) -> None:
    lake = _lake(tmp_path, files=2, rows=40)
    t = _table(40, 40)
    imgs = t.column("img").to_pylist()
    imgs[13] = b"not an image at all"
    pq.write_table(t.set_column(0, "img", pa.array(imgs, pa.binary())),
                   lake / "part-01.parquet", row_group_size=20)
    dest = str(tmp_path / "ds")
    plane.create(dest).commit("empty", allow_empty=True)
    with pytest.raises(SystemExit, match=r"part-01\.parquet, row 13, column 'img'"):
        run(_cfg(lake, dest, htypes={"labels": "class_label", "images": "image"}))
    ds = plane.open(dest, read_only=True)
    assert len(ds) == 0 and not list(ds.tensors) and len(ds.log()) == 1
    out = run(_cfg(lake, dest, on_error="quarantine"))
    assert out["rows_written"] == 79 and out["rows_skipped"] == 1
    store = plane.open_store(dest)
    lines = [json.loads(x) for x in store.get(out["quarantine_key"]).decode().splitlines()]
    assert [(x["row"], x["column"]) for x in lines] == [(13, "img")]


@pytest.mark.s3
def test_s3_to_s3_through_the_cli_with_a_yaml_config(ray_local: None, tmp_path: Path,
                                                    s3_bucket: tuple[str, Any]) -> None:
    import s3fs

    url, opts = s3_bucket
    bucket = url.split("/")[2]
    fs = s3fs.S3FileSystem(**opts)
    for f in range(2):
        with fs.open(f"{bucket}/lake/p{f}.parquet", "wb") as fh:
            pq.write_table(_table(50, f * 50), fh, row_group_size=25)
    (tmp_path / "ingest.yaml").write_text(
        f"source: s3://{bucket}/lake/\ndest: s3://{bucket}/nowhere\n"
        "columns: {i: i, kind: labels}\nrow_groups_per_task: 1\n")
    env = {**os.environ, "RAY_ADDRESS": ray.get_runtime_context().gcs_address}
    cmd = [sys.executable, "-m", "jobs.ingest", "--config", str(tmp_path / "ingest.yaml"),
           "--dest", url, "--source-storage-options", json.dumps(opts),
           "--dest-storage-options", json.dumps(opts), "-m", "cli ingest"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["units"] == 4 and out["rows_written"] == 100
    ds = plane.open(url, read_only=True, storage_options=opts)
    assert ds["i"].numpy().tolist() == list(range(100))
    assert ds.log()[0]["message"] == "cli ingest"
    bad = subprocess.run([sys.executable, "-m", "jobs.ingest", "--dest", url],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "source" in bad.stderr


def test_image_tree_job(ray_local: None, tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for c in ("b", "a"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            (root / c / f"{i}.jpg").write_bytes(encode(np.full((4, 4, 3), i, np.uint8), "jpeg"))
    dest = str(tmp_path / "ds")
    out = run(IngestConfig(source=str(root), dest=dest, format="images", labels="folder",
                           files_per_task=3))
    assert out["units"] == 4 and out["rows_written"] == 10 and out["files"] == 10
    ds = plane.open(dest, read_only=True)
    assert ds["labels"].meta.class_names == ("a", "b")
    assert ds["labels"].numpy().tolist() == [0] * 5 + [1] * 5
    assert [p.rsplit("/", 2)[-2] for p in ds["paths"].numpy(aslist=True)] == ["a"] * 5 + ["b"] * 5
