"""Per-process thread pools, made anew in a forked child (a bottom-layer helper: storage,
format and core all stand on it)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

__all__ = ["process_pool"]

_POOLS: dict[str, tuple[int, ThreadPoolExecutor]] = {}
_LOCK = threading.Lock()


def process_pool(name: str, workers: int) -> ThreadPoolExecutor:
    """This process's pool called `name` (threads `plane-<name>`); a forked child, which
    inherits the parent's pool object but none of its threads, gets a new one."""
    got = _POOLS.get(name)
    if got is None or got[0] != os.getpid():
        with _LOCK:
            got = _POOLS.get(name)
            if got is None or got[0] != os.getpid():
                got = (os.getpid(), ThreadPoolExecutor(workers,
                                                       thread_name_prefix=f"plane-{name}"))
                _POOLS[name] = got
    return got[1]
