"""Storage: one small `Store` protocol, several backends, and wrappers."""

from plane.storage._base import Store
from plane.storage._fsspec import FsspecStore
from plane.storage._local import LocalStore
from plane.storage._memory import MemoryStore
from plane.storage._url import open_store
from plane.storage._wrappers import (
    CachingStore,
    ReadOnlyStore,
    RecordingStore,
    WrapperStore,
)

__all__ = [
    "Store",
    "MemoryStore",
    "LocalStore",
    "FsspecStore",
    "WrapperStore",
    "CachingStore",
    "ReadOnlyStore",
    "RecordingStore",
    "open_store",
]
