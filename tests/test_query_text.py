"""The BM25 full-text index: tokenizer, scores against references, partitioning, serialization."""

from __future__ import annotations

import math
import threading
from collections import Counter
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plane._errors import FormatVersionError, QueryError
from plane.query import _text
from plane.query._text import (
    STOPWORDS,
    TextIndex,
    TextStats,
    merge_topk,
    phrase_match,
    tokenize,
)

bm25s = pytest.importorskip("bm25s")
Stemmer = pytest.importorskip("Stemmer")
rank_bm25 = pytest.importorskip("rank_bm25")

FAST = settings(max_examples=60, deadline=None)

# small vocabulary: stopwords, stem variants, case, single letters, non-ASCII
WORDS = ["red", "car", "cars", "Car", "blue", "running", "runs", "run", "the", "a", "of", "is",
         "dog", "dogs", "cat", "fast", "x", "café", "naïve", "Straße", "42", "b2b"]
SEPS = [" ", " ", " ", ", ", "-", "\n", "'s ", ". "]


@st.composite
def texts(draw: st.DrawFn, max_words: int = 8) -> str | None:
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return None
    if kind == 1:
        return ""
    words = draw(st.lists(st.sampled_from(WORDS), max_size=max_words))
    out = ""
    for w in words:
        out += w + draw(st.sampled_from(SEPS))
    return out


corpora = st.lists(texts(), max_size=30)
queries = st.lists(st.sampled_from(WORDS), min_size=0, max_size=4).map(" ".join)


def ref_bm25(docs: list[list[str]], query: list[str], k1: float = 1.5,
             b: float = 0.75) -> list[float]:
    """Straightforward BM25 (Lucene idf), float64, summed over query terms in sorted order."""
    n = len(docs)
    total = sum(len(d) for d in docs)
    qtf = Counter(query)
    out = [0.0] * n
    if not total:
        return out
    avgdl = total / n
    tfs = [Counter(d) for d in docs]
    for t in sorted(qtf):
        df = sum(1 for c in tfs if t in c)
        if not df:
            continue
        w = math.log1p((n - df + 0.5) / (df + 0.5)) * qtf[t] * (k1 + 1.0)
        for i, c in enumerate(tfs):
            if t in c:
                tf = float(c[t])
                out[i] += w * tf / (tf + (k1 * (1.0 - b) + k1 * b / avgdl * len(docs[i])))
    return out


def ranked(ids: np.ndarray, scores: np.ndarray, k: int | None) -> tuple[np.ndarray, np.ndarray]:
    s32 = np.asarray(scores, np.float32)
    keep = s32 > 0
    ids, s32 = np.asarray(ids, np.int64)[keep], s32[keep]
    order = np.lexsort((ids, -s32))[:k]
    return ids[order], s32[order]


def dense(ids: np.ndarray, scores: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n)
    out[ids] = scores
    return out


def zipf_corpus(n: int, seed: int, vocab: int = 300) -> list[str | None]:
    rng = np.random.default_rng(seed)
    stems = ["".join(rng.choice(list("abcdefghijklmnoprstu"), rng.integers(2, 7)))
             for _ in range(vocab)]
    suffixes = ["", "", "", "s", "ing", "ed", "ly"]
    words = [s + rng.choice(suffixes) for s in stems] + sorted(STOPWORDS)
    p = 1.0 / np.arange(1, len(words) + 1)
    rng.shuffle(p)
    p /= p.sum()
    out: list[str | None] = []
    for _ in range(n):
        r = rng.random()
        if r < 0.01:
            out.append(None)
        elif r < 0.02:
            out.append("")
        else:
            ws = rng.choice(words, rng.integers(1, 25), p=p)
            out.append(" ".join(w.capitalize() if rng.random() < 0.1 else w for w in ws))
    return out


# -- tokenizer ---------------------------------------------------------------------------------

def test_tokenize_examples() -> None:
    assert tokenize("The Running DOGS, and a cat's toy!") == ["run", "dog", "cat", "toy"]
    assert tokenize("") == [] and tokenize(None) == [] and tokenize("the of a") == []
    assert tokenize("Café naïve STRASSE b2b 42 x") == ["café", "naïv", "strass", "b2b", "42"]
    assert STOPWORDS == set(bm25s.stopwords.STOPWORDS_EN)


