"""Full-text index of a text tensor: a partitionable BM25 inverted index.

An index covers one *partition* (a contiguous range of rows of a dataset version, each row with
a stable int64 row id). Queries over many partitions use exact global statistics: gather
``idx.stats(tokenize(query))`` from every partition, ``combine`` them and pass the result as
``search(..., stats=...)``; then ``merge_topk`` the per-partition answers. A document's score
is then the same whichever way the rows were partitioned.

Analysis (``tokenize``): lower-case; words of two or more unicode word characters
(``\\w\\w+``); drop Lucene's 33 English ``STOPWORDS``; Snowball English stemming when
PyStemmer is importable. Token for token what ``bm25s.tokenize(..., stopwords="en",
stemmer=Stemmer.Stemmer("english"))`` gives (tested); our own few lines because bm25s is a test
dependency only and ``phrase_match`` needs each document's tokens in order. The analyzer is
recorded in every index; searching one built with another analyzer raises ``QueryError``.

Scoring: BM25 with Lucene's idf ``ln(1 + (N - df + 0.5) / (df + 0.5))`` and the classic
``(k1 + 1)`` numerator (bm25s ``idf_method="lucene"``, ``method="atire"``). Empty documents
count in N and match nothing; a query with no terms after analysis matches nothing; a
``"double-quoted"`` span is a phrase (consecutive tokens, stopwords removed on both sides).

The serialized form (``to_bytes``/``from_bytes``) is specified in FORMAT.md ("The BM25 index
partition").
"""

from __future__ import annotations

import bisect
import json
import math
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from plane._errors import FormatVersionError, QueryError

try:  # optional: stemming is skipped without it (the analyzer name records which)
    from Stemmer import Stemmer as _StemmerClass
except ImportError:  # pragma: no cover - PyStemmer is installed where tests run
    _StemmerClass = None

__all__ = ["STOPWORDS", "TextIndex", "TextStats", "analyzer", "merge_topk", "phrase_match",
           "tokenize"]

FORMAT_VERSION = 1
_MAGIC = b"PLTX"
_PREFIX = 12  # magic, u16 version, u16 reserved, u32 header length

#: Lucene's English stop set (== ``bm25s.stopwords.STOPWORDS_EN``), matched before stemming.
STOPWORDS: frozenset[str] = frozenset((
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is",
    "it", "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there",
    "these", "they", "this", "to", "was", "will", "with",
))

_TOKEN_RE = re.compile(r"\w\w+")  # == (?u)\b\w\w+\b: a greedy run of >= 2 word chars
_PHRASE_RE = re.compile(r'"([^"]*)"')
_SEP = "\n"  # never inside a token: tokens are \w+ and the stemmer maps letters to letters

I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]
_EMPTY_IDS: I64 = np.zeros(0, np.int64)
_EMPTY_SCORES: F32 = np.zeros(0, np.float32)

_local = threading.local()


def _stemmer() -> Any:
    """This thread's Snowball English stemmer, or None when PyStemmer is not importable."""
    if _StemmerClass is None:
        return None
    st = getattr(_local, "stemmer", None)
    if st is None:
        st = _local.stemmer = _StemmerClass("english")
    return st


def analyzer() -> str:
    """The name of the analysis ``tokenize`` does in this process (stored in each index)."""
    return "tp-v1:lower,word2,stop-en33," + ("snowball-english" if _StemmerClass else "nostem")


def tokenize(text: str | None) -> list[str]:
    """Analyze `text` into terms (see the module docstring); ``None``/``""`` give ``[]``."""
    if not text:
        return []
    words = [w for w in _TOKEN_RE.findall(text.lower()) if w not in STOPWORDS]
    st = _stemmer()
    return list(st.stemWords(words)) if st is not None and words else words


