"""Link tensors: samples are URIs (s3://..., local paths, http(s)://...) of objects that stay
in the lake; reading fetches them through the same Store machinery, cached, and decodes them
as the linked htype (``link[image]``, ``link[video]``, ``link[audio]``, ``link[binary]``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from plane._errors import InvalidArgumentError, ObjectNotFoundError, PlaneError, SampleError
from plane._runtime import LRU, io_pool
from plane.storage import Store, open_store

__all__ = ["LinkResolver", "split_uri", "compression_of", "decode_linked"]

_EXT = {".jpg": "jpeg", ".jpeg": "jpeg", ".png": "png", ".mp4": "mp4", ".mkv": "mkv",
        ".avi": "avi", ".webm": "webm", ".wav": "wav", ".mp3": "mp3", ".flac": "flac",
        ".ogg": "ogg"}


def split_uri(uri: str) -> tuple[str, str]:
    """(store root URL, key) of a link: the bucket/host, or / for local paths."""
    if "://" in uri:
        protocol, rest = uri.split("://", 1)
        if protocol == "file":
            return "/", rest.lstrip("/")
        head, _, key = rest.partition("/")
        if not key:
            raise InvalidArgumentError(f"link {uri!r} names no object; give a full URI like "
                                       f"{protocol}://bucket/path/file")
        return f"{protocol}://{head}", key
    path = os.path.abspath(os.path.expanduser(uri))
    return "/", path.lstrip("/")


def compression_of(uri: str, data: bytes) -> str | None:
    """jpeg/png from the bytes, else the media type from the file extension."""
    from plane.format._media import sniff

    kind = sniff(data)
    if kind:
        return kind
    return _EXT.get(os.path.splitext(uri.split("?", 1)[0])[1].lower())


class LinkResolver:
    """Fetches linked objects with one Store per bucket/host and an LRU of their bytes.

    `storage_options` maps a URL prefix (``"s3://lake"``) to the options of its store; a link
    under no prefix uses `default` when the protocol matches the dataset's own store."""

    def __init__(self, storage_options: Mapping[str, Mapping[str, Any]] | None = None,
                 default: tuple[str, Mapping[str, Any]] | None = None,
                 cache_bytes: int = 256 << 20) -> None:
        self.options = {k.rstrip("/"): dict(v) for k, v in (storage_options or {}).items()}
        self.default = default
        self.cache_bytes = cache_bytes
        self._stores: dict[str, Store] = {}
        self._cache = LRU(cache_bytes, len)
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {"options": self.options, "default": self.default,
                "cache_bytes": self.cache_bytes}

    def __setstate__(self, s: dict[str, Any]) -> None:
        self.__init__(s["options"], s["default"], s["cache_bytes"])  # type: ignore[misc]

    def _options_for(self, uri: str) -> Mapping[str, Any] | None:
        best = max((p for p in self.options if uri.startswith(p)), key=len, default=None)
        if best is not None:
            return self.options[best]
        if self.default is not None and uri.startswith(self.default[0] + "://"):
            return self.default[1]
        return None

    def store_for(self, uri: str) -> tuple[Store, str]:
        root, key = split_uri(uri)
        with self._lock:
            st = self._stores.get(root)
        if st is None:
            st = open_store(root, self._options_for(uri))
            with self._lock:
                self._stores[root] = st
        return st, key

    def fetch(self, uri: str) -> bytes:
        hit: bytes | None = self._cache.get(uri)
        if hit is not None:
            return hit
        store, key = self.store_for(uri)
        data = bytes(store.get(key))
        if len(data) <= self.cache_bytes // 8:  # one big object must not flush the rest
            self._cache.put(uri, data)
        return data

    def fetch_many(self, uris: Sequence[str | None], where: Sequence[str]) -> list[bytes | None]:
        """Bytes of every link (None for empty samples), fetched by I/O threads; a missing
        object raises ObjectNotFoundError naming `where[i]` and the URI."""
        def one(i: int) -> bytes | None:
            u = uris[i]
            if not u:
                return None
            try:
                return self.fetch(u)
            except ObjectNotFoundError:
                raise ObjectNotFoundError(f"{where[i]}: linked object {u} does not exist; fix "
                                          "the link (update the row) or restore the object"
                                          ) from None
            except PlaneError:
                raise
            except OSError as e:
                raise ObjectNotFoundError(f"{where[i]}: cannot fetch linked object {u} ({e})"
                                          ) from None

        idx = range(len(uris))
        if len(uris) < 4:
            return [one(i) for i in idx]
        return list(io_pool().map(one, idx))


def decode_linked(inner: str, uri: str, data: bytes | None, where: str) -> Any:
    """The value of one linked sample as the `inner` htype (None -> an empty sample)."""
    if data is None:
        return b"" if inner == "binary" else np.zeros((0,) * (4 if inner == "video" else
                                                          2 if inner == "audio" else 3),
                                                      np.uint8 if inner != "audio" else
                                                      np.float32)
    if inner == "binary":
        return data
    comp = compression_of(uri, data)
    try:
        if inner == "image" and comp in ("jpeg", "png"):
            from plane.format._media import decode

            return decode(data, comp)
        from plane.format import _av

        if inner == "video" and comp in _av.VIDEO:
            return _av.decode_video(data)
        if inner == "audio" and comp in _av.AUDIO:
            return _av.decode_audio(data)
    except SampleError as e:
        raise SampleError(f"{where}: linked object {uri} does not decode ({e})") from None
    raise SampleError(f"{where}: linked object {uri} is not a known {inner} format "
                      f"({comp or 'unrecognised bytes'}); link jpeg/png images, "
                      "mp4/mkv/avi/webm video or wav/mp3/flac/ogg audio")
