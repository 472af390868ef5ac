"""A directory on local disk (``/path`` or ``file:///path``).

Durability: a put writes a temp file and renames it into place; the file and the directory
are fsynced (in one parallel batch, `PendingSyncs`) before the next `put_if_absent` links its
object (a ref record, tag or the dataset header), and at the end of `put_many` (a worker's
chunks are durable when it reports them). `put_if_absent` fsyncs its own object before the
link and the directory after it. So a ref record that survives a power loss reaches only
objects that survived it too.
"""

from __future__ import annotations

import builtins
import mmap
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

from plane._errors import ObjectNotFoundError
from plane.storage._base import DEFAULT_IO_THREADS, Store, clamp_range
from plane.storage._durable import PendingSyncs, fsync_dir, fsync_file

__all__ = ["LocalStore", "TMP_PREFIX"]

#: the name prefix of a write's temporary file (renamed or linked to the key when complete)
TMP_PREFIX = ".tmp-"
_TMP_NAME = re.compile(r"\.tmp-[0-9a-f]{32}\Z")  # exactly what `_tmp` makes: nothing else


class LocalStore(Store):
    """Objects are files under `root`; writes go to a temp file then `os.replace`/`os.link`.

    `durable=False` skips every fsync (scratch data; measuring what durability costs).
    """

    io_threads = 4  # reads are page-cache copies or local I/O: a few threads saturate them
    local_buffers = True  # get_buffer memory-maps

    def __init__(self, root: str | os.PathLike[str], durable: bool = True) -> None:
        self.root = Path(root).expanduser().absolute()
        self.url = self.root.as_uri()
        self._root = str(self.root)
        self._made: set[str] = set()
        self.durable = durable
        self._pending = PendingSyncs()  # renamed into place, not yet fsynced

    def __getstate__(self) -> dict[str, object]:
        return {"root": self._root, "durable": self.durable}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__init__(str(state["root"]), bool(state["durable"]))  # type: ignore[misc]

    def _path(self, key: str) -> str:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid store key {key!r}: keys are relative paths without '..'")
        return f"{self._root}/{key}"  # plain strings: a commit writes several small files

    def _mkdirs(self, path: str) -> str:
        parent = os.path.dirname(path)
        if parent not in self._made:
            new = []
            d = parent
            while not os.path.isdir(d):
                new.append(d)
                d = os.path.dirname(d)
            os.makedirs(parent, exist_ok=True)
            if self.durable:  # a new directory's own entry is in its parent
                self._pending.add(dirs=[os.path.dirname(n) for n in new])
            self._made.add(parent)
        return parent

    def _tmp(self, path: str, data: bytes) -> str:
        """Write `data` to a new temp file beside `path`; removed again if the write fails."""
        tmp = f"{self._mkdirs(path)}/{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        return tmp

    def sync(self) -> None:
        """Make every object this store wrote durable, with the directories renamed into."""
        if self.durable:
            self._pending.flush()

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
        try:
            if self.durable and os.path.lexists(path):
                # replacing an object a durable commit may name (a content address written
                # again): its new bytes are on disk before the rename, never an empty file
                fsync_file(tmp)
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        if self.durable:
            self._pending.add(path, [os.path.dirname(path)])

    def put_many(self, items: Mapping[str, bytes],
                 max_workers: int = DEFAULT_IO_THREADS) -> None:
        super().put_many(items, max_workers)
        if items:
            self.sync()  # a batch's objects are durable when it returns (e.g. to a worker)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        # Write the full bytes, make them and everything written before durable (the object
        # created here may point at it), then link: the name appears atomically and complete.
        path = self._path(key)
        tmp = self._tmp(path, data)
        try:
            if self.durable:
                self._pending.flush([tmp])
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            _unlink_quietly(tmp)
        if self.durable:
            fsync_dir(os.path.dirname(path))
        return True

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
                if name.startswith(TMP_PREFIX):
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

    def clean_temporary(self, older_than: float, dry_run: bool = True
                        ) -> builtins.list[str]:
        """Temp files of writes that never finished (a killed or failed writer), at least
        `older_than` seconds old: listed, and unless `dry_run` removed. Returns their paths
        relative to the root."""
        found = []
        now = time.time()
        for dirpath, _, filenames in os.walk(self._root):
            for name in filenames:
                if not _TMP_NAME.match(name):
                    continue
                p = os.path.join(dirpath, name)
                try:
                    if older_than > 0 and now - os.stat(p).st_mtime < older_than:
                        continue
                except FileNotFoundError:
                    continue
                found.append(os.path.relpath(p, self._root).replace(os.sep, "/"))
                if not dry_run:
                    _unlink_quietly(p)
        return sorted(found)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
