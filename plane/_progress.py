"""Progress on a terminal (tqdm, the `progress` extra): bars for long ingests and index
builds, and an elapsed-time line for `plane` commands with nothing to count.

Shown on stderr only when stderr is a terminal (or when asked), and only once a step has run
for `delay()` seconds, so quick commands and piped output (CI, logs) stay clean. Without
tqdm nothing is shown."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["activity", "delay", "progress_bar"]

#: seconds a step runs before its progress shows (the TQDM_DELAY environment variable, tqdm's
#: own name for it, changes the default)
DELAY = 1.0
#: how often an activity line redraws its elapsed time
TICK = 0.25


def delay() -> float:
    """Seconds before progress appears: $TQDM_DELAY if set (>= 0), else `DELAY`."""
    try:
        return max(0.0, float(os.environ.get("TQDM_DELAY", DELAY)))
    except ValueError:
        return DELAY


def _tqdm() -> Any:
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm


def _auto_on(enabled: bool | None) -> bool:
    return enabled is True or (enabled is None and sys.stderr.isatty())


def progress_bar(total: int | None, desc: str, enabled: bool | None,
                 unit: str = "rows") -> Any:
    """A tqdm bar on stderr counting `unit`s, or None: off when `enabled` is False, when
    tqdm is not installed, or (`enabled` None) when stderr is not a terminal. Left to itself
    (None) it appears only after `delay()` seconds; `enabled=True` shows it at once."""
    tqdm = _tqdm() if _auto_on(enabled) else None
    if tqdm is None:
        return None
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, file=sys.stderr,
                delay=delay() if enabled is None else 0.0, dynamic_ncols=True)


class _Ticker:
    """An elapsed-time line (`desc: 00:03`) on stderr, redrawn by a thread after `delay()`
    seconds until `close()` (idempotent) clears it."""

    def __init__(self, tqdm: Any, desc: str) -> None:
        self._bar = tqdm(total=None, desc=desc, file=sys.stderr, leave=False,
                         bar_format="{desc}: {elapsed}", delay=delay())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="plane-progress", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(TICK):
            with self._lock:
                if not self._stop.is_set():
                    self._bar.update(0)  # draws once `delay` has passed (tqdm checks)

    def close(self) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
            self._bar.close()  # clears the line if it was ever drawn


class _ClosesFirst(io.TextIOBase):
    """`out`, but the first write first clears the activity line (they share a terminal)."""

    def __init__(self, out: TextIO, ticker: _Ticker) -> None:
        self._out, self._ticker = out, ticker

    def write(self, s: str) -> int:
        self._ticker.close()
        return self._out.write(s)

    def flush(self) -> None:
        self._out.flush()

    def isatty(self) -> bool:
        return self._out.isatty()

    def fileno(self) -> int:
        return self._out.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._out.encoding

    def __getattr__(self, name: str) -> Any:  # buffer, errors, ...: the real stream's
        return getattr(self._out, name)


@contextlib.contextmanager
def activity(desc: str, enabled: bool | None = None) -> Iterator[None]:
    """Show `desc` and the time elapsed on stderr while the block runs, for a step with
    nothing to count: only on a terminal (`enabled` None), only after `delay()` seconds, and
    cleared before the block's first print to stdout (the output is the progress then)."""
    tqdm = _tqdm() if _auto_on(enabled) else None
    if tqdm is None:
        yield
        return
    ticker = _Ticker(tqdm, desc)
    try:
        with contextlib.redirect_stdout(_ClosesFirst(sys.stdout, ticker)):
            yield
    finally:
        ticker.close()