@FAST
@given(st.lists(st.one_of(texts(), st.text(max_size=40)), max_size=5))
def test_tokenize_matches_bm25s(batch: list[str | None]) -> None:
    strs = [t or "" for t in batch]
    ref = bm25s.tokenize(strs, stopwords="en", stemmer=Stemmer.Stemmer("english"),
                         return_ids=False, show_progress=False)
    assert [tokenize(t) for t in strs] == ref
    ids, lens, terms = _text._analyze_batch(batch)  # the batch path of build agrees
    flat = [terms[i] for i in ids if i >= 0]
    assert flat == [w for r in ref for w in r]
    assert lens.tolist() == [len(_text._TOKEN_RE.findall(t.lower())) for t in strs]


def test_tokenize_without_stemmer(monkeypatch: pytest.MonkeyPatch) -> None:
    idx = TextIndex.build(["running dogs"], np.array([7]))
    monkeypatch.setattr(_text, "_StemmerClass", None)
    assert tokenize("The running dogs") == ["running", "dogs"]
    assert "nostem" in _text.analyzer() and idx.analyzer != _text.analyzer()
    with pytest.raises(QueryError, match="analyzer"):
        idx.search("dogs")
    plain = TextIndex.build(["running dogs"], np.array([7]))
    assert plain.search("dogs")[0].tolist() == [7]


def test_tokenize_threads() -> None:
    doc = " ".join(WORDS * 20)
    want = tokenize(doc)
    got: list[list[str]] = []

    def work() -> None:
        for _ in range(50):
            got.append(tokenize(doc))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 200 and all(g == want for g in got)


# -- scores ------------------------------------------------------------------------------------

def test_hand_computed() -> None:
    # tokens: [cat, dog], [cat, cat, mous], [bird]; N=3, avgdl=2, df(cat)=2
    idx = TextIndex.build(["cat dog", "Cat, cat & mouse", "bird"], np.array([10, 11, 12]))
    ids, scores = idx.search("cat")
    idf = math.log(1 + (3 - 2 + 0.5) / (2 + 0.5))  # ln 1.6
    s10 = idf * 1 * 2.5 / (1 + 1.5 * (1 - 0.75 + 0.75 * 2 / 2))  # = idf * 1
    s11 = idf * 2 * 2.5 / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / 2))  # = idf * 5 / 4.0625
    assert ids.tolist() == [11, 10]
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    np.testing.assert_allclose(scores, [s11, s10], rtol=1e-7)
    np.testing.assert_allclose(scores, [0.5784660, 0.4700036], rtol=1e-6)
    # a repeated query term counts twice; unknown terms and stopwords add nothing
    np.testing.assert_allclose(idx.search("cat cat the zebra")[1], 2 * scores, rtol=1e-7)
    assert idx.search("zebra")[0].size == 0 and idx.search("the")[0].size == 0


@pytest.mark.parametrize(("n", "seed"), [(12, 1), (2000, 2)])
@pytest.mark.parametrize(("k1", "b"), [(1.5, 0.75), (1.2, 0.3), (0.9, 1.0)])
def test_scores_match_bm25s(n: int, seed: int, k1: float, b: float) -> None:
    corpus = zipf_corpus(n, seed, vocab=40 if n < 100 else 300)
    toks = [tokenize(t) for t in corpus]
    idx = TextIndex.build(corpus, np.arange(n))
    classic = bm25s.BM25(k1=k1, b=b, method="atire", idf_method="lucene")
    classic.index(toks, show_progress=False)
    lucene = bm25s.BM25(k1=k1, b=b, method="lucene")  # drops the constant (k1 + 1) factor
    lucene.index(toks, show_progress=False)
    rng = np.random.default_rng(seed)
    vocab = sorted({w for d in toks for w in d})
    for _ in range(25):
        q = " ".join(rng.choice(vocab, rng.integers(1, 4)))
        ids, scores = idx.search(q, k1=k1, b=b)
        got = dense(ids, scores, n)
        qt = tokenize(q)
        np.testing.assert_allclose(got, classic.get_scores(qt), rtol=1e-5, atol=0)
        np.testing.assert_allclose(got, lucene.get_scores(qt) * (k1 + 1), rtol=1e-5, atol=0)
        want = ranked(np.arange(n), np.array(ref_bm25(toks, qt, k1, b)), None)
        np.testing.assert_array_equal(ids, want[0])
        np.testing.assert_array_equal(scores, want[1])
        top_ids, top_scores = idx.search(q, k=7, k1=k1, b=b)
        np.testing.assert_array_equal(top_ids, ids[:7])
        np.testing.assert_array_equal(top_scores, scores[:7])


