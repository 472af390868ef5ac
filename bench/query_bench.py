# ruff: noqa: RUF001, RUF002, RUF003  (×, –, µ, ≥ in printed tables are intended)
"""Query benchmark (issue #6): tensorplane vs raw faiss vs Lance (and Deeplake) on one data set.

Data (fixed seed): N rows × 128-d float32 embeddings drawn around 1000 Gaussian centres
(so ANN is realistic), `width` int32 uniform 0..999 (filters `width < 10` = 1% and
`width < 100` = 10% selectivity), a 10-class `labels` class_label, and captions of 5–12
words drawn from a 5k-word Zipf vocabulary (pseudo-words that every analyzer involved keeps
as they are: no stopwords, stemmer fixed points). Q queries: vectors near random data points
(+ noise) and texts of 2 words taken from a random caption.

Cases (k = 10, single-threaded, one query after another, faiss OpenMP threads = 1):
  (1) unfiltered ANN  (2) 1%-filtered ANN  (3) 10%-filtered ANN  (4) BM25 top-10
  (5) hybrid: RRF(vector, BM25) under the 10% filter.
tensorplane runs through `ds.query(sql, params)` (and the builder for cases 1 and 5);
side by side: raw faiss on the same index kinds with the same parameters (IndexHNSWFlat /
IndexIVFFlat on normalised vectors, `SearchParametersHNSW/IVF(sel=IDSelectorBatch)` for
filters, selectors built outside the timed loop: the ceiling), numpy exact search over the
pre-gathered filtered vectors, pylance (IVF_PQ and IVF_HNSW_SQ, prefilter=True, INVERTED
full-text index), LanceDB for the hybrid (same Lance dataset, RRF reranker) and Deeplake 4
(TQL with its default clustered embedding index and BM25 text index) when installed.

Recall@10 is against exact brute force over the filtered set (numpy, ties by row id); for
BM25 and the fused lists it is tie-aware (a returned row counts when its true score is at
least the 10th best true score), since many short captions have identical BM25 scores.
Lance's BM25 recall is scored against BM25 with Lance's k1 = 1.2 (tensorplane's is 1.5).

    .venv/bin/python bench/query_bench.py                    # 100k rows, 200 queries
    .venv/bin/python bench/query_bench.py --quick            # 5k rows, 30 queries (smoke)
    .venv/bin/python bench/query_bench.py --json bench/_out/query.json --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import math
import os
import pstats
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

os.environ.setdefault("LANCE_LOG", "error")  # no deprecation warning per query
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import command_line, env_line, fmt, md_table, pct, rmtree

K = 10
FILTERS = {"1%": 10, "10%": 100}  # width < value
RRF_K = 60
FUSION_DEPTH = 100  # tensorplane's fusion depth for LIMIT 10: max(10 * 10, 100)
CONS, VOWS = "bdfgklmnprstvz", "aeiou"

CASES = ("ann", "ann_1%", "ann_10%", "bm25", "hybrid_10%")
CASE_NAMES = {"ann": "(1) ANN, unfiltered", "ann_1%": "(2) ANN, 1% filter",
              "ann_10%": "(3) ANN, 10% filter", "bm25": "(4) BM25 top-10",
              "hybrid_10%": "(5) hybrid RRF, 10% filter"}


def log(msg: str) -> None:
    print(f"# {msg}", file=sys.stderr, flush=True)


# ---- data ---------------------------------------------------------------------------------
def make_vocab(n: int, rng: np.random.Generator) -> list[str]:
    """`n` pseudo-words that tensorplane's analyzer keeps unchanged (and so does Lance's:
    lower-case letters, no stopword, a fixed point of the Snowball English stemmer)."""
    from plane.query._text import tokenize

    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        syl = int(rng.integers(2, 4))
        w = "".join(CONS[rng.integers(len(CONS))] + VOWS[rng.integers(len(VOWS))]
                    for _ in range(syl))
        if rng.random() < 0.5:
            w += CONS[rng.integers(len(CONS))]
        if w not in seen and tokenize(w) == [w]:
            seen.add(w)
            out.append(w)
    return out


def make_data(n: int, dim: int, nq: int, clusters: int, vocab_n: int, seed: int
              ) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    cid = rng.integers(0, clusters, n)
    emb = centers[cid] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    width = rng.integers(0, 1000, n).astype(np.int32)
    labels = (cid % 10).astype(np.int64)
    vocab = make_vocab(vocab_n, rng)
    p = 1.0 / np.arange(1, vocab_n + 1) ** 1.07
    p /= p.sum()
    lens = rng.integers(5, 13, n)
    words = rng.choice(vocab_n, int(lens.sum()), p=p)
    ends = np.cumsum(lens)
    docs = np.split(words, ends[:-1])
    captions = [" ".join(vocab[w] for w in d) for d in docs]
    src = rng.integers(0, n, nq)
    qvec = emb[src] + 0.15 * rng.standard_normal((nq, dim)).astype(np.float32)
    qtext = []
    for i in rng.integers(0, n, nq):
        d = docs[int(i)]
        a, b = rng.choice(len(d), 2, replace=False)
        qtext.append(f"{vocab[d[a]]} {vocab[d[b]]}")
    return {"n": n, "dim": dim, "emb": emb, "width": width, "labels": labels,
            "captions": captions, "docs": docs, "vocab": vocab, "qvec": qvec,
            "qtext": qtext, "masks": {k: width < v for k, v in FILTERS.items()}}


def normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, np.float32)
    nrm = np.linalg.norm(x, axis=-1, keepdims=True)
    nrm[nrm == 0] = 1
    out: np.ndarray = x / nrm
    return out


# ---- ground truth -------------------------------------------------------------------------
def exact_rank(sims: np.ndarray, allowed: np.ndarray, depth: int) -> np.ndarray:
    """Row ids of the `depth` best (highest `sims`) among `allowed`, ties by row id."""
    s = sims[allowed]
    if depth < s.shape[0]:
        part = np.argpartition(-s, depth)[:depth + 1]
        kth = np.sort(s[part])[::-1][depth - 1]
        keep = np.flatnonzero(s >= kth)  # everything tied with the depth-th
    else:
        keep = np.arange(s.shape[0])
    order = np.lexsort((allowed[keep], -s[keep]))[:depth]
    out: np.ndarray = allowed[keep][order]
    return out


class BM25Truth:
    """Exact BM25 (Robertson/Lucene idf, (k1+1) numerator) over whitespace tokens."""

    def __init__(self, docs: Sequence[np.ndarray], vocab_n: int) -> None:
        n = len(docs)
        self.n = n
        self.dl = np.array([d.shape[0] for d in docs], np.float64)
        self.avgdl = float(self.dl.mean())
        flat = np.concatenate(docs)
        doc_of = np.repeat(np.arange(n), self.dl.astype(np.int64))
        key = flat.astype(np.int64) * n + doc_of
        uk, tf = np.unique(key, return_counts=True)
        self.term = uk // n
        self.doc = uk % n
        self.tf = tf.astype(np.float64)
        self.indptr = np.searchsorted(self.term, np.arange(vocab_n + 1))

    def scores(self, term_ids: Sequence[int], k1: float) -> np.ndarray:
        b = 0.75
        acc = np.zeros(self.n)
        for t in term_ids:
            a, z = self.indptr[t], self.indptr[t + 1]
            df = z - a
            if not df:
                continue
            idf = math.log1p((self.n - df + 0.5) / (df + 0.5))
            d, tf = self.doc[a:z], self.tf[a:z]
            acc[d] += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * self.dl[d] / self.avgdl))
        return acc.astype(np.float32).astype(np.float64)


def bm25_rank(score: np.ndarray, allowed: np.ndarray | None, depth: int) -> np.ndarray:
    ids = np.flatnonzero(score > 0) if allowed is None else allowed[score[allowed] > 0]
    order = np.lexsort((ids, -score[ids]))[:depth]
    out: np.ndarray = ids[order]
    return out


def truth(data: dict[str, Any]) -> dict[str, Any]:
    """Exact answers of every case for every query (row ids = row positions here)."""
    n, nq = data["n"], len(data["qtext"])
    xn = normalize(data["emb"])
    qn = normalize(data["qvec"])
    allrows = np.arange(n)
    allowed = {k: np.flatnonzero(m) for k, m in data["masks"].items()}
    word_id = {w: i for i, w in enumerate(data["vocab"])}
    bt = BM25Truth(data["docs"], len(data["vocab"]))
    gt: dict[str, Any] = {c: [] for c in CASES}
    gt["bm25_scores"], gt["bm25_scores_k12"], gt["hybrid_scores"] = [], [], []
    gt["ann_ref"] = {}
    for a in range(0, nq, 50):
        sims = qn[a:a + 50] @ xn.T
        for j in range(sims.shape[0]):
            i = a + j
            s = sims[j]
            gt["ann"].append(exact_rank(s, allrows, K))
            for key, al in allowed.items():
                gt[f"ann_{key}"].append(exact_rank(s, al, K))
            terms = [word_id[w] for w in data["qtext"][i].split()]
            sc = bt.scores(terms, 1.5)
            gt["bm25_scores"].append(sc)
            gt["bm25_scores_k12"].append(bt.scores(terms, 1.2))
            gt["bm25"].append(bm25_rank(sc, None, K))
            # hybrid: RRF (k=60) of the exact filtered lists, each FUSION_DEPTH deep
            al = allowed["10%"]
            fused: dict[int, float] = {}
            for lst in (exact_rank(s, al, FUSION_DEPTH), bm25_rank(sc, al, FUSION_DEPTH)):
                for r, rid in enumerate(lst.tolist()):
                    fused[rid] = fused.get(rid, 0.0) + 1.0 / (RRF_K + r + 1)
            gt["hybrid_scores"].append(fused)
            gt["hybrid_10%"].append(np.array(sorted(fused, key=lambda x: (-fused[x], x))[:K]))
    return gt


def recall_ids(got: Sequence[int], want: np.ndarray) -> float:
    if not want.shape[0]:
        return 1.0
    return len(set(int(x) for x in list(got)[:K]) & set(want.tolist())) / min(K, want.shape[0])


def recall_scored(got: Sequence[int], score: Callable[[int], float], kth: float,
                  nonzero: int) -> float:
    """Tie-aware: a returned row counts when its true score >= the k-th best true score."""
    if nonzero == 0:
        return 1.0
    tol = 1e-5 * max(abs(kth), 1e-12)
    hits = {int(r) for r in list(got)[:K] if score(int(r)) > 0 and score(int(r)) >= kth - tol}
    return min(len(hits), K) / min(K, nonzero)


def score_recall(case: str, i: int, got: Sequence[int], gt: dict[str, Any],
                 k12: bool = False) -> float:
    if case.startswith("ann"):
        return recall_ids(got, gt[case][i])
    if case == "bm25":
        sc = gt["bm25_scores_k12" if k12 else "bm25_scores"][i]
        top = np.sort(sc[sc > 0])[::-1]
        kth = float(top[min(K, top.shape[0]) - 1]) if top.shape[0] else 0.0
        return recall_scored(got, lambda r: float(sc[r]), kth, int(top.shape[0]))
    fused = gt["hybrid_scores"][i]
    vals = sorted(fused.values(), reverse=True)
    kth = vals[min(K, len(vals)) - 1] if vals else 0.0
    return recall_scored(got, lambda r: fused.get(r, 0.0), kth, len(vals))


# ---- timing --------------------------------------------------------------------------------
BUDGET_S = 30.0  # per system and case: stop after this many seconds of queries (>= 10 run)


def measure(fn: Callable[[int], Sequence[int]], nq: int, case: str, gt: dict[str, Any],
            warmup: int = 3, k12: bool = False,
            remap: Callable[[Any], Sequence[int]] | None = None) -> dict[str, Any]:
    """Run fn(i) for every query i sequentially: QPS, p50/p99 latency (ms), mean recall@10.
    `remap` turns what fn returns into row positions, outside the timed part."""
    for i in range(min(warmup, nq)):
        fn(i)
    lat, rec = [], []
    for i in range(nq):
        t0 = time.perf_counter()
        got = fn(i)
        lat.append(time.perf_counter() - t0)
        rec.append(score_recall(case, i, remap(got) if remap else got, gt, k12))
        if sum(lat) > BUDGET_S and i + 1 >= 10:
            break
    return {"qps": len(lat) / sum(lat), "p50_ms": pct(lat, 50) * 1e3,
            "p99_ms": pct(lat, 99) * 1e3, "recall": float(np.mean(rec)), "n": len(lat)}


def faiss_threads(n: int | None) -> None:
    import faiss

    faiss.omp_set_num_threads(n if n else (os.cpu_count() or 1))


# ---- tensorplane ---------------------------------------------------------------------------
def run_plane(data: dict[str, Any], gt: dict[str, Any], root: str, res: dict[str, Any],
              args: argparse.Namespace) -> None:
    import plane

    n = data["n"]
    path = os.path.join(root, "plane")
    t0 = time.perf_counter()
    ds = plane.create(path)
    ds.create_tensor("embedding", htype="embedding", shape=(data["dim"],))
    ds.create_tensor("width", dtype="int32")
    ds.create_tensor("labels", htype="class_label", class_names=[f"c{i}" for i in range(10)])
    ds.create_tensor("caption", htype="text")
    step = 20_000
    for a in range(0, n, step):
        ds.extend({"embedding": data["emb"][a:a + step], "width": data["width"][a:a + step],
                   "labels": data["labels"][a:a + step],
                   "caption": data["captions"][a:a + step]})
    ds.commit("data")
    res["build"]["tensorplane"] = {"ingest + commit": time.perf_counter() - t0}
    rids = ds.row_ids
    order = np.argsort(rids, kind="stable")
    assert len(rids) == n

    sorted_rids = rids[order]  # once: a 100k gather per query would evict the caches

    def to_pos(ids: Any) -> list[int]:  # stable row ids -> row positions (= truth's ids)
        out_: list[int] = order[np.searchsorted(sorted_rids, np.asarray(ids))].tolist()
        return out_
    qv, qt = data["qvec"], data["qtext"]
    out = res["results"]
    plans = res["plans"]

    def sql_ann(where: str) -> Callable[[int], Sequence[int]]:
        sql = (f"SELECT id {where} ORDER BY COSINE_SIMILARITY(embedding, $q) DESC "
               f"LIMIT {K}")
        return lambda i: ds.query(sql, {"q": qv[i]}).ids

    # ivf_flat first (find_index prefers the newest index of a commit), then hnsw + bm25
    faiss_threads(None)
    sec = time.perf_counter()
    info = ds.create_index("embedding", kind="ivf_flat", metric="cosine", progress=False)
    res["build"]["tensorplane"]["ivf_flat index"] = time.perf_counter() - sec
    res["params"]["tensorplane ivf_flat"] = info.params
    faiss_threads(1)
    log("tensorplane ivf_flat: unfiltered")
    out[("tensorplane SQL (ivf_flat)", "ann")] = measure(sql_ann(""), len(qv), "ann", gt,
                                                         remap=to_pos)
    faiss_threads(None)
    sec = time.perf_counter()
    info = ds.create_index("embedding", kind="hnsw", metric="cosine", progress=False)
    res["build"]["tensorplane"]["hnsw index"] = time.perf_counter() - sec
    res["params"]["tensorplane hnsw"] = info.params
    sec = time.perf_counter()
    ds.create_index("caption", kind="bm25", progress=False)
    res["build"]["tensorplane"]["bm25 index"] = time.perf_counter() - sec
    faiss_threads(1)

    name = "tensorplane SQL (hnsw)"
    for key, where in (("ann", ""), ("ann_1%", "WHERE width < 10"),
                       ("ann_10%", "WHERE width < 100")):
        log(f"tensorplane hnsw: {key}")
        out[(name, key)] = measure(sql_ann(where), len(qv), key, gt, remap=to_pos)
        plans[key] = ds.explain(f"SELECT id {where} ORDER BY COSINE_SIMILARITY(embedding, $q) "
                                f"DESC LIMIT {K}", {"q": qv[0]})
    bm = f"SELECT id ORDER BY BM25(caption, $t) DESC LIMIT {K}"
    log("tensorplane: bm25")
    out[(name, "bm25")] = measure(lambda i: ds.query(bm, {"t": qt[i]}).ids, len(qv), "bm25",
                                  gt, remap=to_pos)
    plans["bm25"] = ds.explain(bm, {"t": qt[0]})
    hy = ("SELECT id WHERE width < 100 ORDER BY RRF(COSINE_SIMILARITY(embedding, $q), "
          f"BM25(caption, $t)) DESC LIMIT {K}")
    log("tensorplane: hybrid")
    out[(name, "hybrid_10%")] = measure(lambda i: ds.query(hy, {"q": qv[i], "t": qt[i]}).ids,
                                        len(qv), "hybrid_10%", gt, remap=to_pos)
    plans["hybrid_10%"] = ds.explain(hy, {"q": qv[0], "t": qt[0]})

    bname = "tensorplane builder (hnsw)"
    log("tensorplane builder")
    out[(bname, "ann")] = measure(
        lambda i: ds.search().nearest("embedding", qv[i]).limit(K).run().ids, len(qv), "ann",
        gt, remap=to_pos)
    out[(bname, "hybrid_10%")] = measure(
        lambda i: ds.search().where("width < 100").match("caption", qt[i])
        .nearest("embedding", qv[i]).limit(K).run().ids, len(qv), "hybrid_10%", gt,
        remap=to_pos)

    if args.profile:
        res["profile"] = []
        for what, where in (("unfiltered", ""), ("10%-filtered", "WHERE width < 100")):
            sql = (f"SELECT id {where} ORDER BY COSINE_SIMILARITY(embedding, $q) DESC "
                   f"LIMIT {K}")
            prof = cProfile.Profile()
            prof.enable()
            for i in range(len(qv)):
                ds.query(sql, {"q": qv[i]}).ids  # noqa: B018
            prof.disable()
            for order_by, top in (("cumulative", 20), ("tottime", 12)):
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats(order_by).print_stats(top)
                res["profile"].append(f"{len(qv)} {what} hnsw queries via ds.query, by "
                                      f"{order_by}:\n{buf.getvalue()}")


# ---- raw faiss + numpy exact ---------------------------------------------------------------
def run_faiss(data: dict[str, Any], gt: dict[str, Any], res: dict[str, Any]) -> None:
    import faiss

    from plane.query._vector import default_params

    n, dim = data["n"], data["dim"]
    xn = normalize(data["emb"])
    qn = normalize(data["qvec"])
    out = res["results"]
    b = res["build"].setdefault("raw faiss", {})
    faiss_threads(None)
    hp = default_params("hnsw", n, dim)
    t0 = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(dim, int(hp["M"]), faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = int(hp["ef_construction"])
    hnsw.add(xn)
    hnsw.hnsw.efSearch = int(hp["ef_search"])
    b["hnsw index"] = time.perf_counter() - t0
    ip = default_params("ivf_flat", n, dim)
    nlist = int(min(ip["nlist"], max(1, n // 39)))
    nprobe = int(min(ip["nprobe"], nlist))
    t0 = time.perf_counter()
    quant = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quant, dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(0)
    ivf.train(xn if n <= 100_000 else xn[rng.choice(n, 100_000, replace=False)])
    ivf.add(xn)
    b["ivf_flat index"] = time.perf_counter() - t0
    res["params"]["raw faiss"] = {"hnsw": hp, "ivf_flat": {"nlist": nlist, "nprobe": nprobe}}
    faiss_threads(1)

    def ids_of(i_: np.ndarray) -> list[int]:
        return [int(x) for x in i_[0] if x >= 0]

    ivf_sp = faiss.SearchParametersIVF(nprobe=nprobe)
    log("raw faiss")
    out[("raw faiss IndexIVFFlat", "ann")] = measure(
        lambda i: ids_of(ivf.search(qn[i:i + 1], K, params=ivf_sp)[1]), len(qn), "ann", gt)
    out[("raw faiss IndexHNSWFlat", "ann")] = measure(
        lambda i: ids_of(hnsw.search(qn[i:i + 1], K)[1]), len(qn), "ann", gt)
    for key, m in data["masks"].items():
        sel = faiss.IDSelectorBatch(np.flatnonzero(m).astype(np.int64))
        sp = faiss.SearchParametersHNSW(sel=sel, efSearch=int(hp["ef_search"]))
        out[("raw faiss IndexHNSWFlat", f"ann_{key}")] = measure(
            lambda i, sp=sp: ids_of(hnsw.search(qn[i:i + 1], K, params=sp)[1]), len(qn),
            f"ann_{key}", gt)
        # numpy exact over the pre-gathered filtered vectors (what a planner can fall back to)
        al = np.flatnonzero(m)
        sub = np.ascontiguousarray(xn[al])

        def exact(i: int, sub: np.ndarray = sub, al: np.ndarray = al) -> list[int]:
            s = sub @ qn[i]
            top = np.argpartition(-s, K)[:K]
            return al[top[np.argsort(-s[top])]].tolist()
        out[("numpy exact (filtered rows pre-gathered)", f"ann_{key}")] = measure(
            exact, len(qn), f"ann_{key}", gt)


# ---- Lance / LanceDB -----------------------------------------------------------------------
def run_lance(data: dict[str, Any], gt: dict[str, Any], root: str, res: dict[str, Any],
              args: argparse.Namespace) -> None:
    import lance
    import pyarrow as pa

    n, dim = data["n"], data["dim"]
    out = res["results"]
    b = res["build"].setdefault("Lance", {})
    qv, qt = data["qvec"], data["qtext"]
    table = pa.table({
        "rid": pa.array(np.arange(n, dtype=np.int64)),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(data["emb"].reshape(-1)), dim),
        "width": pa.array(data["width"]),
        "labels": pa.array(data["labels"]),
        "caption": pa.array(data["captions"], pa.string()),
    })
    uri = os.path.join(root, "lance", "t.lance")
    t0 = time.perf_counter()
    ds = lance.write_dataset(table, uri)
    b["write"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds.create_scalar_index("caption", "INVERTED")
    b["INVERTED (full text) index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds.create_scalar_index("width", "BTREE")
    b["BTREE index on width"] = time.perf_counter() - t0

    nparts = max(1, min(256, n // 400))
    nsub = dim // 8
    variants = [("IVF_PQ", {"index_type": "IVF_PQ", "num_partitions": nparts,
                            "num_sub_vectors": nsub},
                 {"nprobes": max(1, nparts // 8 + 8), "refine_factor": 10}),
                ("IVF_HNSW_SQ", {"index_type": "IVF_HNSW_SQ", "num_partitions": max(1, n // 50_000),
                                 "m": 32, "ef_construction": 80},
                 {"nprobes": max(1, n // 50_000), "ef": 128})]
    for vname, build_kw, query_kw in variants:
        t0 = time.perf_counter()
        ds.create_index("embedding", metric="cosine", replace=True, **build_kw)
        b[f"{vname} index"] = time.perf_counter() - t0
        res["params"][f"Lance {vname}"] = {"build": build_kw, "query": query_kw}
        ds = lance.dataset(uri)
        name = f"Lance {vname}"
        for key, flt in (("ann", None), ("ann_1%", "width < 10"), ("ann_10%", "width < 100")):
            log(f"lance {vname}: {key}")

            def fn(i: int, flt: str | None = flt, qkw: dict[str, Any] = query_kw,
                   lds: Any = ds) -> Any:
                t = lds.to_table(columns=["rid"], nearest={"column": "embedding", "q": qv[i],
                                                          "k": K, **qkw},
                                filter=flt, prefilter=flt is not None,
                                disable_scoring_autoprojection=True)
                return t.column("rid").to_pylist()
            out[(name, key)] = measure(fn, len(qv), key, gt)
    log("lance: full text")
    out[("Lance (pylance)", "bm25")] = measure(
        lambda i: ds.to_table(columns=["rid"], full_text_query=qt[i], limit=K,
                               disable_scoring_autoprojection=True)
        .column("rid").to_pylist(), len(qt), "bm25", gt, k12=True)
    try:
        import lancedb
    except ImportError:
        res["notes"].append("LanceDB not installed: no Lance hybrid row")
        return
    res["versions"]["lancedb"] = lancedb.__version__
    tbl = lancedb.connect(os.path.dirname(uri)).open_table("t")
    log("lancedb: hybrid (IVF_HNSW_SQ + INVERTED, RRF reranker)")
    hkw = variants[1][2]

    def hyb(i: int, depth: int = K) -> Any:
        q = (tbl.search(query_type="hybrid").vector(qv[i]).text(qt[i])
             .where("width < 100", prefilter=True).select(["rid"]).limit(depth))
        q = q.nprobes(int(hkw["nprobes"])).ef(int(hkw["ef"]))
        return q.to_arrow().column("rid").to_pylist()[:K]
    # LanceDB fetches LIMIT rows from each side before fusing; tensorplane fuses lists 100
    # deep (FUSION_DEPTH) and so does the truth: run both ways
    out[("LanceDB (IVF_HNSW_SQ), LIMIT 10", "hybrid_10%")] = measure(hyb, len(qv),
                                                                     "hybrid_10%", gt)
    out[(f"LanceDB (IVF_HNSW_SQ), LIMIT {FUSION_DEPTH} then top 10", "hybrid_10%")] = measure(
        lambda i: hyb(i, FUSION_DEPTH), len(qv), "hybrid_10%", gt)
    log("lancedb: vector only, 10% filter (same path as hybrid)")

    def vec(i: int) -> Any:
        q = (tbl.search(qv[i], vector_column_name="embedding").metric("cosine")
             .where("width < 100", prefilter=True).select(["rid"]).limit(K)
             .nprobes(int(hkw["nprobes"])).ef(int(hkw["ef"])))
        return q.to_arrow().column("rid").to_pylist()
    out[("LanceDB (IVF_HNSW_SQ)", "ann_10%")] = measure(vec, len(qv), "ann_10%", gt)


# ---- Deeplake ------------------------------------------------------------------------------
def run_deeplake(data: dict[str, Any], gt: dict[str, Any], root: str, res: dict[str, Any]
                 ) -> None:
    import deeplake

    n, dim = data["n"], data["dim"]
    res["versions"]["deeplake"] = deeplake.__version__
    b = res["build"].setdefault("Deeplake", {})
    out = res["results"]
    qv, qt = data["qvec"], data["qtext"]
    t0 = time.perf_counter()
    ds = deeplake.create("file://" + os.path.join(root, "deeplake"))
    ds.add_column("rid", deeplake.types.Int64())
    ds.add_column("embedding", deeplake.types.Embedding(dim))  # default: clustered index
    ds.add_column("width", deeplake.types.Int32())
    ds.add_column("caption", deeplake.types.Text(deeplake.types.BM25))
    step = 20_000
    for a in range(0, n, step):
        ds.append({"rid": np.arange(a, min(n, a + step), dtype=np.int64),
                   "embedding": data["emb"][a:a + step], "width": data["width"][a:a + step],
                   "caption": data["captions"][a:a + step]})
    ds.commit()
    b["append + commit (builds its indexes)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ds = deeplake.open_read_only("file://" + os.path.join(root, "deeplake"))
    arr = ",".join(f"{v:.6f}" for v in qv[0])
    ds.query(f"SELECT rid ORDER BY COSINE_SIMILARITY(embedding, ARRAY[{arr}]) DESC LIMIT {K}")
    b["first vector query (lazy index load)"] = time.perf_counter() - t0
    for key, where in (("ann", ""), ("ann_1%", "WHERE width < 10"),
                       ("ann_10%", "WHERE width < 100")):
        log(f"deeplake: {key}")

        def fn(i: int, where: str = where) -> Any:
            a = ",".join(f"{v:.6f}" for v in qv[i])
            r = ds.query(f"SELECT rid {where} ORDER BY COSINE_SIMILARITY(embedding, "
                         f"ARRAY[{a}]) DESC LIMIT {K}")
            return np.asarray(r["rid"][:]).reshape(-1).tolist()
        out[("Deeplake (TQL, clustered)", key)] = measure(fn, len(qv), key, gt)
    log("deeplake: bm25")

    def bm(i: int) -> Any:
        r = ds.query(f"SELECT rid ORDER BY BM25_SIMILARITY(caption, '{qt[i]}') DESC LIMIT {K}")
        return np.asarray(r["rid"][:]).reshape(-1).tolist()
    out[("Deeplake (TQL, clustered)", "bm25")] = measure(bm, len(qt), "bm25", gt,
                                                         k12=True)


# ---- driver --------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    import faiss
    import lance

    res: dict[str, Any] = {"args": vars(args), "results": {}, "build": {}, "params": {},
                           "plans": {}, "errors": [], "notes": [],
                           "versions": {"faiss": faiss.__version__, "pylance": lance.__version__}}
    t_start = time.perf_counter()
    log(f"generating {args.rows:,} rows, {args.queries} queries (seed {args.seed})")
    data = make_data(args.rows, args.dim, args.queries, args.clusters, args.vocab, args.seed)
    log("ground truth")
    t0 = time.perf_counter()
    gt = truth(data)
    res["truth_s"] = time.perf_counter() - t0
    res["selectivity"] = {k: float(m.mean()) for k, m in data["masks"].items()}
    res["caption_words"] = float(np.mean([d.shape[0] for d in data["docs"]]))
    root = args.dir or tempfile.mkdtemp(prefix="qbench-")
    os.makedirs(root, exist_ok=True)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    steps: list[tuple[str, Callable[[], None]]] = [
        ("tensorplane", lambda: run_plane(data, gt, root, res, args)),
        ("faiss", lambda: run_faiss(data, gt, res)),
        ("lance", lambda: run_lance(data, gt, root, res, args)),
        ("deeplake", lambda: run_deeplake(data, gt, root, res)),
    ]
    try:
        for name, fn in steps:
            if name not in systems:
                continue
            try:
                fn()
            except ImportError as e:
                res["notes"].append(f"{name} not run: {e}")
                log(f"{name} not run: {e}")
            except Exception as e:  # report and go on with the others
                res["errors"].append(f"{name}: {type(e).__name__}: {e}")
                log(f"ERROR {name}: {e}")
                traceback.print_exc(file=sys.stderr)
    finally:
        if not args.keep:
            rmtree(root)
    res["total_s"] = time.perf_counter() - t_start
    return res


def target_lines(res: dict[str, Any]) -> list[list[str]]:
    r = res["results"]
    rows: list[list[str]] = []
    tp, fa = r.get(("tensorplane SQL (hnsw)", "ann")), r.get(("raw faiss IndexHNSWFlat", "ann"))
    if tp and fa:
        ratio = tp["qps"] / fa["qps"]
        rows.append(["unfiltered tensorplane QPS ≥ 0.8× raw faiss (HNSW, same M/efSearch)",
                     f"{fmt(tp['qps'])} vs {fmt(fa['qps'])} QPS = {ratio:.2f}×",
                     "PASS" if ratio >= 0.8 else "FAIL"])
    f1 = r.get(("tensorplane SQL (hnsw)", "ann_1%"))
    if f1:
        rows.append(["filtered recall@10 ≥ 0.95 at 1% selectivity", f"{f1['recall']:.3f}",
                     "PASS" if f1["recall"] >= 0.95 else "FAIL"])
    hy, v10 = r.get(("tensorplane SQL (hnsw)", "hybrid_10%")), \
        r.get(("tensorplane SQL (hnsw)", "ann_10%"))
    if hy and v10:
        ratio = hy["p50_ms"] / v10["p50_ms"]
        un = r.get(("tensorplane SQL (hnsw)", "ann"))
        extra = f"; vs unfiltered {hy['p50_ms'] / un['p50_ms']:.2f}×" if un else ""
        rows.append(["hybrid p50 ≤ 2× vector-only p50 (same 10% filter)",
                     f"{fmt(hy['p50_ms'])} vs {fmt(v10['p50_ms'])} ms = {ratio:.2f}×{extra}",
                     "PASS" if ratio <= 2 else "FAIL"])
    return rows


def report(res: dict[str, Any]) -> str:
    a = res["args"]
    extra = {f"{k}": v for k, v in res["versions"].items()}
    lines = ["## Query: tensorplane vs raw faiss vs Lance (issue #6)", "",
             f"`{command_line()}`", "",
             f"{a['rows']:,} rows × {a['dim']}-d float32 ({a['clusters']} Gaussian centres + "
             f"noise), `width` int32 0..999 (`width < 10`: {res['selectivity']['1%']:.2%}, "
             f"`width < 100`: {res['selectivity']['10%']:.2%} of rows), captions of "
             f"{res['caption_words']:.1f} words on average from a {a['vocab']:,}-word Zipf "
             f"vocabulary; {a['queries']} queries (vector near a data point, 2-word text), "
             f"k = {K}, one at a time on one thread (faiss OpenMP threads = 1; Lance and "
             f"Deeplake use their own Rust thread pools). "
             f"{env_line(extra)}. Total run {res['total_s']:.0f} s.", ""]
    systems = sorted({s for s, _ in res["results"]}, key=lambda s: list(
        dict.fromkeys(s for s, _ in res["results"])).index(s))
    for case in CASES:
        rows = []
        for s in systems:
            m = res["results"].get((s, case))
            if m:
                cut = f" [n={m['n']}]" if m["n"] < a["queries"] else ""
                rows.append([s, fmt(m["qps"]) + cut, fmt(m["p50_ms"]), fmt(m["p99_ms"]),
                             f"{m['recall']:.3f}"])
        if rows:
            lines += [f"### {CASE_NAMES[case]}", "",
                      md_table(["system", "QPS", "p50 ms", "p99 ms", "recall@10"], rows), ""]
    brow = [[s, ", ".join(f"{k} {v:.1f} s" for k, v in d.items())]
            for s, d in res["build"].items()]
    lines += ["### Build times", "", md_table(["system", "seconds"], brow), ""]
    lines += ["Index parameters: " + "; ".join(f"{k} {json.dumps(v)}" for k, v in
                                               res["params"].items()), ""]
    if res["plans"]:
        lines += ["tensorplane plans (`ds.explain`, query 0):", ""]
        for case, plan in res["plans"].items():
            steps = [s.split(". ", 1)[1] for s in plan.splitlines()
                     if not s.split(". ", 1)[1].startswith(("version:", "limit", "result"))]
            lines.append(f"* {CASE_NAMES[case]}: " + " → ".join(steps))
        lines.append("")
    tl = target_lines(res)
    if tl:
        lines += ["### Targets", "", md_table(["target", "measured", ""], tl), ""]
    for note in res["notes"]:
        lines.append(f"Note: {note}")
    for err in res["errors"]:
        lines.append(f"ERROR: {err}")
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows (default 100000)")
    ap.add_argument("--queries", type=int, default=200, help="queries (default 200)")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--vocab", type=int, default=5000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--systems", default="tensorplane,faiss,lance,deeplake",
                    help="comma list of tensorplane,faiss,lance,deeplake")
    ap.add_argument("--quick", action="store_true", help="smoke run: 5k rows, 30 queries")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile tensorplane unfiltered and 10%%-filtered queries (top 20)")
    ap.add_argument("--dir", default=None, help="data dir (default: a fresh temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the written data")
    ap.add_argument("--json", default=None, help="write all measurements to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.rows = min(args.rows, 5000)
        args.queries = min(args.queries, 30)
        args.clusters = min(args.clusters, 50)
        args.vocab = min(args.vocab, 1000)
    res = run(args)
    print(report(res))
    for text in res.get("profile", []):
        print(text)
    if args.json:
        dump = dict(res, results=[{"system": s, "case": c, **m}
                                  for (s, c), m in res["results"].items()])
        with open(args.json, "w") as f:
            json.dump(dump, f, indent=1, default=str)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
