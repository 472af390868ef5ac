"""A prepared path for the commonest retrieval query: the top k rows of the whole version by
vector similarity, answered by an index built on exactly this state.

The general executor re-derives its plan per query (filters, index choice, staleness, the
row-id mapping); for this shape every one of those answers is fixed by the dataset state and
the query text, so they are worked out once per (state, text) and a query is then one faiss
call per partition plus a tie-ordering sort. The result equals the executor's (tested); any
case it does not cover (a filter, a stale or missing index, a short result, a bad vector)
returns None and the general executor answers, with its errors.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import QueryError
from plane.query._ast import Param, Query, VectorScore
from plane.query._cache import state_cached
from plane.query._vector import higher_is_better, normalize_query, query_vector

if TYPE_CHECKING:
    from plane.core._snapshot import Snapshot
    from plane.query._view import View

__all__ = ["Prepared", "prepare", "run_prepared"]

#: prepared queries kept per dataset state (least recently used dropped first)
MAX_PREPARED = 256
_LOCK = threading.Lock()


@dataclass
class Prepared:
    """What a pure top-k vector query needs, fixed for one dataset state and query text."""

    param: str
    dim: int
    cosine: bool
    higher: bool
    take: int  # LIMIT + OFFSET
    offset: int
    parts: list[tuple[Any, Any, np.ndarray, int]]  # (faiss index, search params, ids, start)
    snapshot: Snapshot
    columns: list[str] | None
    score_name: str

    def run(self, params: dict[str, Any], text: str) -> View | None:
        """The query's view, or None where the general executor must answer."""
        from plane.query._view import View

        v = params.get(self.param)
        if v is None:
            return None
        try:  # a bad vector is the general executor's to report
            q = query_vector(v, "").reshape(1, -1)
        except QueryError:
            return None
        if q.shape[1] != self.dim:
            return None
        if self.cosine:
            q = normalize_query(q)
        pos, ids, sc = [], [], []
        for index, sp, row_ids, start in self.parts:
            d, i = index.search(q, min(self.take, row_ids.shape[0]), params=sp)
            lab = i[0]
            if lab[-1] < 0:  # came back short (-1 pads the tail): the executor goes exact
                return None
            pos.append(lab + start if start else lab)
            ids.append(row_ids[lab])
            sc.append(d[0])
        if len(pos) == 1 and not (sc[0][1:] == sc[0][:-1]).any():
            # one partition, no tied scores: faiss's order is already the final order
            keep = slice(self.offset, self.take)
            p, rid, s = pos[0][keep], ids[0][keep], sc[0][keep]
        else:  # ties (and partitions) are ordered by row id, as the executor does
            p, rid, s = (pos[0], ids[0], sc[0]) if len(pos) == 1 else (
                np.concatenate(pos), np.concatenate(ids), np.concatenate(sc))
            order = np.lexsort((rid, -s if self.higher else s))[self.offset:self.take]
            p, rid, s = p[order], rid[order], s[order]
        return View(self.snapshot, p, s, self.columns, text, self.score_name, rid)


def run_prepared(snap: Snapshot, key: Hashable, query: Callable[[], Query],
                 params: dict[str, Any], text: str) -> View | None:
    """The view from the prepared path for the query `key` names (built by `query()` once
    per Snapshot), or None where the general executor must answer."""
    held: OrderedDict[Hashable, Prepared | None] = state_cached(snap, "prepared", OrderedDict)
    with _LOCK:
        found = key in held
        fast = held.get(key)
        if found:
            held.move_to_end(key)
    if not found:
        fast = prepare(snap, query())
        with _LOCK:
            held[key] = fast
            while len(held) > MAX_PREPARED:
                held.popitem(last=False)
    if fast is None:
        return None
    return fast.run(params, text)


def prepare(snap: Snapshot, q: Query) -> Prepared | None:
    """A Prepared for `q` on version `snap`, or None if `q` is not a pure top-k vector
    query that an index built on exactly this state answers."""
    from plane.query._builder import _columns
    from plane.query._indexes import find_index, load_partition

    if q.where is not None or len(q.order_by) != 1 or q.limit is None or q.grouped:
        return None
    o = q.order_by[0]
    s = o.expr
    if not isinstance(s, VectorScore) or not isinstance(s.query, Param):
        return None
    higher = higher_is_better(s.metric)
    if o.desc != higher or s.col.name not in snap:
        return None
    meta = snap.meta(s.col.name)
    info = find_index(snap, s.col.name, metric=s.metric)
    if meta.kind != "array" or info is None or info.state != snap.state_key:
        return None
    take = q.limit + q.offset
    n = len(snap)
    if n != info.rows or take <= 0:
        return None
    try:
        columns, score_name = _columns(snap, q)
    except QueryError:
        return None
    parts = []
    for p in info.partitions:
        part = load_partition(snap.store, p["key"], False)
        if part.index is None or not part.ntotal:
            continue
        sp = _own_params(part)
        parts.append((part.index, sp, part.row_ids, int(p["start"])))
    if not parts:
        return None
    dim = int(parts[0][0].d)
    return Prepared(s.query.name, dim, s.metric == "cosine", higher, take, q.offset, parts,
                    snap, columns, score_name)


def _own_params(part: Any) -> Any:
    """Search parameters for an unfiltered search: set on the index itself where faiss
    allows (a per-call parameter object costs ~20 us a query), else a parameter object."""
    from plane.query._vector import _faiss

    p, index = part.params, part.index
    if part.kind == "hnsw":
        index.hnsw.efSearch = int(p.get("ef_search", 128))
        return None
    if part.kind == "flat":
        return None
    if part.kind == "ivf_flat" or (part.kind == "ivf_pq" and not p.get("refine")):
        index.nprobe = int(p.get("nprobe", 16))
        return None
    return part._search_params(_faiss(), dict(p), None)