def test_rank_bm25_idf_differs_but_tf_part_agrees() -> None:
    class LuceneOkapi(rank_bm25.BM25Okapi):  # type: ignore[misc,name-defined]
        def _calc_idf(self, nd: dict[str, int]) -> None:
            for word, freq in nd.items():
                self.idf[word] = math.log(1 + (self.corpus_size - freq + 0.5) / (freq + 0.5))

    corpus = zipf_corpus(300, 5, vocab=60)
    toks = [tokenize(t) for t in corpus]
    idx = TextIndex.build(corpus, np.arange(300))
    ref, okapi = LuceneOkapi(toks), rank_bm25.BM25Okapi(toks)
    common = Counter(w for d in toks for w in set(d)).most_common(1)[0][0]
    for q in [common, " ".join(toks[3][:3]), " ".join(toks[7])]:
        got = dense(*idx.search(q), 300)
        np.testing.assert_allclose(got, ref.get_scores(tokenize(q)), rtol=2e-7, atol=0)
    assert not np.allclose(dense(*idx.search(common), 300), okapi.get_scores([common]))


# -- partitions, allowed -----------------------------------------------------------------------

@FAST
@given(corpora, queries, st.data())
def test_partition_invariance(corpus: list[str | None], query: str, data: st.DataObject) -> None:
    n = len(corpus)
    rids = np.array(data.draw(st.lists(st.integers(-10**12, 10**12), min_size=n, max_size=n,
                                       unique=True)), dtype=np.int64)
    if data.draw(st.booleans()):
        rids.sort()
    cuts = sorted(data.draw(st.lists(st.integers(0, n), max_size=4)))
    k = data.draw(st.one_of(st.none(), st.integers(0, 12)))
    allowed = None
    if data.draw(st.booleans()):
        allowed = np.sort(data.draw(st.lists(st.sampled_from(rids.tolist() or [0]), max_size=n)))
    whole = TextIndex.build(corpus, rids)
    bounds = [0, *cuts, n]
    parts = [TextIndex.build(corpus[lo:hi], rids[lo:hi]) for lo, hi in pairwise(bounds)]
    terms = tokenize(query)
    g = TextStats.combine_all(p.stats(terms) for p in parts)
    assert g == whole.stats(terms)
    merged = merge_topk([p.search(query, k=k, allowed=allowed, stats=g) for p in parts], k)
    ids, scores = whole.search(query, k=k, allowed=allowed)
    np.testing.assert_array_equal(merged[0], ids)
    np.testing.assert_array_equal(merged[1], scores)  # bit-identical
    assert merged[1].dtype == np.float32
    # and equal to the plain reference
    ref = ref_bm25([tokenize(t) for t in corpus], terms)
    mask = np.ones(n, bool) if allowed is None else np.isin(rids, allowed)
    want = ranked(rids[mask], np.array(ref)[mask], k)
    np.testing.assert_array_equal(ids, want[0])
    np.testing.assert_array_equal(scores, want[1])


def test_partition_invariance_mixed_paths() -> None:
    # a large index takes the sparse accumulator for rare terms; tiny partitions the dense one
    n = 3000
    corpus = zipf_corpus(n, 21, vocab=400)
    toks = [tokenize(t) for t in corpus]
    rids = np.arange(n, dtype=np.int64) * 2
    whole = TextIndex.build(corpus, rids)
    df = Counter(w for d in toks for w in set(d))
    rare = [w for w, c in df.items() if 2 <= c <= 20][:6]
    common = [w for w, _ in df.most_common(3)]
    bounds = [0, 5, 17, 18, 900, 2500, n]
    parts = [TextIndex.build(corpus[lo:hi], rids[lo:hi]) for lo, hi in pairwise(bounds)]
    for q in [" ".join(rare[:2]), " ".join(rare[2:6]), " ".join(common), f"{rare[0]} {common[0]}"]:
        g = TextStats.combine_all(p.stats(tokenize(q)) for p in parts)
        for k in (None, 10):
            merged = merge_topk([p.search(q, k=k, stats=g) for p in parts], k)
            ids, scores = whole.search(q, k=k)
            np.testing.assert_array_equal(merged[0], ids)
            np.testing.assert_array_equal(merged[1], scores)
            assert ids.size


