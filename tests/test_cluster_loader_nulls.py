"""The cluster loader refuses a tensor with nulls before it contacts the cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

import plane


def test_a_tensor_with_nulls_is_refused_up_front(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    import actors

    url = str(tmp_path / "ds")
    ds = plane.create(url)
    ds.create_tensor("x", dtype="int64")
    ds.extend({"x": [1, 2, 3]})
    ds.create_tensor("y", dtype="int64")  # null in rows 0..2
    ds.append({"x": 4, "y": 5})
    ds.commit("y is null in three rows")
    with pytest.raises(plane.SampleError, match=r"'y' .* null in 3 row\(s\) \(first: row 0\)"):
        actors.cluster_loader(url, tensors=["x", "y"], rank=0, world_size=1)
    import ray

    assert not ray.is_initialized()  # refused before it looked for the cache
