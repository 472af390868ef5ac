"""Deferred fsyncs for local files: what writes renamed into place is made durable in one
parallel batch, before anything that may point at it (a ref record) is linked.

Concurrent fsyncs on one file system share journal commits, so a batch of N costs about one
or two sequential fsyncs rather than N (a one-row commit: 4 files and 4 directories).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from plane._runtime import process_pool

__all__ = ["PendingSyncs", "fsync_dir"]

def _pool() -> ThreadPoolExecutor:
    """One small fsync pool per process (made anew after a fork)."""
    return process_pool("fsync", 8)


def fsync_dir(path: str) -> None:
    """Make the entries of directory `path` durable (a no-op where directories can't be
    opened or synced, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(fd)
    except OSError:  # EINVAL/EBADF: this file system does not sync directories
        pass
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    """Make the bytes of file `path` durable; a file already gone needs nothing."""
    try:
        fd = os.open(path, os.O_RDONLY if os.name == "posix" else os.O_RDWR)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(job: tuple[str, bool]) -> None:
    path, is_dir = job
    (fsync_dir if is_dir else fsync_file)(path)


class PendingSyncs:
    """Files written and directories changed since the last `flush` (thread-safe)."""

    def __init__(self) -> None:
        self._files: set[str] = set()
        self._dirs: set[str] = set()
        self._lock = threading.Lock()

    def add(self, file: str | None = None, dirs: Iterable[str] = ()) -> None:
        with self._lock:
            if file is not None:
                self._files.add(file)
            self._dirs.update(dirs)

    def flush(self, extra_files: Iterable[str] = ()) -> None:
        """fsync every pending file and directory, and `extra_files`, in parallel."""
        with self._lock:
            files, dirs = set(self._files), set(self._dirs)
        jobs = [(f, False) for f in files | set(extra_files)] + [(d, True) for d in dirs]
        if len(jobs) == 1:
            _fsync(jobs[0])
        elif jobs:
            list(_pool().map(_fsync, jobs))
        with self._lock:
            self._files -= files
            self._dirs -= dirs