def test_allowed_prefilter_selective() -> None:
    n = 10_000
    corpus = zipf_corpus(n, 11, vocab=300)
    toks = [tokenize(t) for t in corpus]
    rng = np.random.default_rng(3)
    rids = np.arange(n, dtype=np.int64) * 3 + 1_000
    idx = TextIndex.build(corpus, rids)
    allowed = np.sort(rng.choice(rids, n // 100, replace=False))
    allowed_set = set(allowed.tolist())
    df = Counter(w for d in toks for w in set(d))
    checked = 0
    for term, _ in df.most_common(40)[::4]:
        q = term
        full = np.array(ref_bm25(toks, tokenize(q)))
        mask = np.isin(rids, allowed)
        matching = int(np.count_nonzero(full[mask] > 0))
        for k in (10, 1000):
            ids, scores = idx.search(q, k=k, allowed=allowed)
            assert ids.size == min(k, matching)
            assert all(int(r) in allowed_set for r in ids)
            want = ranked(rids[mask], full[mask], k)
            np.testing.assert_array_equal(ids, want[0])
            np.testing.assert_array_equal(scores, want[1])
            # filtering after the top-k would have lost results
            if k == 10 and matching >= 10:
                post = [r for r in idx.search(q, k=10)[0] if int(r) in allowed_set]
                assert len(post) < 10
                checked += 1
        # unsorted / duplicated allowed lists are accepted
        shuffled = np.concatenate([allowed[::-1], allowed[:5]])
        np.testing.assert_array_equal(idx.search(q, k=10, allowed=shuffled)[0],
                                      idx.search(q, k=10, allowed=allowed)[0])
    assert checked >= 3
    assert idx.search(toks[0][0], k=10, allowed=np.array([], np.int64))[0].size == 0


def test_stats_errors_and_k() -> None:
    idx = TextIndex.build(["red car", "blue car"], np.array([1, 2]))
    with pytest.raises(ValueError, match="document frequency"):
        idx.search("red car", stats=TextStats(2, 4, {"car": 2}))
    with pytest.raises(ValueError, match="inconsistent"):
        idx.search("red", stats=TextStats(0, 0, {"red": 1}))
    with pytest.raises(ValueError, match="k must be"):
        idx.search("red", k=-1)
    assert idx.search("red", k=0)[0].size == 0
    for k1, b in [(-0.1, 0.75), (1.2, 1.5), (1.2, -0.1)]:
        with pytest.raises(ValueError, match="k1"):
            idx.search("red", k1=k1, b=b)
    a, b_ = idx.stats(["car", "red", "zebra"]), TextStats(5, 9, {"car": 1, "sky": 2})
    assert a.combine(b_) == TextStats(7, 13, {"car": 3, "red": 1, "zebra": 0, "sky": 2})
    assert TextStats().combine(a) == a


def test_merge_topk() -> None:
    p1 = (np.array([5, 1, 9]), np.array([0.5, 0.9, 0.5], np.float32))
    p2 = (np.array([2, 7]), np.array([0.5, 0.95], np.float32))
    ids, scores = merge_topk([p1, p2], 4)
    assert ids.tolist() == [7, 1, 2, 5] and scores.dtype == np.float32
    assert merge_topk([p1, p2], None)[0].tolist() == [7, 1, 2, 5, 9]
    assert merge_topk([p1, p2], 2, higher_is_better=False)[0].tolist() == [2, 5]
    assert merge_topk([p1, p2], 0)[0].size == 0 and merge_topk([], 3)[0].size == 0
    assert merge_topk([(np.zeros(0, np.int64), np.zeros(0))], 3)[0].size == 0
    with pytest.raises(ValueError):
        merge_topk([p1], -1)


@FAST
@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 5)), max_size=40, unique_by=lambda
                x: x[0]), st.integers(1, 6), st.one_of(st.none(), st.integers(0, 45)),
       st.booleans())
