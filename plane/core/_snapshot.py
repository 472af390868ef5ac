"""Snapshot: a frozen, picklable read handle on one version of a dataset.

Every layer above `core` (query, loader, diff, the Ray datasource, the actors) reads a
dataset through a Snapshot: the tensors' schemas and chunk indexes, the rows, their stable
ids, and `read`/`shapes` of any rows. A Snapshot never changes; a new version is a new one.
Pickled, it travels as (store, state key, commit id, options) and reloads on the other side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from plane._errors import PlaneError, TensorNotFoundError
from plane._runtime import io_pool
from plane.core._layout import read_dataset_info, sealed_format
from plane.core._links import LinkResolver, decode_linked
from plane.core._nulls import is_in
from plane.core._reader import (
    DEFAULT_CACHE_BYTES,
    ChunkReader,
    PatchMap,
    read_packed,
    read_samples,
    read_shapes,
)
from plane.core._state import State, TensorPart
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta
from plane.storage import Store

__all__ = ["Snapshot", "read_rows"]


class Snapshot:
    """One version of a dataset, read-only: `Snapshot.open(store, state_key)` or
    `ds.snapshot()`. `base_commit` is the commit this version was written on (`commit_id`
    when it is that commit; None before the first). `cache` holds values derived from this
    version (query row-id maps, index lookups); it is dropped when pickled."""

    def __init__(self, store: Store, state_key: str | None, state: State,
                 parts: Mapping[str, TensorPart], *, commit_id: str | None = None,
                 branch: str | None = None, base_commit: str | None = None,
                 info: Mapping[str, Any] | None = None, reader: ChunkReader | None = None,
                 links: LinkResolver | None = None,
                 link_storage_options: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.store = store
        self.state_key = state_key
        self.state = state
        self.parts = dict(parts)
        self.commit_id = commit_id
        self.branch = branch
        self.base_commit = base_commit if base_commit is not None else commit_id
        self.info = dict(info) if info is not None else read_dataset_info(store)
        self.reader = reader or ChunkReader(store, DEFAULT_CACHE_BYTES,
                                            sealed_format(self.info))
        for part in self.parts.values():
            self.reader.inline.update((p.key, p.data) for p in part.patches
                                      if p.data is not None)
        self._link_options = link_storage_options
        self.links = links or _link_resolver(store, link_storage_options)
        self.cache: dict[Any, Any] = {}
        self._pmaps: dict[str, PatchMap | None] = {}
        self._live: np.ndarray | None = None

    @classmethod
    def open(cls, store: Store, state_key: str, *, commit_id: str | None = None,
             branch: str | None = None, base_commit: str | None = None,
             cache_bytes: int = DEFAULT_CACHE_BYTES,
             link_storage_options: Mapping[str, Mapping[str, Any]] | None = None,
             reader: ChunkReader | None = None) -> Snapshot:
        """The version whose state object is `state_key` in `store`; `reader` shares a chunk
        reader (and its cache) between snapshots of one store."""
        info = read_dataset_info(store)
        state = State.load(store, state_key)
        parts = {n: TensorPart.load(store, k) for n, k in state.tensors.items()}
        return cls(store, state_key, state, parts, commit_id=commit_id, branch=branch,
                   base_commit=base_commit, info=info,
                   reader=reader or ChunkReader(store, cache_bytes, sealed_format(info)),
                   link_storage_options=link_storage_options)

    def __reduce__(self) -> tuple[Any, ...]:
        if self.state_key is None:
            raise PlaneError("this is a view of an unsaved working state and cannot be "
                             "pickled; take ds.snapshot() instead")
        return (_reopen, (self.store, self.state_key, self.commit_id, self.branch,
                          self.reader.cache.max_bytes, self._link_options,
                          self.base_commit))

    # ---- schema ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.store.url

    @property
    def format_version(self) -> int:
        return int(self.info.get("format_version", 1))

    @property
    def tensor_names(self) -> tuple[str, ...]:
        """The tensors, in creation order."""
        return tuple(self.parts)

    def __contains__(self, name: object) -> bool:
        return name in self.parts

    def part(self, name: str) -> TensorPart:
        try:
            return self.parts[name]
        except KeyError:
            raise TensorNotFoundError(no_tensor(self.url, name, self.parts)) from None

    def meta(self, name: str) -> TensorMeta:
        return self.part(name).meta

    def index(self, name: str) -> ChunkIndex:
        return self.part(name).index

    def patch_map(self, name: str) -> PatchMap | None:
        if name not in self._pmaps:
            patches = self.part(name).patches
            self._pmaps[name] = PatchMap.build(patches) if patches else None
        return self._pmaps[name]

    # ---- rows -----------------------------------------------------------------------------
    @property
    def physical(self) -> int:
        """Rows ever stored in this version's history (deleted ones included)."""
        return self.state.physical

    def __len__(self) -> int:
        return self.state.physical - int(self.state.deleted.shape[0])

    def to_physical(self, positions: np.ndarray) -> np.ndarray:
        """Physical row numbers of logical row `positions`."""
        if not self.state.deleted.shape[0]:
            return positions
        if self._live is None:
            self._live = self.state.live()
        out: np.ndarray = self._live[positions]
        return out

    @property
    def row_ids(self) -> np.ndarray:
        """The stable row id of every row, in row order."""
        return self.ids_at(np.arange(len(self), dtype=np.int64))

    def ids_at(self, positions: np.ndarray) -> np.ndarray:
        """Stable row ids of logical row `positions`."""
        return self.state.row_ids.take(self.to_physical(positions))

    def read(self, name: str, positions: np.ndarray, decode: bool = True,
             aslist: bool = False, links: bool = True) -> Any:
        """Values of tensor `name` at logical row `positions` (an array when they stack, else
        a list); `decode=False` keeps media bytes; `links=False` keeps link URIs."""
        part = self.part(name)
        return read_rows(self.reader, self.links if links else None, name, part.meta,
                         part.index, self.patch_map(name), self.to_physical(positions),
                         positions, decode, aslist)

    def read_packed(self, name: str, positions: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The stored bytes of tensor `name` (bytes, text, media) at logical row `positions`, end to
        end in one uint8 array with int64 offsets (n + 1), copied once from the chunks (the
        shard's media answers, the export's text columns); None when a row is edited, tiled or
        empty, or the tensor holds links (then read with `read(..., decode=False)`)."""
        part = self.part(name)
        meta = part.meta
        if meta.link is not None or not (meta.kind in ("bytes", "text")
                                         or meta.sample_compression):
            return None
        phys = self.to_physical(positions)
        pm = self.patch_map(name)
        if pm is not None and pm.hits(phys)[0].shape[0]:
            return None
        return read_packed(self.reader, meta, part.index, phys)

    def null_mask(self, name: str, positions: np.ndarray) -> np.ndarray | None:
        """True where tensor `name` has no value (null) at logical row `positions`; None when
        none of them is null (the common case: callers skip null handling)."""
        nulls = self.part(name).nulls
        if not nulls.shape[0]:
            return None
        mask = is_in(self.to_physical(positions), nulls)
        return mask if mask.any() else None

    def has_nulls(self, name: str) -> bool:
        """Whether tensor `name` has a null row (live or deleted): False skips every check."""
        return bool(self.part(name).nulls.shape[0])

    def shapes(self, name: str, positions: np.ndarray) -> np.ndarray:
        """Sample shapes of tensor `name` at logical row `positions`, one row each."""
        part = self.part(name)
        return read_shapes(self.reader, part.meta, part.index, self.to_physical(positions),
                           self.patch_map(name))

    def __repr__(self) -> str:
        at = self.commit_id or self.state_key or "working state"
        return f"Snapshot({self.url!r}, at={at!r}, rows={len(self)}, tensors={list(self.parts)})"


def _reopen(store: Store, state_key: str, commit_id: str | None, branch: str | None,
            cache_bytes: int, link_options: Mapping[str, Mapping[str, Any]] | None,
            base_commit: str | None = None) -> Snapshot:
    return Snapshot.open(store, state_key, commit_id=commit_id, branch=branch,
                         base_commit=base_commit, cache_bytes=cache_bytes,
                         link_storage_options=link_options)


def _link_resolver(store: Store, options: Mapping[str, Mapping[str, Any]] | None
                   ) -> LinkResolver:
    own = getattr(store, "storage_options", None)
    return LinkResolver(options, (store.url.split("://")[0], own) if own is not None else None)


def no_tensor(url: str, name: str, have: Mapping[str, Any]) -> str:
    """The message of a TensorNotFoundError: what is there and how to add it."""
    listed = ", ".join(have) or "(none)"
    return (f"no tensor {name!r} in {url}; tensors: {listed}; create it with "
            f"ds.create_tensor({name!r}, ...)")


def read_rows(reader: ChunkReader, links: LinkResolver | None, name: str, meta: TensorMeta,
              index: ChunkIndex, pmap: PatchMap | None, phys: np.ndarray,
              positions: np.ndarray, decode: bool, aslist: bool) -> Any:
    """Values at physical rows `phys` (logical `positions`, for messages), following links
    unless `links` is None."""
    out = read_samples(reader, meta, index, phys, decode, aslist, pmap)
    inner = meta.link
    if inner is None or links is None:
        return out
    where = [f"tensor {name!r}, row {int(p)}" for p in positions]
    out = list(out)
    datas = links.fetch_many(out, where)
    if not decode:
        return [d if d is not None else b"" for d in datas]
    vals = list(io_pool().map(decode_linked, [inner] * len(out), out, datas, where)) \
        if len(out) > 4 else [decode_linked(inner, u, d, x)
                              for u, d, x in zip(out, datas, where)]
    if not aslist and vals and all(isinstance(v, np.ndarray) for v in vals) and \
            len({v.shape for v in vals}) == 1:
        return np.stack(vals)
    return vals
