"""Vector indexes (faiss) over partitions of rows, and exact search.

A partition indexes a contiguous run of rows of one committed version; its faiss ids are the
positions 0..n-1 inside it, mapped to stable row ids by `row_ids`. Metrics: "cosine" (vectors
normalised, inner product; higher is closer), "l2" (squared L2 distance; lower is closer, as
faiss reports it), "ip" (inner product; higher is closer). Kinds: "flat" (exact), "ivf_flat",
"ivf_pq", "hnsw". Search takes an optional sorted array of allowed row ids (a prefilter),
applied inside faiss with an IDSelector so a selective filter still returns k results.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from plane._errors import MissingDependencyError, QueryError

__all__ = ["KINDS", "VectorPartition", "build_partition", "exact_search", "normalize",
           "normalize_query", "query_vector", "check_width",
           "higher_is_better", "merge_topk", "default_params"]

KINDS = ("flat", "ivf_flat", "ivf_pq", "hnsw")
_F32_MAX = float(np.finfo(np.float32).max)


def higher_is_better(metric: str) -> bool:
    return metric != "l2"


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    n[n == 0] = 1.0
    out: np.ndarray = x / n
    return out


def normalize_query(q: np.ndarray) -> np.ndarray:
    """One query row (shape (1, d)) scaled to unit length (a zero vector stays zero)."""
    q = np.ascontiguousarray(q, np.float32)
    n = float(np.sqrt(np.dot(q[0], q[0])))
    out: np.ndarray = q / np.float32(n) if n else q
    return out


def query_vector(value: Any, what: str) -> np.ndarray:
    """`value` as a flat float32 query vector; a QueryError naming `what` (e.g. "the query
    vector of COSINE_SIMILARITY(emb, $q)") when it is not finite numbers."""
    fix = "pass a list or array of finite numbers"
    if isinstance(value, np.ndarray) and value.dtype == np.float32:
        qv = value.reshape(-1)  # the common case, kept cheap: the prepared path's input
    else:
        try:
            a = np.asarray(value)
            if a.dtype.kind == "O":
                a = np.asarray(value, np.float64)  # numbers held as objects (None fails)
            if a.dtype.kind not in "biuf":
                raise TypeError(f"its values are {a.dtype}")
            if a.dtype.kind == "f" and a.dtype.itemsize > 4 and a.size \
                    and float(np.abs(a).max()) > _F32_MAX:  # would cast to inf
                a = np.full(a.shape, np.inf)
            qv = a.astype(np.float32).reshape(-1)
        except (TypeError, ValueError, OverflowError) as e:
            raise QueryError(f"{what} is not a list of numbers ({type(value).__name__}: "
                             f"{e}); {fix}") from None
    if not qv.shape[0]:
        raise QueryError(f"{what} is empty; {fix}")
    if not np.isfinite(qv).all():
        bad = int(np.flatnonzero(~np.isfinite(qv))[0])
        raise QueryError(f"{what} has a NaN or infinite value (or one beyond float32) at "
                         f"index {bad}; {fix}")
    return qv


def check_width(qv: np.ndarray, dim: int, what: str, holds: str) -> None:
    """A QueryError unless query vector `qv` has `dim` numbers; `holds` says what the
    tensor holds (e.g. "'emb' holds vectors of shape (8,)")."""
    if qv.shape[0] != dim:
        raise QueryError(f"{what} has {qv.shape[0]} numbers but {holds} ({dim} "
                         f"number{'s' if dim != 1 else ''}); pass a vector of {dim}")


def _faiss() -> Any:
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError("vector indexes need faiss: pip install "
                                     "'tensorplane[index]'") from None
    return faiss


def default_params(kind: str, n: int, dim: int) -> dict[str, Any]:
    """Settings that reach recall@10 >= 0.95 on typical embeddings at their defaults."""
    if kind in ("ivf_flat", "ivf_pq"):
        nlist = int(max(1, min(4096, round(4 * np.sqrt(max(n, 1))))))
        p: dict[str, Any] = {"nlist": nlist, "nprobe": max(1, min(nlist, nlist // 8 + 8))}
        if kind == "ivf_pq":
            m = next((m for m in (dim // 4, dim // 8, dim // 2, 8, 4, 2, 1)
                      if m >= 1 and dim % m == 0 and m <= 32), 1)
            p.update({"m": m, "nbits": 8, "refine": 10})
        return p
    if kind == "hnsw":
        return {"M": 32, "ef_construction": 80, "ef_search": 128}
    return {}


@dataclass
class VectorPartition:
    """One partition: a faiss index and the row ids of its vectors (faiss id = position)."""

    kind: str
    metric: str
    params: dict[str, Any]
    row_ids: np.ndarray
    index: Any
    _order: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False,
                                                          compare=False)

    @property
    def ntotal(self) -> int:
        return int(self.row_ids.shape[0])

    def to_bytes(self) -> bytes:
        faiss = _faiss()
        head = json.dumps({"v": 1, "kind": self.kind, "metric": self.metric,
                           "params": self.params}).encode()
        blob = faiss.serialize_index(self.index).tobytes() if self.index is not None else b""
        buf = io.BytesIO()
        np.savez(buf, head=np.frombuffer(head, np.uint8), ids=self.row_ids,
                 index=np.frombuffer(blob, np.uint8))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> VectorPartition:
        faiss = _faiss()
        z = np.load(io.BytesIO(data), allow_pickle=False)
        head = json.loads(z["head"].tobytes())
        blob = z["index"]
        index = faiss.deserialize_index(blob) if blob.shape[0] else None
        return cls(head["kind"], head["metric"], head["params"], z["ids"].astype(np.int64),
                   index)

    def positions_of(self, ids: np.ndarray) -> np.ndarray:
        """Positions in this partition of those row `ids` it holds (O(len(ids) log n) after a
        sort of its ids, made once per loaded partition)."""
        if self._order is None:
            order = np.argsort(self.row_ids, kind="stable")
            self._order = (order, self.row_ids[order])
        order, sorted_ids = self._order
        ids = np.asarray(ids, np.int64)
        at = np.searchsorted(sorted_ids, ids)
        inside = at < sorted_ids.shape[0]
        at, ids = at[inside], ids[inside]
        out: np.ndarray = order[at[sorted_ids[at] == ids]]
        return out

    def search(self, q: np.ndarray, k: int, allowed: np.ndarray | None = None,
               params: dict[str, Any] | None = None, local: np.ndarray | None = None,
               excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(row ids, scores) of the k best vectors, best first. A prefilter: `allowed` row
        ids, or `local` positions inside this partition (cheaper: no id lookup); or the
        opposite, `excluded` row ids (a few rows changed since the index was built)."""
        if self.index is None or not self.ntotal or k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        check_width(np.asarray(q).reshape(-1), int(self.index.d), "the query vector",
                    f"this {self.kind} index holds vectors of width {self.index.d}")
        faiss = _faiss()
        p = dict(self.params, **(params or {}))
        sel = None
        if allowed is not None and local is None:
            local = np.flatnonzero(np.isin(self.row_ids, allowed, assume_unique=False))
        if local is not None:
            if not local.shape[0]:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            sel = faiss.IDSelectorBatch(np.ascontiguousarray(local, np.int64))
        elif excluded is not None and excluded.shape[0]:
            gone = self.positions_of(excluded)
            if gone.shape[0]:
                inner = faiss.IDSelectorBatch(np.ascontiguousarray(gone, np.int64))
                sel = faiss.IDSelectorNot(inner)
                sel.referenced = inner  # keep the inner selector alive while sel is
        kk = min(k, self.ntotal)
        sp = self._search_params(faiss, p, sel)
        qq = normalize_query(q[None]) if self.metric == "cosine" else np.ascontiguousarray(
            q[None], np.float32)
        d, i = self.index.search(qq, kk, params=sp) if sp is not None else \
            self.index.search(qq, kk)
        keep = i[0] >= 0
        return self.row_ids[i[0][keep]], d[0][keep].astype(np.float32)

    def _search_params(self, faiss: Any, p: dict[str, Any], sel: Any) -> Any:
        if self.kind in ("ivf_flat", "ivf_pq"):
            ivf = faiss.SearchParametersIVF(sel=sel, nprobe=int(p.get("nprobe", 16)))
            if self.kind == "ivf_pq" and p.get("refine"):
                return faiss.IndexRefineSearchParameters(k_factor=float(p["refine"]),
                                                         base_index_params=ivf, sel=sel)
            return ivf
        if self.kind == "hnsw":
            return faiss.SearchParametersHNSW(sel=sel, efSearch=int(p.get("ef_search", 128)))
        return faiss.SearchParameters(sel=sel) if sel is not None else None


def build_partition(vectors: np.ndarray, row_ids: np.ndarray, kind: str, metric: str,
                    params: dict[str, Any] | None = None, seed: int = 0) -> VectorPartition:
    """Train (when the kind needs it) and fill a faiss index over `vectors`."""
    faiss = _faiss()
    if kind not in KINDS:
        raise QueryError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    if metric not in ("cosine", "l2", "ip"):
        raise QueryError(f"unknown metric {metric!r}; choose cosine, l2 or ip")
    x = normalize(vectors) if metric == "cosine" else np.ascontiguousarray(vectors, np.float32)
    n, dim = x.shape
    p = dict(default_params(kind, n, dim), **(params or {}))
    mt = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if kind == "flat" or n == 0:
        index = faiss.IndexFlat(dim, mt)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, int(p["M"]), mt)
        index.hnsw.efConstruction = int(p["ef_construction"])
    else:
        nlist = int(min(p["nlist"], max(1, n // 39)))
        p["nlist"] = nlist
        p["nprobe"] = int(min(p["nprobe"], nlist))
        quant = faiss.IndexFlat(dim, mt)
        if kind == "ivf_flat":
            index = faiss.IndexIVFFlat(quant, dim, nlist, mt)
        else:
            inner = faiss.IndexIVFPQ(quant, dim, nlist, int(p["m"]), int(p["nbits"]), mt)
            index = faiss.IndexRefineFlat(inner) if p.get("refine") else inner
            need = 2 ** int(p["nbits"]) * 39
            if n < need:  # too few points to train 256 centroids per code
                index = faiss.IndexIVFFlat(faiss.IndexFlat(dim, mt), dim, nlist, mt)
                p = {"nlist": nlist, "nprobe": p["nprobe"], "fallback": "ivf_flat",
                     "why": f"{n:,} rows are too few to train ivf_pq codes (they need "
                            f"{need:,}), so vectors are kept whole"}
        rng = np.random.default_rng(seed)
        cap = 50_000 if kind == "ivf_pq" else 100_000
        train = x if n <= cap else x[rng.choice(n, cap, replace=False)]
        index.train(train)
    if n:
        index.add(x)
    if kind == "hnsw":
        index.hnsw.efSearch = int(p["ef_search"])
    return VectorPartition(kind, metric, p, np.asarray(row_ids, np.int64), index)


def exact_search(vectors: np.ndarray, row_ids: np.ndarray, q: np.ndarray, k: int | None,
                 metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over `vectors` (rows = `row_ids`): (row ids, scores), best first, ties by
    row id; scores as faiss reports them (cosine similarity, squared L2, inner product)."""
    if not vectors.shape[0]:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    x = np.asarray(vectors, np.float32).reshape(vectors.shape[0], -1)
    qv = np.asarray(q, np.float32).reshape(-1)
    check_width(qv, int(x.shape[1]), "the query vector",
                f"the vectors searched have shape {tuple(vectors.shape[1:])}")
    if metric == "cosine":
        s = normalize(x) @ normalize(qv)
    elif metric == "ip":
        s = x @ qv
    else:
        s = ((x - qv) ** 2).sum(axis=1)
    s = s.astype(np.float32)
    key = -s if higher_is_better(metric) else s
    ids = np.asarray(row_ids, np.int64)
    if k is not None and k < key.shape[0]:
        # keep the k best plus every tie with the k-th, then order them exactly
        kth = np.partition(key, k - 1)[k - 1]
        keep = np.flatnonzero(key <= kth)
        order = keep[np.lexsort((ids[keep], key[keep]))][:k]
    else:
        order = np.lexsort((ids, key))
    return ids[order], s[order]


def merge_topk(parts: Sequence[tuple[np.ndarray, np.ndarray]], k: int | None,
               higher: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Merge per-partition (ids, scores) into the global top-k (ties by row id); pure."""
    parts = [p for p in parts if p[0].shape[0]]
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64)
    sc = np.concatenate([p[1] for p in parts]).astype(np.float32)
    order = np.lexsort((ids, -sc if higher else sc))
    if k is not None:
        order = order[:k]
    return ids[order], sc[order]
