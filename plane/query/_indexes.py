"""Index artifacts in the dataset's store, bound to the commit they index.

    indexes/data/<xxh3>                          one partition (faiss or BM25), content-addressed
    indexes/<xxh3>.json                          manifest: tensor, kind, metric, params, commit,
                                                 state, partitions [{key, rows}]
    indexes/refs/<tensor>/<kind>/<commit id>     {"manifest": key}: the index of that commit
                                                 (sealed from format version 3 on)

Every artifact is verified before use (partitions and manifests against their key, refs
against their seal); a damaged one raises ChecksumError naming it.

A query on version V uses the newest indexed commit among V's ancestors, under the tensor's
name or a former one (V's state `renames`), skipping the refs V hides (`hidden_indexes`,
ds.indexes.drop); rows added or changed since are searched exactly (see `_exec`), so an
index is never stale.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import ChecksumError, QueryError
from plane._progress import progress_bar
from plane.core._layout import (
    INDEXES,
    get_artifact_json,
    get_cas_json,
    index_data_key,
    index_ref_key,
    index_ref_prefix,
    is_index_manifest_key,
    put_artifact_json,
    put_cas_json,
    sealed_format,
)
from plane.core._snapshot import Snapshot
from plane.core._state import Commit
from plane.format._hash import digest_hex
from plane.query._cache import forget, state_cached

if TYPE_CHECKING:
    from plane.storage import Store

__all__ = ["IndexInfo", "create_index", "find_index", "list_indexes", "load_partition",
           "optimize_indexes", "scalar_index", "TEXT_KINDS", "index_refs"]

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
    #: the tensor's name in the indexed version when it was renamed since (else "")
    source: str = ""

    @classmethod
    def load(cls, store: Store, key: str) -> IndexInfo:
        if not is_index_manifest_key(key):
            raise ChecksumError(f"{store.url}: {key!r} is not an index manifest key (a "
                                "damaged index ref?)")
        d = get_cas_json(store, key)
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


def create_index(snap: Snapshot, tensor: str, kind: str = "hnsw", metric: str = "cosine",
                 params: dict[str, Any] | None = None,
                 partition_rows: int = DEFAULT_PARTITION_ROWS,
                 progress: bool | None = None) -> IndexInfo:
    """Build an index of `tensor` at the commit `snap` is and register it."""
    from plane.query._vector import KINDS, build_partition

    meta = snap.meta(tensor)
    if snap.commit_id is None or snap.state_key is None:
        raise QueryError("indexes are bound to commits: commit first (ds.commit(...)), then "
                         "create the index")
    if kind in SCALAR_KINDS:
        from plane.query._btree import build_sorted
        from plane.query._stats import build_minmax

        blob = (build_minmax(snap, tensor) if kind == "minmax" else build_sorted(snap, tensor)
                ).to_bytes()
        key = index_data_key(digest_hex(blob))
        snap.store.put(key, blob)
        return _register(snap, tensor, kind, kind, {}, len(snap),
                         [{"key": key, "rows": len(snap), "start": 0}])
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
    n = len(snap)
    ids = snap.row_ids
    parts: list[dict[str, Any]] = []
    bar = progress_bar(n, f"index {tensor}", progress)
    used_params: dict[str, Any] = dict(params or {})
    try:
        for s in range(0, max(n, 1), partition_rows):
            pos = np.arange(s, min(n, s + partition_rows), dtype=np.int64)
            if text:
                from plane.query._text import TextIndex

                texts = snap.read(tensor, pos, True, True)
                blob = TextIndex.build(texts, ids[pos]).to_bytes()
            else:
                vecs = snap.read(tensor, pos, True, False)
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
            key = index_data_key(digest_hex(blob))
            snap.store.put(key, blob)
            parts.append({"key": key, "rows": int(pos.shape[0]), "start": s})
            if bar is not None:
                bar.update(pos.shape[0])
    finally:
        if bar is not None:
            bar.close()
    return _register(snap, tensor, kind, "bm25" if text else metric, used_params, n, parts,
                     partition_rows)


def _register(snap: Snapshot, tensor: str, kind: str, metric: str, params: dict[str, Any],
              n: int, parts: list[dict[str, Any]],
              partition_rows: int = DEFAULT_PARTITION_ROWS) -> IndexInfo:
    manifest = {"v": 1, "tensor": tensor, "kind": kind, "metric": metric,
                "params": params, "commit": snap.commit_id, "state": snap.state_key,
                "rows": n, "partitions": parts, "created": time.time(),
                "partition_rows": partition_rows}
    key = put_cas_json(snap.store, INDEXES, manifest)
    snap.store.sync()  # partitions and manifest are durable before a ref names them
    put_artifact_json(snap.store, index_ref_key(tensor, kind, str(snap.commit_id)),
                      {"manifest": key}, sealed_format(snap.info))
    snap.store.sync()
    forget(snap)
    return IndexInfo.load(snap.store, key)


_LOADED: OrderedDict[str, Any] = OrderedDict()
_LOADED_MAX = 64
_LOCK = threading.Lock()


def load_partition(store: Store, key: str, text: bool | str) -> Any:
    """A partition, deserialised once per process (keys are content addresses: immutable)."""
    ck = f"{store.url}|{key}"
    with _LOCK:
        hit = _LOADED.get(ck)
        if hit is not None:
            _LOADED.move_to_end(ck)
            return hit
    raw = bytes(store.get(key))
    if digest_hex(raw) != key.rsplit("/", 1)[-1]:
        raise ChecksumError(f"index partition {store.url}/{key} is corrupt: its bytes do "
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


def _refs(store: Store, tensor: str | None = None) -> Iterator[tuple[str, str, str]]:
    """(tensor, kind, commit) of every registered index (of `tensor`)."""
    prefix = index_ref_prefix(tensor)
    for k in store.list(prefix):
        parts = k.split("/")
        if len(parts) == 5:
            yield parts[2], parts[3], parts[4]


def find_index(snap: Snapshot, tensor: str, kinds: tuple[str, ...] | None = None,
               metric: str | None = None) -> IndexInfo | None:
    """The index of `tensor` on the newest commit in the history of `snap` (of one of
    `kinds`, with `metric`), or None. Cached per Snapshot (refs only get added: a new index
    is seen by the next query on a new state, or after `create_index`)."""
    out: IndexInfo | None = state_cached(snap, ("index", tensor, kinds, metric),
                                         lambda: _find_index(snap, tensor, kinds, metric))
    return out


def scalar_index(snap: Snapshot, tensor: str, kind: str) -> tuple[IndexInfo, Any] | None:
    """(info, loaded index) of the `kind` scalar index ("minmax" or "btree": one partition
    each) the version `snap` uses for `tensor`, or None."""
    info = find_index(snap, tensor, (kind,))
    if info is None:
        return None
    return info, load_partition(snap.store, info.partitions[0]["key"], kind)


def _history(snap: Snapshot) -> list[str]:
    """The commits `snap` was written on, newest first (as `ds.log()` lists them)."""
    def walk() -> list[str]:
        start = snap.base_commit
        if start is None:
            return []
        times: dict[str, float] = {}
        todo = [start]
        while todo:
            c = todo.pop()
            if c not in times:
                commit = Commit.load(snap.store, c)
                times[c] = commit.time
                todo.extend(commit.parents)
        return sorted(times, key=times.__getitem__, reverse=True)

    out: list[str] = state_cached(snap, "history", walk)
    return out


def index_refs(snap: Snapshot, tensor: str, kinds: tuple[str, ...] | None = None
               ) -> list[tuple[str, str, str]]:
    """The index refs (name, kind, commit) of `tensor` that version `snap` may use: under its
    name or a former one (`State.renames`), on a commit of its history, not hidden
    (`State.hidden_indexes`, ds.indexes.drop)."""
    names = [tensor, *snap.state.renames.get(tensor, [])]
    hidden = set(snap.state.hidden_indexes)
    rank = {c: i for i, c in enumerate(_history(snap))}
    return [(n, kind, c) for n in names for _, kind, c in _refs(snap.store, n)
            if (kinds is None or kind in kinds) and c in rank and (n, kind, c) not in hidden]


def _find_index(snap: Snapshot, tensor: str, kinds: tuple[str, ...] | None,
                metric: str | None) -> IndexInfo | None:
    found = index_refs(snap, tensor, kinds)
    if not found:
        return None
    history = _history(snap)
    rank = {c: i for i, c in enumerate(history)}
    best: IndexInfo | None = None
    best_rank = len(history)
    for name, kind, c in found:
        r = rank[c]
        if r > best_rank:
            continue
        info = _load_ref(snap, name, kind, c)
        if metric is not None and info.metric != metric:
            continue
        if r < best_rank or (best is not None and info.created > best.created):
            best, best_rank = info, r
            if name != tensor:  # indexed under its former name: the index follows it
                best = replace(info, tensor=tensor, source=name)
    return best


def _load_ref(snap: Snapshot, tensor: str, kind: str, commit: str) -> IndexInfo:
    """The manifest an index ref names, checked to be the index the ref's key says."""
    key = index_ref_key(tensor, kind, str(commit))
    ref = get_artifact_json(snap.store, key, sealed_format(snap.info), "index ref")
    manifest = ref.get("manifest")
    info = IndexInfo.load(snap.store, manifest) if isinstance(manifest, str) else None
    if info is None or (info.tensor, info.kind, info.commit) != (tensor, kind, commit):
        raise ChecksumError(f"index ref {snap.store.url}/{key} is corrupt: it names "
                            f"{manifest!r}, not a {kind} index of {tensor!r} at {commit}; "
                            "delete it and re-create the index")
    return info