def _analyze_batch(texts: Sequence[str | None]) -> tuple[npt.NDArray[np.int32], I64, list[str]]:
    """Tokenize many texts: (flat term ids, -1 for stopwords; tokens per text; sorted terms).

    Each text costs one lower() and one findall; stopword filtering and stemming are done once
    per distinct word.
    """
    flat: list[str] = []
    extend = flat.extend
    split = _TOKEN_RE.findall
    lens = [0] * len(texts)
    for i, t in enumerate(texts):
        if t:
            if not isinstance(t, str):
                raise TypeError(f"text {i} is {type(t).__name__}, expected str or None")
            words = split(t.lower())
            extend(words)
            lens[i] = len(words)
    distinct = list(dict.fromkeys(flat))
    kept = [w for w in distinct if w not in STOPWORDS]
    st = _stemmer()
    stems: list[str] = list(st.stemWords(kept)) if st is not None and kept else kept
    terms = sorted(set(stems))
    term_id = {t: i for i, t in enumerate(terms)}
    word_id = dict.fromkeys(distinct, -1)
    word_id.update(zip(kept, map(term_id.__getitem__, stems)))
    ids = np.fromiter(map(word_id.__getitem__, flat), dtype=np.int32, count=len(flat))
    return ids, np.asarray(lens, dtype=np.int64), terms


def _narrow(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """`a` (non-negative integers) in the narrowest unsigned little-endian dtype that fits."""
    top = int(a.max()) if a.size else 0
    for dt in ("<u1", "<u2", "<u4"):
        if top <= np.iinfo(dt).max:
            return a.astype(dt)
    return a.astype("<u8")


def _readonly(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a.setflags(write=False)
    return a


def _as_allowed(allowed: npt.ArrayLike) -> I64:
    a = np.asarray(allowed, dtype=np.int64).reshape(-1)
    if a.size > 1 and bool(np.any(a[1:] < a[:-1])):
        a = np.unique(a)
    return a


def _in_sorted(values: I64, sorted_set: I64) -> npt.NDArray[np.bool_]:
    """Mask of `values` found in `sorted_set` (ascending)."""
    if sorted_set.size == 0:
        return np.zeros(values.shape, bool)
    pos = np.searchsorted(sorted_set, values)
    np.minimum(pos, sorted_set.size - 1, out=pos)
    return np.asarray(sorted_set[pos] == values)


def _top(ids: I64, scores: npt.NDArray[Any], k: int | None,
         higher_is_better: bool) -> tuple[I64, npt.NDArray[Any]]:
    """Order (ids, scores) best first, ties by id ascending, and keep the first `k`."""
    if k is not None:
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if k == 0:
            return ids[:0], scores[:0]
    key = -scores if higher_is_better else scores
    if k is not None and k < ids.size:
        kth = np.partition(key, k - 1)[k - 1]
        sel = np.flatnonzero(~(key > kth))  # all ties with the k-th (and NaN when kth is NaN)
        ids, key, scores = ids[sel], key[sel], scores[sel]
    order = np.lexsort((ids, key))[:k]
    return ids[order], scores[order]


def merge_topk(parts: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]], k: int | None,
               higher_is_better: bool = True) -> tuple[I64, npt.NDArray[Any]]:
    """Merge per-partition (ids, scores) into one top-`k` (all when None), ties by id ascending.

    The ids of different parts are assumed disjoint (partitions do not overlap); nothing is
    deduplicated. Scores keep their (common) dtype; float32 when there are no parts.
    """
    if not parts:
        return _EMPTY_IDS.copy(), _EMPTY_SCORES.copy()
    ids = np.concatenate([np.asarray(p[0], dtype=np.int64).reshape(-1) for p in parts])
    scores = np.concatenate([np.asarray(p[1]).reshape(-1) for p in parts])
    if ids.shape != scores.shape:
        raise ValueError(f"{ids.size} ids but {scores.size} scores")
    return _top(ids, scores, k, higher_is_better)


