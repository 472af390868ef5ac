"""Patch folding: when a working state first updates a tensor whose base lists many patches,
those base patches are folded into one, so parts stay small, with the same values, diffs,
merges and concurrent-writer rebases as before."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings
from test_versions_stateful import VersionMachine

import plane
import plane.core._working as dsmod
from plane.core._state import State, TensorPart


def _patches(ds: plane.Dataset, tensor: str) -> int:
    """How many patches the tensor's part holds in the stored (flushed) state."""
    store = ds.store
    state = State.load(store, ds._ws.base_key)
    return len(TensorPart.load(store, state.tensors[tensor]).patches)


def test_many_small_updates_keep_the_part_small_and_every_version_right(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("v", dtype="int64")
    ds.create_tensor("t", htype="text")
    n = 500
    ds.extend({"v": np.arange(n), "t": [f"r{i}" for i in range(n)]})
    first = ds.commit("base")
    rng = np.random.default_rng(0)
    model_v, model_t = list(range(n)), [f"r{i}" for i in range(n)]
    commits = []
    for k in range(3 * dsmod.PATCH_COMPACT_AT):
        i = int(rng.integers(0, n))
        ds["v"][i] = -k
        ds["t"][i] = f"u{k}"
        model_v[i], model_t[i] = -k, f"u{k}"
        commits.append((ds.commit(f"u{k}"), list(model_v), list(model_t)))
        assert _patches(ds, "v") <= dsmod.PATCH_COMPACT_AT
    sizes = [len(ds.store.get(k)) for k in ds._ws.part_keys.values()]
    assert max(sizes) < 64 * 1024  # never the sum of every patch ever written
    for cid, v, t in commits[:: dsmod.PATCH_COMPACT_AT // 3]:
        old = plane.open(tmp_path / "d", version=cid, read_only=True)
        assert old["v"].numpy().tolist() == v and old["t"].numpy() == t
    d = ds.diff(first, commits[-1][0])
    changed = sorted({i for i in range(n) if model_v[i] != i})
    assert sorted(ds.row_ids[changed].tolist()) == sorted(d.tensors["v"].updated.tolist())


def test_images_fold_as_their_stored_bytes_and_emptied_rows_stay_empty(tmp_path: Any) -> None:
    pil = pytest.importorskip("PIL.Image")
    import io

    def jpeg(c: int) -> bytes:
        buf = io.BytesIO()
        pil.new("RGB", (8, 8), (c, 0, 0)).save(buf, "JPEG")
        return buf.getvalue()

    ds = plane.create(tmp_path / "d")
    ds.create_tensor("img", htype="image", sample_compression="jpeg")
    ds.extend({"img": [jpeg(0)] * 5})
    ds.commit("base")
    ds["img"][4] = None  # an emptied sample is folded as empty, not as broken bytes
    ds.commit("empty 4")
    want = {i: jpeg(0) for i in range(4)}
    for k in range(dsmod.PATCH_COMPACT_AT + 2):  # a commit per update: the base folds once
        b = jpeg(k * 5)
        ds["img"][k % 4] = b
        want[k % 4] = b
        ds.commit(f"u{k}")
    assert _patches(ds, "img") == 4  # [fold of 32, then 3 more]
    got = plane.open(tmp_path / "d")
    assert [got["img"][i].bytes() for i in range(4)] == [want[i] for i in range(4)]
    assert got["img"][4].bytes() is None  # a null row stays null through the fold
    assert got.snapshot().read("img", np.array([4]), False, True) == [b""]  # stored empty


def test_writers_that_fold_the_same_base_still_rebase_or_conflict(tmp_path: Any) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("v", dtype="int64")
    ds.extend({"v": np.arange(100)})
    ds.commit("base")
    for k in range(dsmod.PATCH_COMPACT_AT):  # a base with many patches (rows 0..31)
        ds["v"][k] = 1000 + k
        ds.commit(f"u{k}")
    want = ds["v"].numpy().tolist()
    for folder in ("both", "a", "b"):  # who updates (and so folds); the other appends
        a = plane.open(tmp_path / "d")
        b = plane.open(tmp_path / "d")
        if folder in ("both", "a"):
            a["v"][60] = -60  # a's first update of "v" folds the base's patches
            want[60] = -60
        else:
            a.extend({"v": [7]})  # no patch: a's part keeps the base's patches
        if folder in ("both", "b"):
            b["v"][70] = -70
            want[70] = -70
        else:
            b.extend({"v": [8]})
        a.commit("a")
        b.commit("b")  # disjoint rows: b rebases, whoever folded
        want += [v for v, who in ((7, "a"), (8, "b")) if folder != "both" and who != folder]
        got = plane.open(tmp_path / "d")
        assert got["v"].numpy().tolist() == want, folder
        for k in range(dsmod.PATCH_COMPACT_AT):  # grow the base again for the next round
            got["v"][k] = 2000 + k
            got.commit(f"again {k}")
            want[k] = 2000 + k
    a = plane.open(tmp_path / "d")
    b = plane.open(tmp_path / "d")
    a["v"][5] = -5
    b["v"][5] = 5  # the same row on both sides: a conflict, never a lost update
    head = a.commit("a sets 5")
    with pytest.raises(plane.CommitConflictError, match="touch the same rows"):
        b.commit("b sets 5")
    assert plane.open(tmp_path / "d").commit_id == head


class FoldingMachine(VersionMachine):
    """The versioning state machine with patches folded after every third update."""

    def __init__(self) -> None:
        self._saved = dsmod.PATCH_COMPACT_AT
        dsmod.PATCH_COMPACT_AT = 3
        super().__init__()

    def teardown(self) -> None:
        dsmod.PATCH_COMPACT_AT = self._saved
        super().teardown()


FoldingMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=30, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestFoldingMachine = FoldingMachine.TestCase
