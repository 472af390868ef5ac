"""Progress on a terminal: `plane` commands show it on stderr when it is a tty (after a
second), never when piped; the library helpers behave the same way from Python."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import plane
from plane import _progress
from plane.cli import main

pytest.importorskip("tqdm")
ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env


def on_terminal(argv: list[str], **env: str) -> tuple[int, str]:
    """Run `plane ARGV` with stdout and stderr on one pseudo-terminal (100 columns, as a
    real one has a size): (exit code, everything the terminal received)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "plane.cli", *argv], stdin=slave,
                         stdout=slave, stderr=slave, env=_env(**env), close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=120), ANSI.sub("", b"".join(chunks).decode(errors="replace"))


def piped(argv: list[str], **env: str) -> tuple[int, str, str]:
    r = subprocess.run([sys.executable, "-m", "plane.cli", *argv], capture_output=True,
                       text=True, env=_env(**env), timeout=120)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two Parquet files of 3,000 rows each."""
    root = tmp_path_factory.mktemp("lake")
    for i in range(2):
        n = np.arange(i * 3000, (i + 1) * 3000)
        pq.write_table(pa.table({"x": n.astype("float32"), "t": [f"row {k}" for k in n]}),
                       root / f"part-{i}.parquet")
    return root


def _ingest(lake: Path, dest: Path) -> list[str]:
    return ["ingest", "parquet", str(lake), str(dest), "--batch-rows", "500", "-m", "lake"]


# ---- the command line, on a pseudo-terminal and piped ---------------------------------------
def test_ingest_on_a_terminal_shows_a_bar_and_its_report_once(lake: Path,
                                                               tmp_path: Path) -> None:
    rc, out = on_terminal(_ingest(lake, tmp_path / "ds"), TQDM_DELAY="0")
    assert rc == 0, out
    frames = [f for f in re.split(r"[\r\n]+", out) if f.startswith("ingest:")]
    assert frames, out  # the bar, redrawn as rows arrive
    assert any("6.00k" in f or "6000" in f for f in frames), frames  # it counted every row
    assert out.count("ingested 6,000 of 6,000 rows") == 1, out
    assert len(plane.open(tmp_path / "ds")) == 6000


def test_piped_output_has_no_progress_at_all(lake: Path, tmp_path: Path) -> None:
    rc, out, err = piped(_ingest(lake, tmp_path / "ds"), TQDM_DELAY="0")
    assert rc == 0, err
    assert err == "" and "\r" not in out, (out, err)
    assert out.count("ingested 6,000 of 6,000 rows") == 1
    rc, out, err = piped(["log", str(tmp_path / "ds")], TQDM_DELAY="0")
    assert rc == 0 and err == "" and "\r" not in out and "plane log" not in out


def test_a_command_without_a_count_shows_its_time_then_clears_it(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("x", dtype="int64")
    ds.extend({"x": [1, 2, 3]})
    cid = ds.commit("three")
    rc, out = on_terminal(["log", str(tmp_path / "ds")], TQDM_DELAY="0")
    assert rc == 0, out
    assert re.search(r"plane log: \d\d:\d\d", out), out  # shown while it ran
    # ... and erased before the command's own output, which starts on a clean line
    before, _, after = out.partition(f"commit {cid}")
    assert after, out
    assert before.rstrip(" ").endswith("\r") and "plane log" not in after, out


def test_a_quick_command_on_a_terminal_shows_nothing(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("x", dtype="int64")
    ds.commit("empty")
    rc, out = on_terminal(["branch", str(tmp_path / "ds")], TQDM_DELAY="30")
    assert rc == 0 and "\r\r" not in out and "plane branch:" not in out, out
    assert out.strip().startswith("* main"), out


def test_index_build_and_optimize_show_bars(tmp_path: Path) -> None:
    pytest.importorskip("faiss")
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("e", htype="embedding")
    ds.extend({"e": np.random.default_rng(0).random((300, 8), np.float32)})
    ds.commit("vectors")
    url = str(tmp_path / "ds")
    rc, out = on_terminal(["index", "create", url, "e", "--kind", "flat"], TQDM_DELAY="0")
    assert rc == 0 and re.search(r"index e: 100%.*300/300", out), out
    ds.extend({"e": np.ones((5, 8), np.float32)})
    ds.commit("five more")
    rc, out = on_terminal(["index", "optimize", url], TQDM_DELAY="0")
    assert rc == 0 and re.search(r"index e: 100%.*305/305", out), out
    assert "flat index on 'e'" in out and "305 rows" in out


# ---- `plane index optimize`, in-process ------------------------------------------------------
def test_index_optimize_rebuilds_stale_indexes_only(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("faiss")
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("e", htype="embedding")
    ds.extend({"e": np.eye(8, dtype=np.float32)})
    ds.commit("eight")
    url = str(tmp_path / "ds")
    assert main(["index", "create", url, "e", "--kind", "flat"]) == 0
    assert main(["index", "optimize", url]) == 0
    assert capsys.readouterr().out.endswith("(every index is built on the current commit)\n")
    ds.extend({"e": np.ones((2, 8), np.float32)})
    head = ds.commit("ten")
    assert main(["index", "optimize", url, "e"]) == 0
    assert f"at commit {head[:12]}: 10 rows" in capsys.readouterr().out
    assert main(["index", "optimize", url, "nope"]) == 1
    assert "no tensor 'nope'" in capsys.readouterr().err


# ---- the helpers -------------------------------------------------------------------------------
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def tty_stderr(monkeypatch: pytest.MonkeyPatch) -> _Tty:
    """A terminal as sys.stderr (set in the test body: pytest's capture replaces sys.stderr
    again after fixtures are set up)."""
    err = _Tty()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.delenv("TQDM_DELAY", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    return err


def test_bars_wait_a_second_before_showing(monkeypatch: pytest.MonkeyPatch) -> None:
    err = tty_stderr(monkeypatch)
    bar: Any = _progress.progress_bar(100, "ingest", None)
    assert bar is not None and bar.delay == _progress.DELAY == 1.0
    bar.update(100)
    bar.close()
    assert err.getvalue() == ""  # finished within the second: never drawn
    asked: Any = _progress.progress_bar(10, "ingest", True)  # asked for: at once
    assert asked.delay == 0
    asked.close()
    assert "ingest" in err.getvalue()


def test_no_terminal_or_no_tqdm_means_no_progress(monkeypatch: pytest.MonkeyPatch) -> None:
    err = tty_stderr(monkeypatch)
    assert _progress.progress_bar(10, "x", False) is None
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    assert _progress.progress_bar(10, "x", None) is None
    with _progress.activity("plane x"):
        print("out")
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)  # tqdm not installed
    assert _progress.progress_bar(10, "x", None) is None
    assert _progress.progress_bar(10, "x", True) is None
    with _progress.activity("plane x"):
        pass
    assert err.getvalue() == ""


@pytest.mark.parametrize("value, want", [("0", 0.0), ("2.5", 2.5), ("-1", 0.0),
                                         ("soon", 1.0)])
def test_tqdm_delay_sets_the_delay(monkeypatch: pytest.MonkeyPatch, value: str,
                                   want: float) -> None:
    monkeypatch.setenv("TQDM_DELAY", value)
    assert _progress.delay() == want