def test_merge_topk_reference(rows: list[tuple[int, int]], n_parts: int, k: int | None,
                              higher: bool) -> None:
    parts = [(np.array([r for r, _ in rows[i::n_parts]], np.int64),
              np.array([s / 4 for _, s in rows[i::n_parts]], np.float64)) for i in range(n_parts)]
    ids, scores = merge_topk(parts, k, higher_is_better=higher)
    want = sorted(rows, key=lambda x: ((-x[1] if higher else x[1]), x[0]))[:k]
    assert ids.tolist() == [r for r, _ in want]
    assert scores.tolist() == [s / 4 for _, s in want]


# -- contains_all, phrase_match ----------------------------------------------------------------

def ref_parse(query: str) -> tuple[list[list[str]], list[str]]:
    pieces = query.split('"')
    phrases, plain = [], []
    for i, piece in enumerate(pieces):
        if i % 2 == 1 and i + 1 < len(pieces):  # between a pair of quotes
            phrases.append(tokenize(piece))
        else:
            plain.append(piece)
    return phrases, tokenize(" ".join(plain))


def ref_phrase_match(text: str | None, query: str) -> bool:
    phrases, terms = ref_parse(query)
    needed = [p for p in phrases if p]
    if not needed and not terms:
        return False
    toks = tokenize(text)
    if not all(t in toks for t in terms):
        return False
    for p in needed:
        if not any(toks[i:i + len(p)] == p for i in range(len(toks))):
            return False
    return True


phrase_queries = st.lists(
    st.one_of(st.sampled_from(WORDS),
              st.lists(st.sampled_from(WORDS), max_size=3).map(lambda ws: '"' + " ".join(ws) + '"'),
              st.just('"')),
    max_size=4).map(" ".join)


@FAST
@given(corpora, queries, st.data())
def test_contains_all(corpus: list[str | None], query: str, data: st.DataObject) -> None:
    n = len(corpus)
    rids = np.arange(n, dtype=np.int64)[::-1] * 7  # unsorted row ids
    idx = TextIndex.build(corpus, rids)
    allowed = None
    if data.draw(st.booleans()):
        allowed = np.sort(data.draw(st.lists(st.sampled_from(rids.tolist() or [0]))))
    q = set(tokenize(query))
    want = sorted(int(r) for r, t in zip(rids, corpus) if q and q <= set(tokenize(t))
                  and (allowed is None or r in allowed))
    got = idx.contains_all(query, allowed=allowed)
    assert got.dtype == np.int64 and got.tolist() == want


@FAST
@given(corpora, phrase_queries)
def test_phrase_match(corpus: list[str | None], query: str) -> None:
    got = phrase_match(corpus, query)
    assert got.dtype == np.bool_ and got.shape == (len(corpus),)
    assert got.tolist() == [ref_phrase_match(t, query) for t in corpus]
    # contains_all over the whole query is a superset: it gives the CONTAINS candidates
    idx = TextIndex.build(corpus, np.arange(len(corpus)))
    cand = set(idx.contains_all(query).tolist())
    assert {i for i, m in enumerate(got) if m} <= cand


def test_phrase_match_examples() -> None:
    texts = ["the red car", "a car that is red", None, "Red-car!", "red cars", "red the car"]
    assert phrase_match(texts, '"red car"').tolist() == [True, False, False, True, True, True]
    assert phrase_match(texts, 'red car').tolist() == [True, True, False, True, True, True]
    assert phrase_match(texts, '"car red"').tolist() == [False, True] + [False] * 4  # no stops
    assert phrase_match(texts, '"" the').tolist() == [False] * 6
    assert phrase_match(texts, 'that "red car').tolist() == [True, True, False, True, True, True]


# -- serialization, edge cases -----------------------------------------------------------------

