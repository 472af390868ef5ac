"""Open a Store from a URL or path."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from plane.storage._base import Store

__all__ = ["open_store"]


def open_store(
    url: str | os.PathLike[str] | Store, storage_options: Mapping[str, Any] | None = None
) -> Store:
    """``mem://name`` -> MemoryStore, a path or ``file://`` -> LocalStore, else FsspecStore."""
    from plane.storage._fsspec import FsspecStore
    from plane.storage._local import LocalStore
    from plane.storage._memory import MemoryStore

    if isinstance(url, Store):
        return url
    s = os.fspath(url)
    if s.startswith("mem://"):
        name = s[len("mem://"):].strip("/")
        return MemoryStore(name or None)  # bare mem:// is private to its opener
    if s.startswith("file://"):
        return LocalStore(s[len("file://"):])
    if "://" not in s:
        return LocalStore(s)
    return FsspecStore(s, storage_options)
