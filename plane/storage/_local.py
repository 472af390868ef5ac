"""A directory on local disk (``/path`` or ``file:///path``)."""

from __future__ import annotations

import mmap
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

from plane._errors import ObjectNotFoundError
from plane.storage._base import Store, clamp_range

__all__ = ["LocalStore"]


class LocalStore(Store):
    """Objects are files under `root`; writes go to a temp file then `os.replace`/`os.link`."""

    io_threads = 4  # reads are page-cache copies or local I/O: a few threads saturate them
    local_buffers = True  # get_buffer memory-maps

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()
        self._root = str(self.root)
        self._made: set[str] = set()

    def _path(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid store key {key!r}: keys are relative paths without '..'")
        return f"{self._root}/{key}"  # plain strings: a commit writes several small files

    def _mkdirs(self, path: str) -> str:
        parent = os.path.dirname(path)
        if parent not in self._made:
            os.makedirs(parent, exist_ok=True)
            self._made.add(parent)
        return parent

    def _tmp(self, path: str, data: bytes) -> str:
        tmp = f"{self._mkdirs(path)}/.tmp-{uuid.uuid4().hex}"
        with open(tmp, "wb") as f:
            f.write(data)
        return tmp

    def get(self, key: str) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                return f.read()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"{self.url}/{key} does not exist") from None

    #: objects at least this large are memory-mapped by get_buffer (no copy into the heap)
    MMAP_MIN_BYTES = 1 << 20

    def get_buffer(self, key: str) -> bytes | memoryview:
        try:
            with open(self._path(key), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < self.MMAP_MIN_BYTES:
                    return f.read()
                return memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"{self.url}/{key} does not exist") from None

    def read_into(self, key: str, start: int, out: memoryview) -> int:
        try:
            with open(self._path(key), "rb", buffering=0) as f:
                f.seek(start)
                got, view = 0, out.cast("B")
                while got < view.nbytes:
                    n = f.readinto(view[got:])
                    if not n:
                        break
                    got += n
                return got
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"{self.url}/{key} does not exist") from None

    def get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            with open(self._path(key), "rb") as f:
                size = os.fstat(f.fileno()).st_size
                s, e = clamp_range(size, start, end)
                f.seek(s)
                return f.read(e - s)
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(f"{self.url}/{key} does not exist") from None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._tmp(path, data)
        os.replace(tmp, path)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # Write the full bytes first, then link: the name appears atomically and complete.
        path = self._path(key)
        tmp = self._tmp(path, data)
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)

    def delete(self, key: str) -> None:
        try:
            os.unlink(self._path(key))
        except FileNotFoundError:
            pass

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the directory that can contain the prefix.
        head, _, _ = prefix.rpartition("/")
        base = self.root / head if head else self.root
        if not base.is_dir():
            return iter(())
        out = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel = os.path.relpath(dirpath, self.root)
            rel = "" if rel == "." else rel.replace(os.sep, "/") + "/"
            dirnames[:] = [d for d in dirnames if (rel + d + "/").startswith(prefix)
                           or prefix.startswith(rel + d + "/")]
            for name in filenames:
                if name.startswith(".tmp-"):
                    continue
                key = rel + name
                if key.startswith(prefix):
                    out.append(key)
        return iter(sorted(out))

    def list_info(self, prefix: str = "") -> Iterator[tuple[str, int | None, float | None]]:
        for key in self.list(prefix):
            try:
                st = os.stat(self.root / key)
                yield key, st.st_size, st.st_mtime
            except FileNotFoundError:
                continue