@FAST
@given(corpora, queries)
def test_bytes_roundtrip(corpus: list[str | None], query: str) -> None:
    rids = np.arange(len(corpus), dtype=np.int64) * -5 + 3
    idx = TextIndex.build(corpus, rids)
    data = idx.to_bytes()
    back = TextIndex.from_bytes(data)
    assert back.to_bytes() == data and TextIndex.build(corpus, rids).to_bytes() == data
    assert back.nbytes == idx.nbytes and back.terms == idx.terms and len(back) == len(idx)
    np.testing.assert_array_equal(back.row_ids, rids)
    terms = tokenize(query)
    assert back.stats(terms) == idx.stats(terms)
    for a, b_ in zip(back.search(query, k=5), idx.search(query, k=5)):
        np.testing.assert_array_equal(a, b_)
    np.testing.assert_array_equal(back.contains_all(query), idx.contains_all(query))
    for view in (bytearray(data), memoryview(data)):
        assert TextIndex.from_bytes(view).to_bytes() == data


def test_bytes_corrupt() -> None:
    data = TextIndex.build(["red car", None, "blue sky"], np.array([1, 2, 3])).to_bytes()
    assert data[:4] == b"PLTX" and len(data) % 8 == 0
    with pytest.raises(ValueError, match="magic"):
        TextIndex.from_bytes(b"XXXX" + data[4:])
    with pytest.raises(FormatVersionError):
        TextIndex.from_bytes(data[:4] + (99).to_bytes(2, "little") + data[6:])
    for cut in (0, 10, 40, len(data) - 9):
        with pytest.raises(ValueError):
            TextIndex.from_bytes(data[:cut])
    hlen = int.from_bytes(data[8:12], "little")
    with pytest.raises(ValueError, match="header"):
        TextIndex.from_bytes(data[:12] + b"{" * hlen + data[12 + hlen:])


def test_empty_corpus() -> None:
    idx = TextIndex.build([], np.zeros(0, np.int64))
    assert len(idx) == 0 and idx.n_terms == 0 and idx.total_len == 0
    assert idx.stats(["car"]) == TextStats(0, 0, {"car": 0})
    ids, scores = idx.search("car", k=3)
    assert ids.size == 0 and ids.dtype == np.int64 and scores.dtype == np.float32
    assert idx.contains_all("car").size == 0
    back = TextIndex.from_bytes(idx.to_bytes())
    assert len(back) == 0 and back.search("car")[0].size == 0 and back.terms == []
    assert phrase_match([], "car").shape == (0,)


def test_none_and_empty_docs() -> None:
    idx = TextIndex.build([None, "", "the of", "cat"], np.array([4, 3, 2, 1]))
    assert idx.stats(["cat"]) == TextStats(4, 1, {"cat": 1})  # empty docs count in N
    ids, scores = idx.search("cat")
    # N=4, df=1, avgdl=1/4, dl=1: norm = 1.5 * (0.25 + 0.75 * 4)
    want = math.log(1 + 3.5 / 1.5) * 2.5 / (1 + 1.5 * (0.25 + 0.75 * 4))
    assert ids.tolist() == [1]
    np.testing.assert_allclose(scores, [want], rtol=1e-7)
    toks = [tokenize(t) for t in [None, "", "the of", "cat"]]
    ref = bm25s.BM25(method="atire", idf_method="lucene")
    ref.index(toks, show_progress=False)
    np.testing.assert_allclose(dense(np.array([3]), scores, 4), ref.get_scores(["cat"]),
                               rtol=1e-5)
    assert idx.contains_all("cat").tolist() == [1]
    assert idx.contains_all("the").size == 0 and idx.search("")[0].size == 0
    assert phrase_match([None, "", "the of", "cat"], "cat").tolist() == [False] * 3 + [True]


def test_build_validation() -> None:
    with pytest.raises(ValueError, match="row ids"):
        TextIndex.build(["a", "b"], np.array([1]))
    with pytest.raises(ValueError, match="unique"):
        TextIndex.build(["red", "car"], np.array([1, 1]))
    with pytest.raises(TypeError):
        TextIndex.build(["red", b"car"], np.array([1, 2]))  # type: ignore[list-item]
    idx = TextIndex.build(["red car"] * 3, [5, 6, 7])
    assert idx.row_ids.dtype == np.int64 and not idx.row_ids.flags.writeable
    assert idx.nbytes > 0 and "n_docs=3" in repr(idx)
