"""The `Store` protocol: six primitives, everything else inherited."""

from __future__ import annotations

import abc
import builtins
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from plane._runtime import IO_THREADS

__all__ = ["Store", "DEFAULT_IO_THREADS"]

DEFAULT_IO_THREADS = IO_THREADS


class Store(abc.ABC):
    """A flat key -> bytes object store.

    Keys are '/'-separated relative paths. Backends implement `get`, `get_range`, `put`,
    `put_if_absent`, `delete` and `list`; `get_many`, `exists` and `size` have defaults built on
    those. Implementations are synchronous and thread-safe; concurrency comes from callers.
    """

    #: a URL that reopens this store (``mem://x``, ``file:///p``, ``s3://b/p``)
    url: str = ""
    #: concurrent reads that pay off: many to hide a remote store's latency, a few on a disk
    io_threads: int = DEFAULT_IO_THREADS
    #: get_buffer is a local map or copy, as cheap as a range read: readers may open a chunk
    #: and use samples checked one by one while its whole checksum is computed
    local_buffers: bool = False

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """Return the object's bytes; raise ObjectNotFoundError if absent."""

    @abc.abstractmethod
    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Return bytes [start, end) of the object, like ``data[start:end]``.

        A negative start or end counts from the end of the object; ``end == 0`` means "to the
        end" (so the last 8 bytes are ``get_range(key, -8, 0)``); both are clamped to the size.
        """

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Write the object atomically (readers see the old bytes or the new, never a mix)."""

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Atomically create the object; return False (writing nothing) if it already exists."""

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key that starts with `prefix` (string prefix, not directory)."""

    # ---- defaults built on the primitives -------------------------------------------------
    def read_into(self, key: str, start: int, out: memoryview) -> int:
        """Read bytes [start, start + len(out)) of the object into `out`; return how many.
        Backends may read straight into the buffer (local files do, with no extra copy)."""
        data = self.get_range(key, start, start + out.nbytes)
        out[: len(data)] = data
        return len(data)

    def get_buffer(self, key: str) -> bytes | memoryview:
        """The object as a read-only buffer; backends may map it instead of copying (local
        files are memory-mapped). Defaults to `get`."""
        return self.get(key)

    def get_many(self, keys: Iterable[str], max_workers: int = DEFAULT_IO_THREADS
                 ) -> dict[str, bytes]:
        """Fetch several objects concurrently (thread pool); raise on the first missing one."""
        keys = list(dict.fromkeys(keys))
        if len(keys) <= 1:
            return {k: self.get(k) for k in keys}
        with ThreadPoolExecutor(min(max_workers, len(keys))) as pool:
            return dict(zip(keys, pool.map(self.get, keys)))

    def put_many(self, items: Mapping[str, bytes], max_workers: int = DEFAULT_IO_THREADS) -> None:
        """Write several objects concurrently."""
        if len(items) <= 1:
            for k, v in items.items():
                self.put(k, v)
            return
        with ThreadPoolExecutor(min(max_workers, len(items))) as pool:
            list(pool.map(lambda kv: self.put(*kv), items.items()))

    def exists(self, key: str) -> bool:
        """True if the object exists."""
        from plane._errors import ObjectNotFoundError

        try:
            self.get_range(key, 0, 1)
        except ObjectNotFoundError:
            return False
        return True

    def list_info(self, prefix: str = "") -> Iterator[tuple[str, int | None, float | None]]:
        """(key, size, last-modified epoch seconds) per key; None where the backend can't tell."""
        return ((k, None, None) for k in self.list(prefix))

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key under `prefix`; return how many."""
        keys = list(self.list(prefix))
        for k in keys:
            self.delete(k)
        return len(keys)

    def sync(self) -> None:
        """Make every write this store has made durable (local files: fsync the directories
        renamed into). Object stores are durable on return of each write: a no-op."""
        return None

    def clean_temporary(self, older_than: float, dry_run: bool = True
                        ) -> builtins.list[str]:
        """Leftovers of writes that never finished (temp files of a killed writer) at least
        `older_than` seconds old: listed, and unless `dry_run` removed. Backends whose writes
        are atomic server-side have none."""
        return []

    @property
    def read_only(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def clamp_range(size: int, start: int, end: int) -> tuple[int, int]:
    """Resolve get_range's (start, end) convention against an object of `size` bytes."""
    if start < 0:
        start = max(size + start, 0)
    if end <= 0:
        end = size + end if end < 0 else size
    end = min(end, size)
    return start, max(start, end)