@dataclass(frozen=True)
class TextStats:
    """What BM25 needs globally: document count, total length, df of the query's terms.

    ``TextStats()`` is the identity of ``combine``.
    """

    n_docs: int = 0
    total_len: int = 0
    df: dict[str, int] = field(default_factory=dict)

    def combine(self, other: TextStats) -> TextStats:
        df = dict(self.df)
        for t, c in other.df.items():
            df[t] = df.get(t, 0) + c
        return TextStats(self.n_docs + other.n_docs, self.total_len + other.total_len, df)

    @staticmethod
    def combine_all(stats: Iterable[TextStats]) -> TextStats:
        out = TextStats()
        for s in stats:
            out = out.combine(s)
        return out


class TextIndex:
    """Inverted BM25 index of one partition: sorted vocabulary -> CSR postings (doc, tf)."""

    __slots__ = ("_analyzer", "_doc_len", "_indptr", "_post_doc", "_post_tf", "_row_ids",
                 "_terms", "_total_len", "_vocab_blob")

    def __init__(self, row_ids: I64, doc_len: npt.NDArray[Any], indptr: npt.NDArray[Any],
                 post_doc: npt.NDArray[Any], post_tf: npt.NDArray[Any],
                 terms: list[str] | None, vocab_blob: bytes, total_len: int,
                 analyzer_name: str) -> None:
        self._row_ids = row_ids
        self._doc_len = doc_len
        self._indptr = indptr
        self._post_doc = post_doc
        self._post_tf = post_tf
        self._terms = terms  # decoded lazily from _vocab_blob after from_bytes
        self._vocab_blob = vocab_blob
        self._total_len = total_len
        self._analyzer = analyzer_name

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def build(cls, texts: Sequence[str | None], row_ids: npt.ArrayLike) -> TextIndex:
        """Index `texts` (None/"" are empty documents) whose row ids are `row_ids` (unique)."""
        rids = np.array(row_ids, dtype=np.int64).reshape(-1)
        n = len(texts)
        if rids.size != n:
            raise ValueError(f"{n} texts but {rids.size} row ids")
        if n > 1 and np.unique(rids).size != n:
            raise ValueError("row ids must be unique")
        ids, lens, terms = _analyze_batch(texts)
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        keep = ids >= 0
        ids, doc = ids[keep], doc[keep]
        doc_len = np.bincount(doc, minlength=n)
        order = np.argsort(ids, kind="stable")  # by term, then doc (doc is already ascending)
        ids_s, doc_s = ids[order], doc[order]
        new = np.ones(ids_s.size, dtype=bool)
        if ids_s.size:
            new[1:] = (ids_s[1:] != ids_s[:-1]) | (doc_s[1:] != doc_s[:-1])
        starts = np.flatnonzero(new)
        tf = np.diff(np.append(starts, ids_s.size))
        indptr = np.zeros(len(terms) + 1, dtype=np.int64)
        np.cumsum(np.bincount(ids_s[starts], minlength=len(terms)), out=indptr[1:])
        blob = _SEP.join(terms).encode("utf-8")
        return cls(_readonly(rids), _readonly(_narrow(doc_len)), _readonly(_narrow(indptr)),
                   _readonly(_narrow(doc_s[starts])), _readonly(_narrow(tf)), terms, blob,
                   int(doc_len.sum()), analyzer())

    # -- properties -------------------------------------------------------------------------

    @property
    def row_ids(self) -> I64:
        return self._row_ids

    @property
    def n_docs(self) -> int:
        return int(self._row_ids.size)

    @property
    def n_terms(self) -> int:
        return int(self._indptr.size - 1)

    @property
    def total_len(self) -> int:
        return self._total_len

    @property
    def analyzer(self) -> str:
        return self._analyzer

    @property
    def nbytes(self) -> int:
        return int(self._row_ids.nbytes + self._doc_len.nbytes + self._indptr.nbytes
                   + self._post_doc.nbytes + self._post_tf.nbytes + len(self._vocab_blob))

    def __len__(self) -> int:
        return self.n_docs

    def __repr__(self) -> str:
        return (f"TextIndex(n_docs={self.n_docs}, n_terms={self.n_terms}, "
                f"postings={self._post_doc.size}, nbytes={self.nbytes})")

    @property
    def terms(self) -> list[str]:
        """The sorted vocabulary."""
        if self._terms is None:
            self._terms = self._vocab_blob.decode("utf-8").split(_SEP) if self._vocab_blob else []
            if len(self._terms) != self.n_terms:
                raise ValueError(f"text index vocabulary has {len(self._terms)} terms, "
                                 f"header says {self.n_terms}")
        return self._terms

    def _term(self, term: str) -> int:
        """The vocabulary index of `term`, or -1."""
        terms = self.terms
        i = bisect.bisect_left(terms, term)
        return i if i < len(terms) and terms[i] == term else -1

    def _postings(self, i: int) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        s, e = int(self._indptr[i]), int(self._indptr[i + 1])
        return self._post_doc[s:e], self._post_tf[s:e]

    def _check_analyzer(self) -> None:
        if self._analyzer != analyzer():
            raise QueryError(f"this text index was built with analyzer {self._analyzer!r} but "
                             f"this process analyzes text as {analyzer()!r} (is PyStemmer "
                             "installed in both?); rebuild the index or fix the environment")

    # -- statistics, search -----------------------------------------------------------------

    def stats(self, terms: Sequence[str]) -> TextStats:
        """n_docs, total_len and the df of each of `terms` (already analyzed) in this index."""
        df: dict[str, int] = {}
        for t in terms:
            if t not in df:
                i = self._term(t)
                df[t] = 0 if i < 0 else int(self._indptr[i + 1]) - int(self._indptr[i])
        return TextStats(self.n_docs, self._total_len, df)

    def search(self, query: str, k: int | None = None, allowed: npt.ArrayLike | None = None,
               stats: TextStats | None = None, k1: float = 1.5,
               b: float = 0.75) -> tuple[I64, F32]:
        """BM25 (row_ids, float32 scores) of the documents scoring > 0, best first.

        Ties are broken by row id ascending; `k` keeps the top k (None: all). `allowed`
        (sorted row ids) excludes every other row before the top-k is taken. `stats` are the
        global statistics of the query's terms (default: this index's own).
        """
        self._check_analyzer()
        if k is not None and k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        if not (k1 >= 0 and 0 <= b <= 1):
            raise ValueError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        qtf = Counter(tokenize(query))
        if k == 0 or not qtf:
            return _EMPTY_IDS.copy(), _EMPTY_SCORES.copy()
        if stats is None:
            stats = self.stats(list(qtf))
        # (weight, docs, tfs) per term present here, in sorted-term order (so a document's
        # sum is the same sequence of operations in any partitioning)
        parts: list[tuple[float, npt.NDArray[Any], npt.NDArray[Any]]] = []
        n_global = stats.n_docs
        for t in sorted(qtf):
            i = self._term(t)
            if i < 0 or self._indptr[i + 1] == self._indptr[i]:
                continue
            df = stats.df.get(t)
            if df is None:
                raise ValueError(f"stats lack the document frequency of term {t!r}")
            if not 0 < df <= n_global or stats.total_len <= 0:
                raise ValueError(f"stats are inconsistent with this index for term {t!r}: "
                                 f"df={df}, n_docs={n_global}, total_len={stats.total_len}")
            idf = math.log1p((n_global - df + 0.5) / (df + 0.5))
            docs, tfs = self._postings(i)
            parts.append((idf * qtf[t] * (k1 + 1.0), docs, tfs))
        if not parts:
            return _EMPTY_IDS.copy(), _EMPTY_SCORES.copy()
        avgdl = stats.total_len / n_global
        base, slope = k1 * (1.0 - b), k1 * b / avgdl
        n_post = sum(p[1].size for p in parts)
        dense = len(parts) > 1 and n_post * 16 >= self.n_docs
        positions: list[Any]
        if dense:  # accumulate over the whole partition
            cand: npt.NDArray[Any] = _EMPTY_IDS
            acc = np.zeros(self.n_docs)
            positions = [p[1] for p in parts]
        elif len(parts) == 1:
            cand = parts[0][1]
            acc = np.zeros(cand.size)
            positions = [slice(None)]
        else:  # sparse: accumulate over the union of the postings
            cand = np.unique(np.concatenate([p[1] for p in parts]))
            acc = np.zeros(cand.size)
            positions = [np.searchsorted(cand, p[1]) for p in parts]
        dl = self._doc_len
        for (w, docs, tfs), pos in zip(parts, positions):
            tf = tfs.astype(np.float64)
            acc[pos] += w * tf / (tf + (base + slope * dl[docs]))
        if dense:
            cand = np.flatnonzero(acc)
            acc = acc[cand]
        rids = self._row_ids[cand]
        if allowed is not None:
            keep = _in_sorted(rids, _as_allowed(allowed))
            rids, acc = rids[keep], acc[keep]
        scores = acc.astype(np.float32)
        pos_ = scores > 0
        if not bool(pos_.all()):
            rids, scores = rids[pos_], scores[pos_]
        return _top(rids, scores, k, True)

    def contains_all(self, query: str, allowed: npt.ArrayLike | None = None) -> I64:
        """Sorted row ids whose document contains every term of `query` (none if it has none)."""
        self._check_analyzer()
        terms = sorted(set(tokenize(query)))
        if not terms:
            return _EMPTY_IDS.copy()
        lists = []
        for t in terms:
            i = self._term(t)
            if i < 0:
                return _EMPTY_IDS.copy()
            lists.append(self._postings(i)[0])
        lists.sort(key=len)
        cur = lists[0].astype(np.int64)
        for other in lists[1:]:
            if cur.size == 0:
                break
            pos = np.searchsorted(other, cur)
            np.minimum(pos, other.size - 1, out=pos)
            cur = cur[other[pos] == cur]
        rids = self._row_ids[cur]
        if allowed is not None:
            rids = rids[_in_sorted(rids, _as_allowed(allowed))]
        return np.sort(rids)

    # -- serialization ----------------------------------------------------------------------

    def _arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {"row_ids": self._row_ids.astype("<i8", copy=False),
                "doc_len": self._doc_len, "indptr": self._indptr, "post_doc": self._post_doc,
                "post_tf": self._post_tf,
                "vocab": np.frombuffer(self._vocab_blob, dtype=np.uint8)}

    def to_bytes(self) -> bytes:
        """The serialized index (deterministic: equal indexes give equal bytes)."""
        arrays = self._arrays()
        specs: list[list[Any]] = []
        offset = 0
        for name, a in arrays.items():
            specs.append([name, a.dtype.str, int(a.size), offset])
            offset += -(-a.nbytes // 8) * 8
        header = json.dumps({"n_docs": self.n_docs, "n_terms": self.n_terms,
                             "total_len": self._total_len, "analyzer": self._analyzer,
                             "arrays": specs}, separators=(",", ":"), sort_keys=True).encode()
        header += b" " * (-(len(header) + _PREFIX) % 8)
        out = bytearray(_MAGIC + np.array([FORMAT_VERSION, 0], "<u2").tobytes()
                        + np.array([len(header)], "<u4").tobytes() + header)
        base = len(out)
        out.extend(bytes(offset))
        for (_, _, _, off), a in zip(specs, arrays.values()):
            out[base + off: base + off + a.nbytes] = a.tobytes()
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> TextIndex:
        """Load `to_bytes` output; arrays are read-only views of `data` (no copy of bytes)."""
        buf = bytes(data) if not isinstance(data, bytes) else data
        if len(buf) < _PREFIX or buf[:4] != _MAGIC:
            raise ValueError("not a tensorplane text index (bad magic)")
        version = int(np.frombuffer(buf, "<u2", 1, 4)[0])
        if version > FORMAT_VERSION:
            raise FormatVersionError(f"text index format {version} is newer than this library "
                                     f"reads ({FORMAT_VERSION}); upgrade tensorplane")
        if version < 1:
            raise ValueError(f"bad text index format version {version}")
        hlen = int(np.frombuffer(buf, "<u4", 1, 8)[0])
        if _PREFIX + hlen > len(buf):
            raise ValueError("truncated text index header")
        try:
            head = json.loads(buf[_PREFIX:_PREFIX + hlen])
            base = _PREFIX + hlen
            arrays: dict[str, npt.NDArray[Any]] = {}
            for name, dt, count, off in head["arrays"]:
                dtype = np.dtype(dt)
                if dtype.kind not in "iu" or off < 0 or count < 0:
                    raise ValueError(f"bad array spec for {name}")
                if base + off + count * dtype.itemsize > len(buf):
                    raise ValueError(f"truncated text index: array {name}")
                arrays[name] = np.frombuffer(buf, dtype, count, base + off)
            n, n_terms = int(head["n_docs"]), int(head["n_terms"])
            total_len, analyzer_name = int(head["total_len"]), str(head["analyzer"])
            rids, doc_len, indptr = arrays["row_ids"], arrays["doc_len"], arrays["indptr"]
            post_doc, post_tf = arrays["post_doc"], arrays["post_tf"]
            vocab = arrays["vocab"]
        except (KeyError, TypeError, json.JSONDecodeError) as e:
            raise ValueError(f"corrupt text index header: {e}") from e
        if (rids.size != n or doc_len.size != n or indptr.size != n_terms + 1
                or post_doc.size != post_tf.size or int(indptr[0]) != 0
                or int(indptr[-1]) != post_doc.size or vocab.dtype != np.uint8
                or (n_terms == 0) != (vocab.size == 0)
                or (post_doc.size and int(post_doc.max()) >= n)
                or (indptr.size > 1 and bool(np.any(indptr[1:] < indptr[:-1])))
                or int(doc_len.sum(dtype=np.int64)) != total_len):
            raise ValueError("corrupt text index: inconsistent array sizes")
        return cls(rids.astype(np.int64, copy=False), doc_len, indptr, post_doc, post_tf, None,
                   vocab.tobytes(), total_len, analyzer_name)


def _parse_query(query: str) -> tuple[list[list[str]], list[str]]:
    """(phrases of >= 2 tokens, single terms) of a CONTAINS query."""
    phrases: list[list[str]] = []
    terms: list[str] = []
    for p in _PHRASE_RE.findall(query):
        toks = tokenize(p)
        if len(toks) >= 2:
            phrases.append(toks)
        else:
            terms.extend(toks)
    terms.extend(tokenize(_PHRASE_RE.sub(" ", query)))
    return phrases, terms


def _has_phrase(toks: list[str], phrase: list[str]) -> bool:
    first, n = phrase[0], len(phrase)
    i = -1
    try:
        while True:
            i = toks.index(first, i + 1)
            if toks[i:i + n] == phrase:
                return True
    except ValueError:
        return False


def phrase_match(texts: Sequence[str | None], query: str) -> npt.NDArray[np.bool_]:
    """Mask: each text contains every quoted phrase of `query` consecutively, and every term.

    A query with no terms matches nothing (as ``contains_all``).
    """
    out = np.zeros(len(texts), dtype=bool)
    phrases, terms = _parse_query(query)
    if not phrases and not terms:
        return out
    need = set(terms).union(*phrases)
    for j, text in enumerate(texts):
        toks = tokenize(text)
        if need.issubset(toks) and all(_has_phrase(toks, p) for p in phrases):
            out[j] = True
    return out
