"""`make demo`'s script runs end to end (it asserts its own story: a conflict is caught)."""

from __future__ import annotations

from pathlib import Path

import pytest

import plane
from plane import demo


@pytest.mark.parametrize("n", [100, 200])
def test_demo_runs_for_small_sizes(tmp_path: Path, n: int,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """With random labels some of the first rows are already birds: relabelling them as birds
    changed nothing and the merge the demo expects to conflict did not (#15 item 10)."""
    pytest.importorskip("torch")
    demo.run(tmp_path / "demo.plane", n)
    out = capsys.readouterr().out
    assert "merge refused:" in out and "both updated" in out
    ds = plane.open(tmp_path / "demo.plane", read_only=True)
    head = ds.log()[0]
    assert head["message"] == "Merge relabel into main" and len(head["parents"]) == 2
