"""Cross-cutting behaviour as wrappers around any Store: cache, read-only, fault injection."""

from __future__ import annotations

import builtins
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from plane._errors import ReadOnlyError
from plane.storage._base import DEFAULT_IO_THREADS, Store, clamp_range

__all__ = ["WrapperStore", "CachingStore", "ReadOnlyStore", "RecordingStore"]


class WrapperStore(Store):
    """Delegates every primitive to `inner`; subclasses override what they change."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.url = inner.url

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def get_range(self, key: str, start: int, end: int) -> bytes:
        return self.inner.get_range(key, start, end)

    def get_buffer(self, key: str) -> bytes | memoryview:
        return self.inner.get_buffer(key)

    def read_into(self, key: str, start: int, out: memoryview) -> int:
        return self.inner.read_into(key, start, out)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(key, data)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return self.inner.list(prefix)

    def list_info(self, prefix: str = "") -> Iterator[tuple[str, int | None, float | None]]:
        return self.inner.list_info(prefix)

    def sync(self) -> None:
        self.inner.sync()

    def clean_temporary(self, older_than: float, dry_run: bool = True
                        ) -> builtins.list[str]:
        return self.inner.clean_temporary(older_than, dry_run)

    @property
    def read_only(self) -> bool:
        return self.inner.read_only

    @property
    def io_threads(self) -> int:  # type: ignore[override]
        return self.inner.io_threads

    @property
    def local_buffers(self) -> bool:  # type: ignore[override]
        return self.inner.local_buffers

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.inner!r})"

    def __getstate__(self) -> dict[str, object]:
        return dict(self.__dict__)


class ReadOnlyStore(WrapperStore):
    """Refuses every write with ReadOnlyError."""

    def _refuse(self, key: str) -> None:
        raise ReadOnlyError(
            f"cannot write {key!r}: {self.url} is opened read-only; "
            "open it with read_only=False to write"
        )

    def put(self, key: str, data: bytes) -> None:
        self._refuse(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._refuse(key)
        return False

    def delete(self, key: str) -> None:
        self._refuse(key)

    def clean_temporary(self, older_than: float, dry_run: bool = True
                        ) -> builtins.list[str]:
        if not dry_run:
            self._refuse("temporary files")
        return self.inner.clean_temporary(older_than, dry_run)

    @property
    def read_only(self) -> bool:
        return True


class RecordingStore(WrapperStore):
    """Remembers the keys written through it, so that an operation that fails can remove what
    it wrote and nothing else. `written`: keys put (attempted, so a put that failed half-way
    is included) and keys `put_if_absent` created; a put_if_absent that found the key, or
    failed, is someone else's and not recorded."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.written: set[str] = set()
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        return {"inner": self.inner, "url": self.url, "written": set(self.written)}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _record(self, keys: Iterator[str] | list[str]) -> None:
        with self._lock:
            self.written.update(keys)

    def put(self, key: str, data: bytes) -> None:
        self._record([key])
        self.inner.put(key, data)

    def put_many(self, items: Mapping[str, bytes],
                 max_workers: int = DEFAULT_IO_THREADS) -> None:
        self._record(list(items))
        self.inner.put_many(items, max_workers)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        created = self.inner.put_if_absent(key, data)
        if created:
            self._record([key])
        return created