def optimize_indexes(snap: Snapshot, tensor: str | None = None,
                     progress: bool | None = None) -> list[IndexInfo]:
    """Rebuild, at the commit `snap` is, every index it uses that was built on an older
    commit (same kind, metric and settings), so rows added or changed since are indexed
    instead of searched exactly. Returns the new indexes."""
    if snap.commit_id is None or snap.state_key is None:
        raise QueryError("indexes are bound to commits: commit first, then optimize")
    out = []
    for info in list_indexes(snap):
        if (tensor is not None and info.tensor != tensor) or info.commit == snap.commit_id:
            continue
        params = {k: v for k, v in info.params.items() if k not in ("fallback", "why")}
        out.append(create_index(snap, info.tensor, info.kind, info.metric,
                                params if info.kind not in SCALAR_KINDS + TEXT_KINDS else None,
                                partition_rows=info.partition_rows, progress=progress))
    return out


def list_indexes(at: Any) -> list[IndexInfo]:
    """Every index usable by version `at` (a Snapshot, or a dataset: its current version),
    one per tensor and kind."""
    snap = at if isinstance(at, Snapshot) else at.snapshot()
    out = []
    for tensor in sorted(snap.tensor_names):
        for kind in sorted({k for _, k, _ in index_refs(snap, tensor)}):
            info = find_index(snap, tensor, (kind,))
            if info is not None:
                out.append(info)
    return out
