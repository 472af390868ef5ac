"""In-process store: ``mem://name`` (shared by name within one process)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from plane._errors import ObjectNotFoundError
from plane.storage._base import Store, clamp_range

__all__ = ["MemoryStore"]

_REGISTRY: dict[str, tuple[dict[str, bytes], threading.Lock]] = {}
_REGISTRY_LOCK = threading.Lock()


def _restore_anonymous(data: dict[str, bytes]) -> MemoryStore:
    store = MemoryStore()
    store._data.update(data)
    return store


class MemoryStore(Store):
    """A dict of bytes. Stores opened with the same name in one process share their data."""

    local_buffers = True

    def __init__(self, name: str | None = None) -> None:
        self.name = name
        if name is None:
            self._data: dict[str, bytes] = {}
            self._lock = threading.Lock()
            self.url = f"mem://_anon_{id(self):x}"
        else:
            # Instances of one name share the data *and* the lock, so put_if_absent stays
            # atomic across them.
            with _REGISTRY_LOCK:
                self._data, self._lock = _REGISTRY.setdefault(name, ({}, threading.Lock()))
            self.url = f"mem://{name}"

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # A named store pickles as its name (it reattaches to the process's data when loaded);
        # an anonymous one has no name to share, so it pickles a copy of its objects.
        if self.name is not None:
            return (MemoryStore, (self.name,))
        return (_restore_anonymous, (dict(self._data),))

    def get(self, key: str) -> bytes:
        try:
            return self._data[key]
        except KeyError:
            raise ObjectNotFoundError(f"{self.url}/{key} does not exist") from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        data = self.get(key)
        s, e = clamp_range(len(data), start, end)
        return data[s:e]

    def put(self, key: str, data: bytes) -> None:
        self._data[key] = bytes(data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = bytes(data)
            return True

    def delete(self, key: str) -> None:
        self._data.pop(key, None)

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(sorted(k for k in list(self._data) if k.startswith(prefix)))

    @staticmethod
    def drop(name: str) -> None:
        """Forget a named in-memory store (tests and demos)."""
        with _REGISTRY_LOCK:
            _REGISTRY.pop(name, None)

    def list_info(self, prefix: str = "") -> Iterator[tuple[str, int | None, float | None]]:
        return ((k, len(self._data[k]), None) for k in self.list(prefix) if k in self._data)