class CachingStore(WrapperStore):
    """An LRU cache of whole objects, bounded in bytes, in memory and optionally on local disk.

    Only keys accepted by `cacheable` (default: all) are cached; use it to cache immutable
    objects (content-addressed chunks) and never mutable ones. Ranges are served from a cached
    whole object when present, otherwise passed through uncached.
    """

    local_buffers = False  # a miss fetches the whole object from the inner store

    def __init__(
        self,
        inner: Store,
        max_bytes: int = 256 << 20,
        disk_dir: str | os.PathLike[str] | None = None,
        disk_max_bytes: int = 4 << 30,
        cacheable: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__(inner)
        self.max_bytes = max_bytes
        self.cacheable = cacheable
        self._mem: OrderedDict[str, bytes] = OrderedDict()
        self._mem_bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self.disk_max_bytes = disk_max_bytes
        self._disk_bytes: int | None = None  # bytes on disk, counted on first write
        if self.disk_dir is not None:
            self.disk_dir.mkdir(parents=True, exist_ok=True)

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state["_mem"] = OrderedDict()
        state["_mem_bytes"] = 0
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _ok(self, key: str) -> bool:
        return self.cacheable is None or self.cacheable(key)

    def _disk_path(self, key: str) -> Path:
        assert self.disk_dir is not None
        h = hashlib.blake2b(f"{self.inner.url}/{key}".encode(), digest_size=16).hexdigest()
        return self.disk_dir / h[:2] / h

    def _remember(self, key: str, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        with self._lock:
            old = self._mem.pop(key, None)
            if old is not None:
                self._mem_bytes -= len(old)
            self._mem[key] = data
            self._mem_bytes += len(data)
            while self._mem_bytes > self.max_bytes:
                _, ev = self._mem.popitem(last=False)
                self._mem_bytes -= len(ev)

    def _lookup(self, key: str) -> bytes | None:
        with self._lock:
            data = self._mem.get(key)
            if data is not None:
                self._mem.move_to_end(key)
                return data
        if self.disk_dir is not None:
            p = self._disk_path(key)
            try:
                data = p.read_bytes()
                os.utime(p)  # recency for LRU eviction (atime alone may not move: relatime)
            except FileNotFoundError:
                return None
            self._remember(key, data)
            return data
        return None

    def _store_disk(self, key: str, data: bytes) -> None:
        if self.disk_dir is None:
            return
        p = self._disk_path(key)
        p.parent.mkdir(exist_ok=True)
        tmp = p.with_suffix(f".tmp{os.getpid()}-{threading.get_ident()}")
        tmp.write_bytes(data)
        os.replace(tmp, p)
        with self._lock:
            if self._disk_bytes is None:
                self._disk_bytes = self._disk_usage()
            else:
                self._disk_bytes += len(data)
            over = self._disk_bytes > self.disk_max_bytes
        if over:
            self._trim_disk()

    def _disk_usage(self) -> int:
        assert self.disk_dir is not None
        return sum(p.stat().st_size for p in self.disk_dir.glob("*/*") if ".tmp" not in p.name)

    def _trim_disk(self) -> None:
        """Evict least recently used files down to 90% of the limit. The count is rebuilt from
        a scan under the lock, so concurrent writers are over-counted, never missed; processes
        sharing the directory each count their own writes and see the others' when they trim."""
        assert self.disk_dir is not None
        with self._lock:
            files = []
            for p in self.disk_dir.glob("*/*"):
                if ".tmp" in p.name:
                    continue
                try:
                    st = p.stat()
                except FileNotFoundError:
                    continue
                files.append((st.st_atime, st.st_size, p))
            total = sum(size for _, size, _ in files)
            target = int(self.disk_max_bytes * 0.9)
            for _, size, p in sorted(files, key=lambda f: f[0]):
                if total <= target:
                    break
                p.unlink(missing_ok=True)
                total -= size
            self._disk_bytes = total

    def get_buffer(self, key: str) -> bytes | memoryview:
        return self.get(key)

    def read_into(self, key: str, start: int, out: memoryview) -> int:
        return Store.read_into(self, key, start, out)

    def get(self, key: str) -> bytes:
        if not self._ok(key):
            return self.inner.get(key)
        data = self._lookup(key)
        if data is not None:
            self.hits += 1
            return data
        self.misses += 1
        data = self.inner.get(key)
        self._remember(key, data)
        self._store_disk(key, data)
        return data

    def get_range(self, key: str, start: int, end: int) -> bytes:
        data = self._lookup(key) if self._ok(key) else None
        if data is None:
            return self.inner.get_range(key, start, end)
        s, e = clamp_range(len(data), start, end)
        return data[s:e]

    def _forget(self, key: str) -> None:
        with self._lock:
            old = self._mem.pop(key, None)
            if old is not None:
                self._mem_bytes -= len(old)
        if self.disk_dir is not None:
            self._disk_path(key).unlink(missing_ok=True)

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self._forget(key)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        return self.inner.put_if_absent(key, data)

    def delete(self, key: str) -> None:
        self.inner.delete(key)
        self._forget(key)
