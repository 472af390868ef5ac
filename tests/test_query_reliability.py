"""Regressions of the query reliability sweep (issue #12, items 5 and 6): LIKE in linear time,
and a QueryError naming the expression and the fix (or the right answer) where raw numpy /
faiss / Python errors used to escape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _oracles import like_ref

import plane
from plane import QueryError

pytest.importorskip("faiss")

N = 60


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> plane.Dataset:
    rng = np.random.default_rng(0)
    d = plane.create(tmp_path_factory.mktemp("rel") / "d")
    d.create_tensor("t", htype="text")
    d.create_tensor("j", htype="json")
    d.create_tensor("i", dtype="int32")
    d.create_tensor("u", dtype="uint8")
    d.create_tensor("flag", dtype="bool")
    d.create_tensor("emb", htype="embedding")  # no fixed shape: width known from the rows
    d.create_tensor("rag", dtype="float32")
    d.extend({
        "t": ["a" * (40 + k % 3) if k % 4 else f"ab{k}\n" for k in range(N)],
        "j": [{"s": "x", "l": [1, 2]} for _ in range(N)],
        "i": np.arange(N, dtype=np.int32),
        "u": (np.arange(N) % 7).astype(np.uint8),
        "flag": np.arange(N) % 3 == 0,
        "emb": rng.standard_normal((N, 8)).astype(np.float32),
        "rag": [np.ones(1 + k % 3, np.float32) for k in range(N)],
    })
    d.commit("rows")
    return d


def _ids(view: Any) -> list[int]:
    return [int(x) for x in view.ids]


@pytest.mark.timeout(60)
def test_like_with_twenty_percent_signs_is_linear(ds: plane.Dataset) -> None:
    # a backtracking regex took minutes here: 40+ 'a's never end in 'b'
    for pat in ("%a" * 20 + "%b", "%a" * 20 + "%", "_%" * 16 + "a"):
        sql = f"SELECT id WHERE t LIKE '{pat}'"
        texts = ds["t"].numpy(aslist=True)
        want = [int(r) for r, s in zip(ds.row_ids, texts) if like_ref(s, pat)]
        assert _ids(ds.query(sql)) == want and (want or pat.endswith("b"))
        assert "rows match" in ds.explain(sql)


def test_like_matches_the_whole_text_including_a_trailing_newline(ds: plane.Dataset) -> None:
    # `$` of the old regex also matched before a final newline
    assert _ids(ds.query("SELECT id WHERE t LIKE 'ab0'")) == []
    assert _ids(ds.query("SELECT id WHERE t LIKE 'ab0_'")) == [int(ds.row_ids[0])]


def test_conditions_on_constants_hold_for_every_row_or_none(ds: plane.Dataset) -> None:
    every, none = [int(x) for x in ds.row_ids], []
    for where, want in (("1 = 1", every), ("t = '' OR 1=1", every), ("1 = 2", none),
                        ("NOT (1 > 2)", every), ("NULL IS NULL", every),
                        ("'abc' LIKE 'a%'", every), ("2 IN (1, 3)", none),
                        ("1 < 'a'", none)):
        assert _ids(ds.query(f"SELECT id WHERE {where}")) == want, where
        assert f"{len(want)} of {N} rows match" in ds.explain(f"SELECT id WHERE {where}")


def test_a_number_compared_with_a_json_list_is_false_not_an_error(ds: plane.Dataset) -> None:
    assert _ids(ds.query("SELECT id WHERE i = j.l")) == []
    assert len(ds.query("SELECT id WHERE i != j.l")) == N


def test_order_by_desc_on_unsigned_and_bool_tensors(ds: plane.Dataset) -> None:
    u = ds["u"].numpy().tolist()
    got = ds.query("SELECT u ORDER BY u DESC")["u"].tolist()
    assert got == sorted(u, reverse=True)  # -uint8 wrapped around before
    flags = ds.query("SELECT flag ORDER BY flag DESC")["flag"].tolist()
    assert flags == sorted(flags, reverse=True) and flags[0] and not flags[-1]


_SQL = "SELECT id{where} ORDER BY {fn}(emb, $q) {dir} LIMIT 5"
_FN = {"cosine": ("COSINE_SIMILARITY", "DESC"), "l2": ("L2_DISTANCE", "ASC"),
       "ip": ("INNER_PRODUCT", "DESC")}


def _wrong_width(d: plane.Dataset, metric: str) -> None:
    fn, direction = _FN[metric]
    q = np.ones(5, np.float32)
    for where in ("", " WHERE i < 50", " WHERE i < 0"):
        sql = _SQL.format(where=where, fn=fn, dir=direction)
        for run in (d.query, d.explain):
            with pytest.raises(QueryError, match=rf"{fn}\(emb\) has 5 numbers but 'emb' "
                               r"holds vectors of shape \(8,\).*pass a vector of 8"):
                run(sql, {"q": q})
    for search in (lambda: d.search().nearest("emb", q, metric=metric),  # refused at once
                   lambda: d.search().where("i < 50").nearest("emb", q, metric=metric)):
        with pytest.raises(QueryError, match="pass a vector of 8"):
            search().run()


@pytest.mark.parametrize("kind", [None, "flat", "ivf_flat", "hnsw"])
def test_a_wrong_width_query_vector_is_a_query_error_on_every_path(
        tmp_path: Path, kind: str | None) -> None:
    rng = np.random.default_rng(1)
    d = plane.create(tmp_path / "d")
    d.create_tensor("emb", htype="embedding")
    d.create_tensor("i", dtype="int32")
    d.extend({"emb": rng.standard_normal((300, 8)).astype(np.float32),
              "i": np.arange(300, dtype=np.int32)})
    d.commit("rows")
    for metric in ("cosine", "l2", "ip"):
        if kind is not None:
            d.create_index("emb", kind=kind, metric=metric)
        _wrong_width(d, metric)  # the prepared path, the index, the exact fallback
        good = d.query(_SQL.format(where="", fn=_FN[metric][0], dir=_FN[metric][1]),
                       {"q": np.ones(8, np.float32)})
        assert len(good) == 5


def test_bad_query_vectors_are_query_errors(ds: plane.Dataset) -> None:
    sql = "SELECT id ORDER BY COSINE_SIMILARITY(emb, $q) DESC LIMIT 3"
    for bad, why in (([np.nan] * 8, "NaN or infinite"), ([1e39] * 8, "NaN or infinite"),
                     (np.ones(8, np.complex64), "not a list of numbers"),
                     (["a"] * 8, "not a list of numbers"), ([], "is empty"),
                     ([[1, 2], [3]], "not a list of numbers")):
        with pytest.raises(QueryError, match=why):
            ds.query(sql, {"q": bad})
        with pytest.raises(QueryError, match=why):
            ds.search().nearest("emb", bad).run()


def test_no_candidates_for_a_vector_score_is_an_empty_answer(ds: plane.Dataset) -> None:
    sql = "SELECT id WHERE i < 0 ORDER BY L2_DISTANCE(emb, $q) LIMIT 3"
    assert len(ds.query(sql, {"q": np.ones(8, np.float32)})) == 0


def test_a_vector_score_on_a_ragged_tensor_is_a_query_error(ds: plane.Dataset) -> None:
    sql = "SELECT id ORDER BY COSINE_SIMILARITY(rag, $q) DESC LIMIT 3"
    with pytest.raises(QueryError, match=r"'rag' has vectors of different shapes.*"
                                         r"SHAPE\(rag\)\[0\] = 1"):
        ds.query(sql, {"q": np.ones(1, np.float32)})
    # one shape among the candidates: a valid query
    got = ds.query("SELECT id WHERE SHAPE(rag)[0] = 2 ORDER BY COSINE_SIMILARITY(rag, $q) "
                   "DESC LIMIT 3", {"q": np.ones(2, np.float32)})
    assert len(got) == 3


@pytest.mark.parametrize("tensor", ["j", "i", "emb"])
def test_contains_and_bm25_on_a_non_text_tensor_are_query_errors(
        ds: plane.Dataset, tensor: str) -> None:
    for sql in (f"SELECT id WHERE CONTAINS({tensor}, 'xx')",
                f"SELECT id ORDER BY BM25({tensor}, 'xx') DESC LIMIT 3"):
        with pytest.raises(QueryError, match=rf"searches a text tensor; '{tensor}' is"):
            ds.query(sql)
    with pytest.raises(QueryError, match="searches a text tensor"):
        ds.search().contains(tensor, "xx").run()


def test_a_json_field_as_a_function_column_is_a_positioned_error(ds: plane.Dataset) -> None:
    with pytest.raises(QueryError, match=r"got the json field `j.s`.*column 26"):
        ds.query("SELECT id WHERE CONTAINS(j.s, 'xx')")


def test_a_parameter_that_is_not_one_value_is_a_query_error(ds: plane.Dataset) -> None:
    for p in ([1, 2], np.ones(3), {"a": 1}):
        with pytest.raises(QueryError, match=r"parameter \$p is .*pass a single value"):
            ds.query("SELECT id WHERE i = $p", {"p": p})


def test_builder_limits_are_checked(ds: plane.Dataset) -> None:
    for call in (lambda: ds.search().limit("3"), lambda: ds.search().offset(-1),  # type: ignore
                 lambda: ds.search().limit(1.5), lambda: ds.search().fuse("rrf", k=-1)):
        with pytest.raises(QueryError, match="must be an integer >= 0"):
            call()


def test_params_that_are_not_a_mapping_of_names_are_query_errors(ds: plane.Dataset) -> None:
    sql = "SELECT id WHERE i = $p"
    for run in (ds.query, ds.explain):
        with pytest.raises(QueryError, match="params must be a mapping"):
            run(sql, [1, 2])  # type: ignore[arg-type]
        with pytest.raises(QueryError, match=r"params names are strings, got 1 \(int\)"):
            run(sql, {"p": 2, 1: 3})  # type: ignore[dict-item]


def test_explain_says_when_a_similarity_is_ordered_worst_first() -> None:
    """ORDER BY COSINE_SIMILARITY(...) without DESC returns the least similar rows first, as
    SQL's ASC does; explain now says so and names the fix (#15 item 11)."""
    ds = plane.create("mem://asc-similarity")
    ds.create_tensor("e", htype="embedding", dtype="float32")
    ds.extend({"e": np.eye(4, dtype=np.float32)})
    ds.commit("c")
    q = {"q": np.array([1, 0, 0, 0], np.float32)}
    asc = ds.explain("SELECT * ORDER BY COSINE_SIMILARITY(e, $q) LIMIT 1", q)
    assert "the least similar rows first (write DESC for the nearest)" in asc
    desc = ds.explain("SELECT * ORDER BY COSINE_SIMILARITY(e, $q) DESC LIMIT 1", q)
    assert "least similar" not in desc
    assert ds.query("SELECT * ORDER BY COSINE_SIMILARITY(e, $q) DESC LIMIT 1", q).ids[0] == \
        ds.row_ids[0]
