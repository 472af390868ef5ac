"""Writes that would vanish say so (issue #15 item 6): a dataset handle with unflushed writes
warns when it goes away and at interpreter exit; `with plane.open(...)` flushes."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import plane


def test_a_handle_with_unflushed_writes_warns_when_it_goes_away(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("x", dtype="int64")
    ds.flush()
    ds.extend({"x": [1, 2]})
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        del ds
        gc.collect()
    msgs = [str(w.message) for w in got if issubclass(w.category, ResourceWarning)]
    assert len(msgs) == 1 and "never flushed" in msgs[0] and "ds.flush()" in msgs[0]
    assert len(plane.open(tmp_path / "d")) == 0  # warned, not written behind the user's back


def test_flushed_and_read_only_handles_do_not_warn(tmp_path: Path) -> None:
    with warnings.catch_warnings(record=True) as got:
        warnings.simplefilter("always")
        with plane.create(tmp_path / "d") as ds:
            ds.create_tensor("x", dtype="int64")
            ds.extend({"x": [1, 2]})
        del ds
        ro = plane.open(tmp_path / "d", read_only=True)
        del ro
        gc.collect()
    assert not [w for w in got if issubclass(w.category, ResourceWarning)]
    assert plane.open(tmp_path / "d")["x"].numpy().tolist() == [1, 2]  # `with` flushed


def test_a_script_that_exits_with_unflushed_writes_is_told(tmp_path: Path) -> None:
    code = textwrap.dedent(f"""
        import plane
        ds = plane.create({str(tmp_path / "d")!r})
        ds.create_tensor("x", dtype="int64")
        ds.extend({{"x": [1, 2, 3]}})
        KEEP = ds  # alive until exit
    """)
    out = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr
    assert "never flushed" in out.stderr and str(tmp_path / "d") in out.stderr
