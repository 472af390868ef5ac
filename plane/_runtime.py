"""Shared runtime helpers, the bottom layer every package stands on (storage, format, core and
the rest import it; it imports nothing from plane): per-process thread pools, the I/O width,
the usable CPUs, an LRU bounded in bytes and a fast `unique` of integers."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

__all__ = ["IO_THREADS", "LRU", "io_pool", "on_io_thread", "process_pool", "unique_ints",
           "usable_cpus"]

#: concurrent requests to an object store: the shared I/O pool's width and the default of
#: `Store.io_threads`, `get_many`/`put_many` and parallel source reads
IO_THREADS = 16

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


def io_pool() -> ThreadPoolExecutor:
    """One shared I/O thread pool per process, `IO_THREADS` wide (recreated after fork)."""
    return process_pool("io", IO_THREADS)


def on_io_thread() -> bool:
    """True on a thread of `io_pool`: work there must not wait on the pool it runs in (all
    its threads could be waiting, none left to do the work)."""
    return threading.current_thread().name.startswith("plane-io")


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask, e.g. a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def unique_ints(a: np.ndarray) -> np.ndarray:
    """Sorted unique values of an integer array. (`np.unique` imports `numpy.ma` on its first
    call, ~60 ms of a loader's time to first batch.)"""
    a = np.sort(a)
    if a.shape[0] < 2:
        return a
    keep = np.empty(a.shape[0], bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    out: np.ndarray = a[keep]
    return out


class LRU:
    """A thread-safe cache by key, bounded by the sum of `size(value)` over its values: the
    least recently read go first; a value larger than the bound is not kept."""

    def __init__(self, max_bytes: int, size: Callable[[Any], int]) -> None:
        self.max_bytes, self.size = max_bytes, size
        self.items: OrderedDict[str, Any] = OrderedDict()
        self.total = 0
        self.lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self.lock:
            v = self.items.get(key)
            if v is not None:
                self.items.move_to_end(key)
            return v

    def put(self, key: str, value: Any) -> None:
        n = self.size(value)
        if n > self.max_bytes:
            return
        with self.lock:
            if key in self.items:
                return
            self.items[key] = value
            self.total += n
            while self.total > self.max_bytes:
                _, old = self.items.popitem(last=False)
                self.total -= self.size(old)

    def discard(self, key: str) -> None:
        """Forget `key` (kept elsewhere by the caller, e.g. pinned)."""
        with self.lock:
            v = self.items.pop(key, None)
            if v is not None:
                self.total -= self.size(v)
