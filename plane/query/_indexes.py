"""Index artifacts in the dataset's store, bound to the commit they index.

    indexes/data/<xxh3>                          one partition (faiss or BM25), content-addressed
    indexes/<xxh3>.json                          manifest: tensor, kind, metric, params, commit,
                                                 state, partitions [{key, rows}]
    indexes/refs/<tensor>/<kind>/<commit id>     {"manifest": key}: the index of that commit
                                                 (sealed from format version 3 on)

Every artifact is verified before use (partitions and manifests against their key, refs
against their seal); a damaged one raises ChecksumError naming it.

A query on version V uses the newest indexed commit among V's ancestors; rows added or
changed since are searched exactly (see `_exec`), so an index is never stale.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import ChecksumError, QueryError
from plane._progress import progress_bar
from plane.core._layout import (
    get_artifact_json,
    get_cas_json,
    put_artifact_json,
    put_cas_json,
    sealed_format,
)
from plane.format._hash import digest_hex
from plane.query._cache import forget, state_cached

if TYPE_CHECKING:
    from plane.dataset._dataset import Dataset

__all__ = ["IndexInfo", "create_index", "find_index", "list_indexes", "load_partition",
           "optimize_indexes", "scalar_index", "TEXT_KINDS"]

TEXT_KINDS = ("bm25",)
SCALAR_KINDS = ("minmax", "btree")
DEFAULT_PARTITION_ROWS = 1_000_000


@dataclass
class IndexInfo:
    """A built index: what it covers and where its partitions are."""

    key: str
    tensor: str
    kind: str
    metric: str
    params: dict[str, Any]
    commit: str
    state: str
    rows: int
    partitions: list[dict[str, Any]]
    created: float
    partition_rows: int = DEFAULT_PARTITION_ROWS

    @classmethod
    def load(cls, ds: Dataset, key: str) -> IndexInfo:
        if not (key.startswith("indexes/") and key.endswith(".json")):
            raise ChecksumError(f"{ds.store.url}: {key!r} is not an index manifest key (a "
                                "damaged index ref?)")
        d = get_cas_json(ds.store, key)
        return cls(key, d["tensor"], d["kind"], d["metric"], d["params"], d["commit"],
                   d["state"], int(d["rows"]), d["partitions"], float(d["created"]),
                   int(d.get("partition_rows", DEFAULT_PARTITION_ROWS)))

    @property
    def built(self) -> str:
        """The index kind actually built: `kind`, or what it fell back to (ivf_pq on too few
        rows builds ivf_flat; `params["why"]` says why)."""
        return str(self.params.get("fallback", self.kind))

    def __str__(self) -> str:
        out = (f"{self.kind} index on {self.tensor!r} ({self.metric}) at commit "
               f"{self.commit[:12]}: {self.rows:,} rows in {len(self.partitions)} partition(s)")
        if self.built != self.kind:
            out += f"; built as {self.built}: {self.params.get('why', 'a fallback')}"
        return out


def create_index(ds: Dataset, tensor: str, kind: str = "hnsw", metric: str = "cosine",
                 params: dict[str, Any] | None = None,
                 partition_rows: int = DEFAULT_PARTITION_ROWS,
                 progress: bool | None = None) -> IndexInfo:
    """Build an index of `tensor` at the current commit and register it."""
    from plane.query._vector import KINDS, build_partition

    meta = ds._writer(tensor).meta
    if ds.has_changes or ds.commit_id is None:
        raise QueryError("indexes are bound to commits: commit first (ds.commit(...)), then "
                         "create the index")
    if kind in SCALAR_KINDS:
        from plane.query._btree import build_sorted
        from plane.query._stats import build_minmax

        blob = (build_minmax(ds, tensor) if kind == "minmax" else build_sorted(ds, tensor)
                ).to_bytes()
        key = f"indexes/data/{digest_hex(blob)}"
        ds.store.put(key, blob)
        return _register(ds, tensor, kind, kind, {}, len(ds),
                         [{"key": key, "rows": len(ds), "start": 0}])
    text = kind in TEXT_KINDS
    if text and meta.kind != "text":
        raise QueryError(f"a {kind} index needs a text tensor; {tensor!r} is {meta.htype}")
    if not text:
        if kind not in KINDS:
            raise QueryError(f"unknown index kind {kind!r}; choose one of "
                             f"{', '.join(KINDS + TEXT_KINDS + SCALAR_KINDS)}")
        if meta.kind != "array" or meta.ndim not in (None, 1):
            raise QueryError(f"a vector index needs a tensor of 1-d vectors; {tensor!r} is "
                             f"{meta.htype} with {meta.ndim} dimension(s)")
    if partition_rows < 1:
        raise QueryError(f"partition_rows must be >= 1, got {partition_rows}")
    n = len(ds)
    ids = ds.row_ids
    parts: list[dict[str, Any]] = []
    bar = progress_bar(n, f"index {tensor}", progress)
    used_params: dict[str, Any] = dict(params or {})
    try:
        for s in range(0, max(n, 1), partition_rows):
            pos = np.arange(s, min(n, s + partition_rows), dtype=np.int64)
            if text:
                from plane.query._text import TextIndex

                texts = ds._read(tensor, pos, True, True)
                blob = TextIndex.build(texts, ids[pos]).to_bytes()
            else:
                vecs = ds._read(tensor, pos, True, False)
                if isinstance(vecs, list):
                    if any(np.shape(v) != np.shape(vecs[0]) for v in vecs):
                        raise QueryError(f"tensor {tensor!r} has vectors of different lengths; "
                                         "a vector index needs one dimension")
                    vecs = np.stack(vecs) if vecs else np.zeros((0, 1), np.float32)
                part = build_partition(np.asarray(vecs, np.float32).reshape(pos.shape[0], -1),
                                       ids[pos], kind, metric, params)
                if not parts:  # the settings of the first (full-size) partition
                    used_params = part.params
                blob = part.to_bytes()
            key = f"indexes/data/{digest_hex(blob)}"
            ds.store.put(key, blob)
            parts.append({"key": key, "rows": int(pos.shape[0]), "start": s})
            if bar is not None:
                bar.update(pos.shape[0])
    finally:
        if bar is not None:
            bar.close()
    return _register(ds, tensor, kind, "bm25" if text else metric, used_params, n, parts,
                     partition_rows)


def _register(ds: Dataset, tensor: str, kind: str, metric: str, params: dict[str, Any],
              n: int, parts: list[dict[str, Any]],
              partition_rows: int = DEFAULT_PARTITION_ROWS) -> IndexInfo:
    manifest = {"v": 1, "tensor": tensor, "kind": kind, "metric": metric,
                "params": params, "commit": ds.commit_id, "state": ds._base_key,
                "rows": n, "partitions": parts, "created": time.time(),
                "partition_rows": partition_rows}
    key = put_cas_json(ds.store, "indexes", manifest)
    ds.store.sync()  # partitions and manifest are durable before a ref names them
    put_artifact_json(ds.store, f"indexes/refs/{tensor}/{kind}/{ds.commit_id}",
                      {"manifest": key}, sealed_format(ds._info))
    ds.store.sync()
    forget(ds)
    return IndexInfo.load(ds, key)


_LOADED: OrderedDict[str, Any] = OrderedDict()
_LOADED_MAX = 64
_LOCK = threading.Lock()


def load_partition(ds: Dataset, key: str, text: bool | str) -> Any:
    """A partition, deserialised once per process (keys are content addresses: immutable)."""
    ck = f"{ds.store.url}|{key}"
    with _LOCK:
        hit = _LOADED.get(ck)
        if hit is not None:
            _LOADED.move_to_end(ck)
            return hit
    raw = bytes(ds.store.get(key))
    if digest_hex(raw) != key.rsplit("/", 1)[-1]:
        raise ChecksumError(f"index partition {ds.store.url}/{key} is corrupt: its bytes do "
                            "not match the checksum in its name; rebuild the index "
                            "(ds.create_index)")
    if text == "minmax":
        from plane.query._stats import ChunkStats

        part: Any = ChunkStats.from_bytes(raw)
    elif text == "btree":
        from plane.query._btree import SortedIndex

        part = SortedIndex.from_bytes(raw)
    elif text:
        from plane.query._text import TextIndex

        part = TextIndex.from_bytes(raw)
    else:
        from plane.query._vector import VectorPartition

        part = VectorPartition.from_bytes(raw)
    with _LOCK:
        _LOADED[ck] = part
        while len(_LOADED) > _LOADED_MAX:
            _LOADED.popitem(last=False)
    return part


def _refs(ds: Dataset, tensor: str | None = None) -> Iterator[tuple[str, str, str]]:
    """(tensor, kind, commit) of every registered index (of `tensor`)."""
    prefix = f"indexes/refs/{tensor}/" if tensor else "indexes/refs/"
    for k in ds.store.list(prefix):
        parts = k.split("/")
        if len(parts) == 5:
            yield parts[2], parts[3], parts[4]


def find_index(ds: Dataset, tensor: str, kinds: tuple[str, ...] | None = None,
               metric: str | None = None) -> IndexInfo | None:
    """The index of `tensor` on the newest commit in the current version's history (of one
    of `kinds`, with `metric`), or None. Cached per dataset state (refs only get added: a
    new index is seen by the next query on a new state, or after `create_index`)."""
    out: IndexInfo | None = state_cached(ds, ("index", tensor, kinds, metric),
                                         lambda: _find_index(ds, tensor, kinds, metric))
    return out


def scalar_index(ds: Dataset, tensor: str, kind: str) -> tuple[IndexInfo, Any] | None:
    """(info, loaded index) of the `kind` scalar index ("minmax" or "btree": one partition
    each) the current version uses for `tensor`, or None."""
    info = find_index(ds, tensor, (kind,))
    if info is None:
        return None
    return info, load_partition(ds, info.partitions[0]["key"], kind)


def _find_index(ds: Dataset, tensor: str, kinds: tuple[str, ...] | None,
                metric: str | None) -> IndexInfo | None:
    found = [(kind, c) for _, kind, c in _refs(ds, tensor) if kinds is None or kind in kinds]
    if not found:
        return None
    history = [e["id"] for e in ds.log()] if ds.commit_id else []
    rank = {c: i for i, c in enumerate(history)}
    best: IndexInfo | None = None
    best_rank = len(history)
    for kind, c in found:
        r = rank.get(c)
        if r is None or r > best_rank:
            continue
        info = _load_ref(ds, tensor, kind, c)
        if metric is not None and info.metric != metric:
            continue
        if r < best_rank or (best is not None and info.created > best.created):
            best, best_rank = info, r
    return best


def _load_ref(ds: Dataset, tensor: str, kind: str, commit: str) -> IndexInfo:
    """The manifest an index ref names, checked to be the index the ref's key says."""
    key = f"indexes/refs/{tensor}/{kind}/{commit}"
    ref = get_artifact_json(ds.store, key, sealed_format(ds._info), "index ref")
    manifest = ref.get("manifest")
    info = IndexInfo.load(ds, manifest) if isinstance(manifest, str) else None
    if info is None or (info.tensor, info.kind, info.commit) != (tensor, kind, commit):
        raise ChecksumError(f"index ref {ds.store.url}/{key} is corrupt: it names "
                            f"{manifest!r}, not a {kind} index of {tensor!r} at {commit}; "
                            "delete it and re-create the index")
    return info


def optimize_indexes(ds: Dataset, tensor: str | None = None,
                     progress: bool | None = None) -> list[IndexInfo]:
    """Rebuild, at the current commit, every index the current version uses that was built on
    an older commit (same kind, metric and settings), so rows added or changed since are
    indexed instead of searched exactly. Returns the new indexes."""
    if ds.has_changes or ds.commit_id is None:
        raise QueryError("indexes are bound to commits: commit first, then optimize")
    out = []
    for info in list_indexes(ds):
        if (tensor is not None and info.tensor != tensor) or info.commit == ds.commit_id:
            continue
        params = {k: v for k, v in info.params.items() if k not in ("fallback", "why")}
        out.append(create_index(ds, info.tensor, info.kind, info.metric,
                                params if info.kind not in SCALAR_KINDS + TEXT_KINDS else None,
                                partition_rows=info.partition_rows, progress=progress))
    return out


def list_indexes(ds: Dataset) -> list[IndexInfo]:
    """Every index usable by the current version (one per tensor and kind)."""
    out = []
    for tensor, kind in sorted({(t, k) for t, k, _ in _refs(ds)}):
        if tensor in ds.tensors:
            info = find_index(ds, tensor, (kind,))
            if info is not None:
                out.append(info)
    return out
