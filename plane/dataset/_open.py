"""Creating and opening datasets: `plane.create` and `plane.open`."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from typing import Any

from plane._errors import DatasetExistsError, PlaneError, StoreError
from plane.core._layout import (
    DATASET_KEY,
    DATASET_PREFIXES,
    FORMAT_VERSION,
    RefStore,
    read_dataset_info,
    write_dataset_info,
)
from plane.core._reader import DEFAULT_CACHE_BYTES
from plane.core._state import State
from plane.dataset._dataset import Dataset
from plane.storage import Store, open_store

__all__ = ["create", "open_dataset"]


def create(url: str | os.PathLike[str] | Store, overwrite: bool = False,
           storage_options: Mapping[str, Any] | None = None,
           cache_bytes: int = DEFAULT_CACHE_BYTES,
           link_storage_options: Mapping[str, Mapping[str, Any]] | None = None) -> Dataset:
    """Create an empty dataset at `url` (a path, ``mem://name``, ``s3://bucket/prefix`` ...)."""
    with _storage_errors("create a dataset", url):
        return _create(url, overwrite, storage_options, cache_bytes, link_storage_options)


def _create(url: str | os.PathLike[str] | Store, overwrite: bool,
            storage_options: Mapping[str, Any] | None, cache_bytes: int,
            link_storage_options: Mapping[str, Mapping[str, Any]] | None) -> Dataset:
    store = open_store(url, storage_options)
    if store.exists(DATASET_KEY):
        if not overwrite:
            raise DatasetExistsError(f"a dataset already exists at {store.url}; open it with "
                                     "plane.open(url) or pass overwrite=True to replace it")
        read_dataset_info(store)  # only ever wipe something that is a dataset
        store.delete(DATASET_KEY)  # from here on it is no dataset
        for prefix in DATASET_PREFIXES:  # what the dataset wrote; other files stay
            store.delete_prefix(prefix)
    elif next(iter(store.list("")), None) is not None:
        raise DatasetExistsError(f"{store.url} is not empty and holds no tensorplane dataset; "
                                 "choose an empty location")
    refs = RefStore(store, FORMAT_VERSION)
    key = State().save(store)
    if not refs.advance("main", 0, {"commit": None, "state": key}):
        raise DatasetExistsError(f"another process is creating a dataset at {store.url}")
    write_dataset_info(store, {"format": "tensorplane", "format_version": FORMAT_VERSION,
                               "created": time.time(), "default_branch": "main"})
    return Dataset(store, "main", read_only=False, cache_bytes=cache_bytes,
                   link_storage_options=link_storage_options)


def open_dataset(url: str | os.PathLike[str] | Store, read_only: bool = False,
                 version: str | None = None, storage_options: Mapping[str, Any] | None = None,
                 cache_bytes: int = DEFAULT_CACHE_BYTES,
                 link_storage_options: Mapping[str, Mapping[str, Any]] | None = None
                 ) -> Dataset:
    """Open the dataset at `url` at `version`: a branch (default main, writable), a tag or a
    commit id (read-only). `link_storage_options` maps URL prefixes of linked objects
    (``{"s3://lake": {...}}``) to their store options (default: the dataset's own options
    for links of the same protocol)."""
    with _storage_errors("open the dataset", url):
        store = open_store(url, storage_options)
        return Dataset(store, version, read_only, cache_bytes, link_storage_options)


@contextlib.contextmanager
def _storage_errors(what: str, url: Any) -> Iterator[None]:
    """Turn an OSError that is not a PlaneError (a local path the OS refuses: too long, no
    permission, ...) into a StoreError naming the URL and the fix."""
    try:
        yield
    except PlaneError:
        raise
    except OSError as e:
        where = url.url if isinstance(url, Store) else os.fspath(url)
        raise StoreError(f"cannot {what} at {where}: {e.strerror or e}; check the path (it "
                         "must be writable to create or write) or choose another") from e
