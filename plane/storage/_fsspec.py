"""Any fsspec filesystem: ``s3://`` (s3fs), ``gs://`` (gcsfs), ``az://`` (adlfs), ..."""

from __future__ import annotations

import errno
import functools
import importlib
import logging
import os
import random
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from plane._errors import MissingDependencyError, ObjectNotFoundError, StoreError
from plane.storage._base import Store, clamp_range

__all__ = ["FsspecStore"]

log = logging.getLogger(__name__)

_INSTALL_HINT = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
                 "abfs": "adlfs", "abfss": "adlfs"}


def _http_error(exc: BaseException) -> tuple[str | None, int | None]:
    """The (S3-style error code, HTTP status) behind `exc` or its causes, if any."""
    seen: BaseException | None = exc
    while seen is not None:
        resp = getattr(seen, "response", None)
        if isinstance(resp, dict):
            code = resp.get("Error", {}).get("Code")
            status = resp.get("ResponseMetadata", {}).get("HTTPStatusCode")
            return code, status
        seen = seen.__cause__ or seen.__context__
    return None, None


def _is_precondition_failed(exc: BaseException) -> bool:
    """True if `exc` (or its cause) is an HTTP 412 from a conditional write.

    s3fs turns ``412 PreconditionFailed`` (Condition: If-None-Match) into FileExistsError with
    the botocore ClientError as its cause.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, FileExistsError):
            return True
        seen = seen.__cause__ or seen.__context__
    code, status = _http_error(exc)
    return code == "PreconditionFailed" or status == 412


def _is_conditional_conflict(exc: BaseException) -> bool:
    """True for S3's ``409 ConditionalRequestConflict``: a concurrent conditional write was in
    flight; S3 asks the caller to retry (the retry then succeeds or gets a 412)."""
    code, status = _http_error(exc)
    return code == "ConditionalRequestConflict" or (code is None and status == 409)


def _is_invalid_range(exc: BaseException) -> bool:
    """True for ``416 InvalidRange``: the range starts at or past the end of the object."""
    code, status = _http_error(exc)
    return code == "InvalidRange" or status == 416


_CONFLICT_RETRIES = 8


@functools.cache
def _backend_errors() -> tuple[type[BaseException], ...]:
    """OSError and the installed client libraries' own errors (no endpoint, no credentials,
    ...), which are not OSErrors; looked up when a call fails, so nothing is imported early."""
    found: list[type[BaseException]] = [OSError]
    for mod, name in (("botocore.exceptions", "BotoCoreError"),
                      ("botocore.exceptions", "ClientError"), ("aiohttp", "ClientError"),
                      ("google.auth.exceptions", "GoogleAuthError"),
                      ("azure.core.exceptions", "AzureError")):
        try:
            found.append(getattr(importlib.import_module(mod), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _fix_for(exc: BaseException) -> str:
    """What to do about a failed backend call, from the kind of error."""
    name = type(exc).__name__
    code, status = _http_error(exc)
    if "Credential" in name or "Auth" in name or isinstance(exc, PermissionError) or \
            status in (401, 403) or code in ("InvalidAccessKeyId", "SignatureDoesNotMatch",
                                             "AccessDenied", "ExpiredToken"):
        return ("give credentials allowed to use it: storage_options={'key': ..., 'secret': "
                "...} or the provider's environment variables or profile")
    if "Connect" in name or "Timeout" in name or "Endpoint" in name or \
            isinstance(exc, (ConnectionError, TimeoutError)):
        return ("check that the endpoint is reachable (storage_options['endpoint_url'] for "
                "S3-compatible services) and the network is up, then retry")
    return "check the URL, the storage_options and the service's status, then retry"


class FsspecStore(Store):
    """A Store over an fsspec filesystem rooted at `url`.

    `storage_options` go to the filesystem constructor unchanged (credentials, endpoint_url,
    ...); they are never logged or shown in repr. `put_if_absent` uses the backend's exclusive
    create (`pipe_file(mode="create")`: ``If-None-Match: *`` on S3). Backends without it fall back
    to check-then-write, which is not atomic; a warning says so once.
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        import fsspec

        protocol, sep, rest = url.partition("://")
        if not sep:
            raise StoreError(f"{url!r} is not a URL; expected e.g. s3://bucket/path")
        self.protocol = protocol
        self.root = rest.rstrip("/")
        self.url = f"{protocol}://{self.root}"
        self.storage_options = dict(storage_options or {})
        try:
            fsspec.get_filesystem_class(protocol)
        except ImportError as e:
            pkg = _INSTALL_HINT.get(protocol, f"the fsspec backend for {protocol}://")
            raise MissingDependencyError(f"cannot open {self.url}: install {pkg} (pip install "
                                         f"{pkg})") from e
        except ValueError as e:
            raise StoreError(f"cannot open {self.url}: unknown protocol {protocol!r}; use s3://, "
                             "gs://, az://, a local path or mem://") from e
        self._fs: Any = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._exclusive_ok = True

    # Pickle only what rebuilds the filesystem (Ray workers reopen their own client).
    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "storage_options": self.storage_options}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], state["storage_options"])  # type: ignore[misc]

    @property
    def fs(self) -> Any:
        """The filesystem client, made anew in a forked child (async clients such as s3fs'
        are bound to their parent's event loop and refuse to run after a fork)."""
        if self._pid != os.getpid():
            self._fs, self._pid, self._lock = None, os.getpid(), threading.Lock()
        if self._fs is None:
            import fsspec

            with self._lock:
                if self._fs is None:
                    try:
                        self._fs = fsspec.filesystem(self.protocol, **self.storage_options)
                    except Exception as e:  # bad options: say which, never their values
                        keys = ", ".join(map(repr, self.storage_options)) or "none"
                        raise self._fail(f"making the {self.protocol}:// client for {self.url} "
                                         f"(storage_options keys: {keys})", e) from e
        return self._fs

    def _p(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _fail(self, what: str, exc: BaseException) -> StoreError:
        """StoreError for a failed call: what, why (the backend's words, with every storage
        option value, credentials included, blanked out) and the fix."""
        msg = str(exc) or type(exc).__name__
        for v in _option_values(self.storage_options):
            msg = msg.replace(v, "***")
        return StoreError(f"{what} failed: {type(exc).__name__}: {msg}; {_fix_for(exc)}")

    def _missing(self, key: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(f"{self.url}/{key} does not exist")

    def _size(self, path: str) -> int:
        info = self.fs.info(path)
        if info.get("type", "file") != "file":  # a "directory" (a common prefix) is no object
            raise FileNotFoundError(path)
        return int(info["size"])

    def get(self, key: str) -> bytes:
        try:
            return bytes(self.fs.cat_file(self._p(key)))
        except FileNotFoundError:
            raise self._missing(key) from None
        except _backend_errors() as e:
            raise self._fail(f"reading {self.url}/{key}", e) from e

    def get_range(self, key: str, start: int, end: int) -> bytes:
        path = self._p(key)
        try:
            if start < 0 or end <= start:
                # Negative offsets need the size; so does an empty range (an HTTP Range with
                # last < first is ignored by servers, which then send the whole object).
                start, end = clamp_range(self._size(path), start, end)
                if start == end:
                    return b""
            try:
                return bytes(self.fs.cat_file(path, start=start, end=end))
            except OSError as e:
                if isinstance(e, FileNotFoundError) or not _is_invalid_range(e):
                    raise
                return b""  # 416: start is at or past the end (e.g. any range of b"")
        except FileNotFoundError:
            raise self._missing(key) from None
        except _backend_errors() as e:
            raise self._fail(f"reading {self.url}/{key}[{start}:{end}]", e) from e

    def put(self, key: str, data: bytes) -> None:
        try:
            self.fs.pipe_file(self._p(key), bytes(data))
        except _backend_errors() as e:
            raise self._fail(f"writing {self.url}/{key}", e) from e

    def put_if_absent(self, key: str, data: bytes) -> bool:
        path = self._p(key)
        attempt = 0
        while self._exclusive_ok:
            try:
                self.fs.pipe_file(path, bytes(data), mode="create")
                return True
            except (TypeError, NotImplementedError):
                self._exclusive_ok = False
                log.warning("%s:// has no exclusive create; put_if_absent falls back to "
                            "check-then-write, which is not atomic across writers", self.protocol)
            except OSError as e:
                if _is_precondition_failed(e) or e.errno == errno.EEXIST:
                    return False
                if _is_conditional_conflict(e) and attempt < _CONFLICT_RETRIES:
                    attempt += 1
                    time.sleep(0.01 * 2**attempt * random.random())  # backoff, then retry
                    continue
                raise self._fail(f"conditional write of {self.url}/{key}", e) from e
            except _backend_errors() as e:
                raise self._fail(f"conditional write of {self.url}/{key}", e) from e
        if self.fs.exists(path):
            return False
        self.put(key, data)
        return True

    def delete(self, key: str) -> None:
        try:
            self.fs.rm_file(self._p(key))
        except FileNotFoundError:
            pass
        except _backend_errors() as e:
            raise self._fail(f"deleting {self.url}/{key}", e) from e

    def list(self, prefix: str = "") -> Iterator[str]:
        head, _, _ = prefix.rpartition("/")
        base = f"{self.root}/{head}" if head else self.root
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base)
        except FileNotFoundError:
            return iter(())
        except _backend_errors() as e:
            raise self._fail(f"listing {self.url}/{prefix}", e) from e
        n = len(self.root) + 1
        keys = (p[n:] for p in found if p.startswith(self.root + "/"))
        return iter(sorted(k for k in keys if k.startswith(prefix)))

    def list_info(self, prefix: str = "") -> Iterator[tuple[str, int | None, float | None]]:
        head, _, _ = prefix.rpartition("/")
        base = f"{self.root}/{head}" if head else self.root
        self.fs.invalidate_cache(base)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        except _backend_errors() as e:
            raise self._fail(f"listing {self.url}/{prefix}", e) from e
        n = len(self.root) + 1
        for path, info in sorted(found.items()):
            key = path[n:]
            if not path.startswith(self.root + "/") or not key.startswith(prefix):
                continue
            size = info.get("size", info.get("Size"))
            yield key, (int(size) if size is not None else None), _mtime_of(info)


#: storage options that are no secret: shown in messages (the endpoint helps find a fault)
_PLAIN_OPTIONS = {"endpoint_url", "region_name", "region", "profile", "signature_version"}


def _option_values(options: Any) -> list[str]:
    """Every str value (>= 4 chars) in nested storage options but the plain ones, longest
    first: what a message must not show."""
    out: list[str] = []
    stack: list[Any] = [options]
    while stack:
        x = stack.pop()
        if isinstance(x, Mapping):
            stack.extend(v for k, v in x.items() if k not in _PLAIN_OPTIONS)
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
        elif isinstance(x, str) and len(x) >= 4:
            out.append(x)
    return sorted(set(out), key=len, reverse=True)


def _mtime_of(info: dict[str, Any]) -> float | None:
    for field in ("LastModified", "mtime", "last_modified", "updated", "created"):
        v = info.get(field)
        if v is None:
            continue
        if hasattr(v, "timestamp"):
            return float(v.timestamp())
        try:
            return float(v)
        except (TypeError, ValueError):
            continue
    return None
