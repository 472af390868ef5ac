"""Fragments written by workers and applied by one committer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import plane


def _ds(tmp_path: Any) -> plane.Dataset:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("x", dtype="float32", shape=(2,))
    ds.create_tensor("t", htype="text")
    ds.extend({"x": np.zeros((1, 2), "f4"), "t": ["a"]})
    ds.commit("one")
    return ds


def test_fragments_apply_in_order(tmp_path: Any) -> None:
    ds = _ds(tmp_path)
    metas = {n: t.meta for n, t in ds.tensors.items()}
    frags = [plane.write_fragment(ds.store, f"f{i}", metas,
                                  {"x": np.full((3, 2), i, "f4"), "t": [str(i)] * 3})
             for i in (2, 1)]
    assert plane.apply_fragments(ds, sorted(frags, key=lambda f: f.fragment_id)) == 6
    ds.commit("frags")
    got = plane.open(tmp_path / "d")
    assert got["t"].numpy() == ["a", "1", "1", "1", "2", "2", "2"]
    assert len(set(got.row_ids.tolist())) == 7


@pytest.mark.parametrize("change,message", [
    ({"shape": None}, "shape is None in the fragment"),
    ({"dtype": "<f8"}, "dtype is '<f8' in the fragment"),
])
def test_fragment_with_other_schema_is_refused(tmp_path: Any, change: dict[str, Any],
                                               message: str) -> None:
    ds = _ds(tmp_path)
    meta = ds["x"].meta.evolve(**change)
    values = np.arange(6, dtype="f4").reshape(2, 3) if "shape" in change else np.zeros((2, 2))
    frag = plane.write_fragment(ds.store, "bad", {"x": meta, "t": ds["t"].meta},
                                {"x": values, "t": ["b", "c"]})
    with pytest.raises(plane.SchemaError, match=f"fragment 'bad', tensor 'x': {message}"):
        plane.apply_fragments(ds, [frag])
    assert len(ds) == 1 and not ds.has_changes
    assert plane.open(tmp_path / "d")["x"].numpy().tolist() == [[0.0, 0.0]]
