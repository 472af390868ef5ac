"""Open a Store from a URL or path."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from plane._errors import StoreError
from plane.storage._base import Store

__all__ = ["open_store"]

#: most file systems allow at most this many bytes in one path component
_MAX_COMPONENT_BYTES = 255


def open_store(
    url: str | os.PathLike[str] | Store, storage_options: Mapping[str, Any] | None = None
) -> Store:
    """``mem://name`` -> MemoryStore, a path or ``file://`` -> LocalStore, else FsspecStore."""
    from plane.storage._fsspec import FsspecStore
    from plane.storage._local import LocalStore
    from plane.storage._memory import MemoryStore

    if isinstance(url, Store):
        return url
    s = _url_str(url)
    if s.startswith("mem://"):
        name = s[len("mem://"):].strip("/")
        return MemoryStore(name or None)  # bare mem:// is private to its opener
    if s.startswith("file://"):
        return LocalStore(_local_path(s, s[len("file://"):]))
    if "://" not in s:
        return LocalStore(_local_path(s, s))
    return FsspecStore(s, storage_options)


def _shown(url: str) -> str:
    """`url` for a message: at most 120 characters, without a user:password@ part."""
    url = re.sub(r"://[^/@]*@", "://***@", url)
    return repr(url) if len(url) <= 120 else repr(url[:117]) + "..."


def _url_str(url: Any) -> str:
    """The URL as a str; StoreError (naming it and the fix) when it cannot be one."""
    try:
        s = os.fspath(url)
    except TypeError:
        s = None
    if not isinstance(s, str):
        raise StoreError(f"cannot open {url!r}: a dataset URL is a str path or URL (/data/ds, "
                         "s3://bucket/ds, mem://name), an os.PathLike or a Store; got "
                         f"{type(url).__name__}")
    if "\x00" in s:
        raise StoreError(f"cannot open {_shown(s)}: the URL contains a NUL byte; remove it")
    if not s:
        raise StoreError("cannot open '': the URL is empty; give a path or URL such as "
                         "/data/ds or s3://bucket/ds")
    return s


def _local_path(url: str, path: str) -> str:
    """`path` if the local file system can hold it, else StoreError saying what to change."""
    try:
        raw = os.fsencode(path)
    except UnicodeEncodeError:
        raise StoreError(f"cannot open {_shown(url)}: the path is not valid for this file "
                         "system's encoding; use a path of valid Unicode") from None
    for part in raw.split(b"/"):
        if len(part) > _MAX_COMPONENT_BYTES:
            raise StoreError(f"cannot open {_shown(url)}: one path component is {len(part)} "
                             f"bytes, file systems allow at most {_MAX_COMPONENT_BYTES}; use "
                             "a shorter name")
    return path
