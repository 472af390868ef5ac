"""plane.query._parse: SQL text -> the logical query AST, its errors, and a fuzz test."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plane._errors import QueryError
from plane.query._ast import (
    And,
    Between,
    Bm25,
    Cmp,
    Col,
    Contains,
    Fuse,
    In,
    IsNull,
    Like,
    Lit,
    Not,
    Or,
    OrderItem,
    Param,
    Query,
    RowId,
    SelectItem,
    Shape,
    VectorScore,
)
from plane.query._parse import SUPPORTED_FUNCTIONS, parse

x, y = Col("x"), Col("y")
EMB, CAP = Col("embedding"), Col("caption")
COS_Q = VectorScore("cosine", EMB, Param("q"))
BM = Bm25(CAP, Lit("red car"))


def where(text: str, **kw: Any) -> Any:
    return parse(f"SELECT x WHERE {text}", **kw).where


# ---- WHERE: every predicate and operand -------------------------------------------------

WHERE_CASES = [
    ("x = 1", Cmp("=", x, Lit(1))),
    ("x != 1", Cmp("!=", x, Lit(1))),
    ("x <> 1", Cmp("!=", x, Lit(1))),
    ("x < 1", Cmp("<", x, Lit(1))),
    ("x <= 1", Cmp("<=", x, Lit(1))),
    ("x > 1", Cmp(">", x, Lit(1))),
    ("x >= 1", Cmp(">=", x, Lit(1))),
    ("5 < x", Cmp("<", Lit(5), x)),
    ("x = y", Cmp("=", x, y)),
    ("x = 'dog'", Cmp("=", x, Lit("dog"))),
    ("x = 'it''s'", Cmp("=", x, Lit("it's"))),
    ("x = 1.5", Cmp("=", x, Lit(1.5))),
    ("x = -2", Cmp("=", x, Lit(-2))),
    ("x = -2.5", Cmp("=", x, Lit(-2.5))),
    ("x = 1e3", Cmp("=", x, Lit(1000.0))),
    ("x = .5", Cmp("=", x, Lit(0.5))),
    ("x = TRUE", Cmp("=", x, Lit(True))),
    ("x = false", Cmp("=", x, Lit(False))),
    ("x = NULL", Cmp("=", x, Lit(None))),
    ("(x) = (1)", Cmp("=", x, Lit(1))),
    ("x IN (1, 'a', TRUE)", In(x, (Lit(1), Lit("a"), Lit(True)))),
    ("x NOT IN (1, 2)", In(x, (Lit(1), Lit(2)), negated=True)),
    ("NOT x IN (1)", In(x, (Lit(1),), negated=True)),
    ("x BETWEEN 1 AND 5", Between(x, Lit(1), Lit(5))),
    ("x NOT BETWEEN 1 AND 5", Between(x, Lit(1), Lit(5), negated=True)),
    ("x IS NULL", IsNull(x)),
    ("x IS NOT NULL", IsNull(x, negated=True)),
    ("NOT x IS NULL", IsNull(x, negated=True)),
    ("x LIKE 'a%'", Like(x, Lit("a%"))),
    ("x NOT LIKE 'a%'", Like(x, Lit("a%"), negated=True)),
    ("NOT (x LIKE 'a%')", Like(x, Lit("a%"), negated=True)),
    ("NOT x NOT LIKE 'a%'", Like(x, Lit("a%"))),
    ("NOT x = 1", Not(Cmp("=", x, Lit(1)))),
    ("NOT (x = 1 OR y = 2)", Not(Or((Cmp("=", x, Lit(1)), Cmp("=", y, Lit(2)))))),
    ("x = 1 AND y = 2", And((Cmp("=", x, Lit(1)), Cmp("=", y, Lit(2))))),
    ("x = 1 AND y = 2 AND x < 3",
     And((Cmp("=", x, Lit(1)), Cmp("=", y, Lit(2)), Cmp("<", x, Lit(3))))),
    ("x = 1 AND (y = 2 AND x < 3)",
     And((Cmp("=", x, Lit(1)), Cmp("=", y, Lit(2)), Cmp("<", x, Lit(3))))),
    ("x = 1 OR y = 2 AND x < 3",
     Or((Cmp("=", x, Lit(1)), And((Cmp("=", y, Lit(2)), Cmp("<", x, Lit(3))))))),
    ("(x = 1 OR y = 2) AND x < 3",
     And((Or((Cmp("=", x, Lit(1)), Cmp("=", y, Lit(2)))), Cmp("<", x, Lit(3))))),
    ("CONTAINS(caption, 'red car')", Contains(CAP, Lit("red car"))),
    ("contains(caption, '\"red car\" boat')", Contains(CAP, Lit('"red car" boat'))),
    ("CONTAINS(caption, $t)", Contains(CAP, Param("t"))),
    ("meta.a.b = 1", Cmp("=", Col("meta", ("a", "b")), Lit(1))),
    ('"meta"."a b".c = 1', Cmp("=", Col("meta", ("a b", "c")), Lit(1))),
    ("m.a.b.c.d.e = 1", Cmp("=", Col("m", ("a", "b", "c", "d", "e")), Lit(1))),
    ('"My Tensor" = 1', Cmp("=", Col("My Tensor"), Lit(1))),
    ("ROW_ID < 5", Cmp("<", RowId(), Lit(5))),
    ("row_id < 5", Cmp("<", RowId(), Lit(5))),
    ("ROW_ID() < 5", Cmp("<", RowId(), Lit(5))),
    ("id = 3", Cmp("=", RowId(), Lit(3))),
    ("ID IN (1, 2)", In(RowId(), (Lit(1), Lit(2)))),
    ('"id" = 3', Cmp("=", Col("id"), Lit(3))),
    ('"ROW_ID" = 3', Cmp("=", Col("ROW_ID"), Lit(3))),
    ("SHAPE(images)[0] > 3", Cmp(">", Shape(Col("images"), 0), Lit(3))),
    ("shape(images)[2] = 3", Cmp("=", Shape(Col("images"), 2), Lit(3))),
    ("SHAPE(images, 1) >= 3", Cmp(">=", Shape(Col("images"), 1), Lit(3))),
    ("x = $q", Cmp("=", x, Param("q"))),
    ("x = :q", Cmp("=", x, Param("q"))),
    ("x=$q AND y=:r", And((Cmp("=", x, Param("q")), Cmp("=", y, Param("r"))))),
    ("x IN ($a,$b)", In(x, (Param("a"), Param("b")))),
    ("x IN (:a, :b)", In(x, (Param("a"), Param("b")))),
    ("x BETWEEN $lo AND :hi", Between(x, Param("lo"), Param("hi"))),
    ("x LIKE $p", Like(x, Param("p"))),
    ("x = $select", Cmp("=", x, Param("select"))),
]


@pytest.mark.parametrize(("text", "expected"), WHERE_CASES, ids=[c[0] for c in WHERE_CASES])
def test_where(text: str, expected: Any) -> None:
    assert where(text) == expected


def test_id_is_a_tensor_when_one_is_named_id() -> None:
    assert where("id = 3", tensors=["id", "x"]) == Cmp("=", Col("id"), Lit(3))
    assert where("id = 3", tensors=["x"]) == Cmp("=", RowId(), Lit(3))
    # in a function argument a name is always a tensor
    assert where("CONTAINS(id, 'a')") == Contains(Col("id"), Lit("a"))


# ---- whole queries ------------------------------------------------------------------------

SPEC = """SELECT id, caption, labels, score            -- the ORDER BY score
FROM ds
WHERE labels = 'dog' AND width > 100 AND CONTAINS(caption, 'red car')
ORDER BY COSINE_SIMILARITY(embedding, $q) DESC
LIMIT 10 OFFSET 5"""

QUERY_CASES: list[tuple[str, Query]] = [
    (SPEC, Query(
        select=(SelectItem(RowId()), SelectItem(CAP), SelectItem(Col("labels")),
                SelectItem(COS_Q, "score")),
        where=And((Cmp("=", Col("labels"), Lit("dog")), Cmp(">", Col("width"), Lit(100)),
                   Contains(CAP, Lit("red car")))),
        order_by=(OrderItem(COS_Q, desc=True),), limit=10, offset=5)),
    ("SELECT *", Query()),
    ("select * from ds;", Query()),
    ("FROM ds", Query()),
    ("SELECT * FROM main.ds WHERE x = 1", Query(where=Cmp("=", x, Lit(1)))),
    ("SELECT *, score ORDER BY BM25(caption, 'red car')",
     Query(select=(SelectItem(Col("*")), SelectItem(BM, "score")),
           order_by=(OrderItem(BM),))),
    ("SELECT caption AS c, COSINE_SIMILARITY(embedding, $q) AS sim ORDER BY sim DESC",
     Query(select=(SelectItem(CAP, "c"), SelectItem(COS_Q, "sim")),
           order_by=(OrderItem(COS_Q, desc=True),))),
    ("SELECT caption c ORDER BY c", Query(select=(SelectItem(CAP, "c"),),
                                          order_by=(OrderItem(CAP),))),
    ("SELECT x, score AS s ORDER BY BM25(caption, 'red car') DESC",
     Query(select=(SelectItem(x), SelectItem(BM, "s")), order_by=(OrderItem(BM, True),))),
    ("SELECT x, Score ORDER BY x, BM25(caption, 'red car')",
     Query(select=(SelectItem(x), SelectItem(BM, "score")),
           order_by=(OrderItem(x), OrderItem(BM)))),
    ("SELECT score", Query(select=(SelectItem(Col("score")),))),  # no ORDER BY score
    ("SELECT meta.a.b, ROW_ID, ROW_ID(), \"ROW_ID\"",
     Query(select=(SelectItem(Col("meta", ("a", "b"))), SelectItem(RowId()),
                   SelectItem(RowId()), SelectItem(Col("ROW_ID"))))),
    ("SELECT L2_DISTANCE(embedding, [0.1, -0.2, 3]) AS d ORDER BY d",
     Query(select=(SelectItem(VectorScore("l2", EMB, Lit([0.1, -0.2, 3.0])), "d"),),
           order_by=(OrderItem(VectorScore("l2", EMB, Lit([0.1, -0.2, 3.0]))),))),
    ("SELECT x ORDER BY INNER_PRODUCT(embedding, ARRAY[1, 2]) DESC",
     Query(select=(SelectItem(x),),
           order_by=(OrderItem(VectorScore("ip", EMB, Lit([1.0, 2.0])), True),))),
    ("select x order by cosine_similarity(embedding, :q) desc, Bm25(caption, 'red car')",
     Query(select=(SelectItem(x),), order_by=(OrderItem(COS_Q, True), OrderItem(BM)))),
    ("SELECT x ORDER BY ROW_ID DESC, SHAPE(images)[1], y ASC, meta.a",
     Query(select=(SelectItem(x),),
           order_by=(OrderItem(RowId(), True), OrderItem(Shape(Col("images"), 1)),
                     OrderItem(y), OrderItem(Col("meta", ("a",)))))),
    ("SELECT x ORDER BY SHAPE(images, 0) DESC NULLS LAST",
     Query(select=(SelectItem(x),), order_by=(OrderItem(Shape(Col("images"), 0), True),))),
    ("SELECT x LIMIT 0", Query(select=(SelectItem(x),), limit=0)),
    ("SELECT x OFFSET 7", Query(select=(SelectItem(x),), offset=7)),
    ("SELECT x LIMIT 3, 20", Query(select=(SelectItem(x),), limit=20, offset=3)),
    ("SELECT x /* a comment */\n  WHERE x = 1 -- another\n  LIMIT 2",
     Query(select=(SelectItem(x),), where=Cmp("=", x, Lit(1)), limit=2)),
]


@pytest.mark.parametrize(("text", "expected"), QUERY_CASES, ids=[c[0] for c in QUERY_CASES])
def test_query(text: str, expected: Query) -> None:
    assert parse(text) == expected


FUSE_CASES: list[tuple[str, Fuse]] = [
    ("RRF(COSINE_SIMILARITY(embedding, $q), BM25(caption, 'red car'))",
     Fuse((COS_Q, BM), method="rrf", k=60)),
    ("rrf(COSINE_SIMILARITY(embedding, $q), BM25(caption, 'red car'), 10)",
     Fuse((COS_Q, BM), k=10)),
    ("RRF(COSINE_SIMILARITY(embedding, $q), BM25(caption, 'red car'), k => 20)",
     Fuse((COS_Q, BM), k=20)),
    ("RRF(COSINE_SIMILARITY(embedding, $q), k := 5)", Fuse((COS_Q,), k=5)),
    ("RRF(BM25(caption, 'red car'), RRF(COSINE_SIMILARITY(embedding, $q), 1))",
     Fuse((BM, Fuse((COS_Q,), k=1)))),
    ("WEIGHTED(COSINE_SIMILARITY(embedding, $q), 0.7, BM25(caption, 'red car'), 1)",
     Fuse((COS_Q, BM), weights=(0.7, 1.0), method="weighted")),
    ("WEIGHTED(BM25(caption, 'red car'), -0.5)",
     Fuse((BM,), weights=(-0.5,), method="weighted")),
]


@pytest.mark.parametrize(("text", "expected"), FUSE_CASES, ids=[c[0] for c in FUSE_CASES])
def test_fusion(text: str, expected: Fuse) -> None:
    q = parse(f"SELECT {text} AS s ORDER BY s DESC")
    assert q.select == (SelectItem(expected, "s"),)
    assert q.order_by == (OrderItem(expected, desc=True),)


def test_order_by_fuses_select_aliases() -> None:
    q = parse("SELECT COSINE_SIMILARITY(embedding, $q) AS v, BM25(caption, 'red car') AS t, "
              "score ORDER BY RRF(v, t, k => 30) DESC")
    fused = Fuse((COS_Q, BM), k=30)
    assert q.select == (SelectItem(COS_Q, "v"), SelectItem(BM, "t"), SelectItem(fused, "score"))
    assert q.order_by == (OrderItem(fused, desc=True),)


def test_params_resolve_limit_offset_weights_and_k_and_are_kept() -> None:
    params = {"q": [0.1, 0.2], "n": 10, "o": 5, "w": 0.25, "k": 7}
    q = parse("SELECT x ORDER BY WEIGHTED(COSINE_SIMILARITY(embedding, $q), $w), "
              "RRF(BM25(caption, 'red car'), :k) LIMIT $n OFFSET :o", params)
    assert q.limit == 10 and q.offset == 5
    assert q.order_by == (OrderItem(Fuse((COS_Q,), weights=(0.25,), method="weighted")),
                          OrderItem(Fuse((BM,), k=7)))
    assert q.params == params and q.params is not params
    assert parse("SELECT x").params == {}


def test_tensors_validate_names() -> None:
    q = parse("SELECT caption, meta.a WHERE x = 1 ORDER BY COSINE_SIMILARITY(embedding, $q)",
              tensors=["caption", "meta", "x", "embedding"])
    assert q.select == (SelectItem(CAP), SelectItem(Col("meta", ("a",))))
    assert parse("SELECT score", tensors=["score"]).select == (SelectItem(Col("score")),)


# ---- errors -------------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    # syntax errors: position, what was expected, the functions
    ("SELECT x WHERE x = = 1", {},
     ["syntax error", "line 1, column 20", "expected SELECT items", "COSINE_SIMILARITY("]),
    ("SELECT x\nWHERE x = = 1", {}, ["line 2, column 11", "WHERE x = = 1\n", "^"]),
    ("SELECT x WHERE x = 1 GARBAGE", {}, ["near 'GARBAGE'", "line 1, column 22"]),
    ("SELECT x WHERE x = 'abc", {}, ["unterminated", "line 1, column 20"]),
    ("SELECT x WHERE", {}, ["syntax error", "line 1, column 10"]),
    ("SELECT x FROM", {}, ["syntax error", "the end of the query"]),
    ("", {}, ["empty query", "expected SELECT"]),
    ("  \n ", {}, ["empty query"]),
    ("-- only a comment", {}, ["empty query"]),
    # names and functions: position and what is available
    ("SELECT x WHERE foo(x) = 1", {},
     ["unknown function FOO", "line 1, column 16", "supported functions", "CONTAINS(",
      "BM25(", "RRF(", "WEIGHTED(", "SHAPE(", "L2_DISTANCE(", "INNER_PRODUCT("]),
    ("SELECT stddev(x)", {}, ["aggregate STDDEV is not supported", "line 1, column 8",
                              "COUNT(*), COUNT(col), SUM(col)"]),
    ("SELECT UPPER(x)", {}, ["unknown function UPPER", "COSINE_SIMILARITY("]),
    ("SELECT caption, nope WHERE x = 1", {"tensors": ["caption", "x"]},
     ["unknown tensor 'nope'", "line 1, column 17", "available tensors: caption, x"]),
    ("SELECT x WHERE meta.a = 1", {"tensors": ["x"]},
     ["unknown tensor 'meta'", "line 1, column 16", "available tensors: x"]),
    ("SELECT x ORDER BY BM25(txt, 'a')", {"tensors": ["x"]},
     ["unknown tensor 'txt'", "available tensors: x"]),
    ("SELECT score", {"tensors": ["x"]},
     ["`score` in SELECT means the ORDER BY score", "available tensors: x"]),
    # parameters
    ("SELECT x WHERE x = $q AND y = $r AND x < :s", {"params": {"q": 1}},
     ["missing parameters $r, $s", "line 1, column 31", "given params: q"]),
    ("SELECT x ORDER BY COSINE_SIMILARITY(embedding, $vec)", {"params": {}},
     ["missing parameter $vec", "line 1, column 48", "given params: (none)"]),
    ("SELECT x LIMIT $n", {"params": {}}, ["missing parameter $n"]),
    ("SELECT x LIMIT $n", {}, ["LIMIT is the parameter $n, but no params were given",
                              "line 1, column 16"]),
    ("SELECT x LIMIT $n", {"params": {"n": 1.5}}, ["LIMIT must be a non-negative integer"]),
    ("SELECT x LIMIT $n", {"params": {"n": True}}, ["LIMIT must be a non-negative integer"]),
    ("SELECT x WHERE x = ?", {}, ["positional parameters", "$name or :name"]),
    # LIMIT / OFFSET
    ("SELECT x LIMIT -1", {}, ["LIMIT must be a non-negative integer, got -1"]),
    ("SELECT x LIMIT 1.5", {}, ["LIMIT must be a non-negative integer", "line 1, column 16"]),
    ("SELECT x OFFSET 'a'", {}, ["OFFSET must be a number or a $param"]),
    ("SELECT x LIMIT 10%", {}, ["only LIMIT n is supported"]),
    ("SELECT x FETCH FIRST 3 ROWS ONLY", {}, ["LIMIT n"]),
    # unsupported SQL
    ("SELECT x FROM t JOIN u ON t.a = u.a", {}, ["JOIN is not supported", "line 1, column 17",
                                                 "expected SELECT items"]),
    ("SELECT x FROM t, u", {}, ["JOIN is not supported"]),
    ("SELECT x, COUNT(*) GROUP BY y", {}, ["x is in SELECT but is neither grouped nor "
                                           "aggregated", "line 1, column 8"]),
    ("SELECT x HAVING x > 1", {}, ["HAVING filters groups", "no GROUP BY"]),
    ("SELECT DISTINCT x", {}, ["DISTINCT is not supported", "line 1, column 8"]),
    ("WITH t AS (SELECT 1) SELECT x", {}, ["WITH is not supported", "line 1, column 1"]),
    ("SELECT x WHERE x IN (SELECT y)", {}, ["subqueries are not supported", "column 22"]),
    ("SELECT x WHERE EXISTS (SELECT y)", {}, ["subqueries are not supported"]),
    ("SELECT x FROM (SELECT y)", {}, ["subqueries are not supported"]),
    ("SELECT x UNION SELECT y", {}, ["only SELECT queries are supported, got UNION"]),
    ("SELECT x; SELECT y", {}, ["only one statement is supported", "line 1, column 11"]),
    ("INSERT INTO t VALUES (1)", {}, ["only SELECT queries are supported, got `INSERT`",
                                      "line 1, column 1"]),
    ("UPDATE t SET x = 1", {}, ["only SELECT queries are supported"]),
    ("DELETE FROM t", {}, ["only SELECT queries are supported"]),
    ("CREATE TABLE t (a INT)", {}, ["only SELECT queries are supported"]),
    ("SET x = 1", {}, ["only SELECT queries are supported"]),
    ("SELECT x FROM ds AS d", {}, ["FROM takes only a dataset name"]),
    ("SELECT t.*", {}, ["table.* is not supported"]),
    ("SELECT", {}, ["SELECT needs at least one item"]),
    # misplaced or malformed expressions
    ("SELECT x WHERE u ILIKE 'b'", {}, ["ILIKE is not supported", "line 1, column 16"]),
    ("SELECT x WHERE COSINE_SIMILARITY(embedding, $q) > 0.5", {},
     ["COSINE_SIMILARITY is a score", "SELECT or ORDER BY"]),
    ("SELECT x WHERE BM25(caption, 'a')", {}, ["BM25 is a score"]),
    ("SELECT CONTAINS(caption, 'a')", {}, ["CONTAINS is a condition", "line 1, column 8"]),
    ("SELECT x WHERE x", {}, ["`x` is a value, not a condition", "expected a condition"]),
    ("SELECT x WHERE (x = 1) = TRUE", {}, ["is a condition, not a value"]),
    ("SELECT x WHERE x + 1 = 2", {}, ["unsupported expression `x + 1`", "line 1, column 16",
                                      "expected a tensor name"]),
    ("SELECT x WHERE CAST(x AS INT) = 2", {}, ["CAST"]),
    ("SELECT x WHERE x IS TRUE", {}, ["IS supports only NULL"]),
    ("SELECT x WHERE x IN ()", {}, ["IN needs at least one value"]),
    ("SELECT x WHERE x LIKE 'a' ESCAPE 'b'", {}, ["unsupported expression"]),
    ("SELECT x WHERE x = 1e400", {}, ["out of range"]),
    ("SELECT x WHERE x = [1, 2]", {}, ["vector literal can only be the query"]),
    ("SELECT x WHERE SHAPE(images) = 1", {}, ["SHAPE needs a dimension"]),
    ("SELECT x WHERE x[0] = 1", {}, ["subscripts are only supported on SHAPE(col)"]),
    ("SELECT x WHERE SHAPE(images)[-1] = 1", {},
     ["SHAPE dimension must be a non-negative integer"]),
    ("SELECT x WHERE SHAPE(images)[1.5] = 1", {},
     ["SHAPE dimension must be a non-negative integer"]),
    ("SELECT SHAPE(images)[0]", {}, ["SHAPE(...) cannot be selected"]),
    ("SELECT x WHERE CONTAINS(caption)", {}, ["CONTAINS takes 2 arguments, got 1"]),
    ("SELECT x WHERE CONTAINS(caption, 3)", {}, ["must be a 'string' or a $param"]),
    ("SELECT x WHERE CONTAINS('a', 'b')", {}, ["must be a tensor name"]),
    ("SELECT x WHERE ROW_ID(1) = 1", {}, ["ROW_ID() takes no arguments"]),
    ("SELECT COSINE_SIMILARITY(embedding)", {}, ["takes 2 arguments, got 1",
                                                 "COSINE_SIMILARITY(col,"]),
    ("SELECT COSINE_SIMILARITY(embedding, 'a')", {}, ["must be a $param or a vector literal"]),
    ("SELECT COSINE_SIMILARITY(embedding, [])", {}, ["vector literal cannot be empty"]),
    ("SELECT COSINE_SIMILARITY(embedding, ['a'])", {}, ["vector literal holds only numbers"]),
    ("SELECT COSINE_SIMILARITY(embedding, $q, x => 1)", {}, ["takes no named arguments"]),
    ("SELECT x ORDER BY RRF(x, 5)", {}, ["RRF combines scores, got `x`", "expected a score"]),
    ("SELECT x ORDER BY RRF(5)", {}, ["RRF needs at least one score"]),
    ("SELECT x ORDER BY RRF(BM25(c, 'a'), 1, k => 2)", {}, ["RRF got k twice"]),
    ("SELECT x ORDER BY RRF(BM25(c, 'a'), j => 2)", {}, ["RRF has no argument named 'j'"]),
    ("SELECT x ORDER BY RRF(BM25(c, 'a'), -3)", {}, ["RRF k must be a non-negative integer"]),
    ("SELECT x ORDER BY WEIGHTED(BM25(c, 'a'))", {}, ["pairs of (score, weight)",
                                                      "got 1 argument"]),
    ("SELECT x ORDER BY WEIGHTED(BM25(c, 'a'), 'w')", {}, ["weight must be a number"]),
    ("SELECT x ORDER BY WEIGHTED(BM25(c, 'a'), $w)", {"params": {"w": "a"}},
     ["weight must be a finite number"]),
    ("SELECT x ORDER BY 1", {}, ["ORDER BY by position or literal"]),
    ("SELECT x ORDER BY CONTAINS(caption, 'a')", {}, ["CONTAINS is a condition"]),
    ("SELECT x WHERE x = 1 AND " + "(" * 5000 + "x = 1" + ")" * 5000, {},
     ["nested too deeply"]),
]


@pytest.mark.parametrize(("text", "kwargs", "parts"), ERROR_CASES,
                         ids=[c[0][:60] for c in ERROR_CASES])
def test_errors(text: str, kwargs: dict[str, Any], parts: list[str]) -> None:
    with pytest.raises(QueryError) as info:
        parse(text, **kwargs)
    message = str(info.value)
    for part in parts:
        assert part in message, f"{part!r} not in:\n{message}"


def test_bad_arguments_are_query_errors() -> None:
    with pytest.raises(QueryError, match="must be a str"):
        parse(b"SELECT x")  # type: ignore[arg-type]
    with pytest.raises(QueryError, match="params must be a mapping"):
        parse("SELECT x", [1])  # type: ignore[arg-type]


def test_no_sqlglot_warnings(caplog: pytest.LogCaptureFixture) -> None:
    for text in ("SET x = 1", "SELECT x; SHOW TABLES", "SELECT x WHERE x -> '$[' = 1"):
        with pytest.raises(QueryError):
            parse(text)
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_supported_functions_listed() -> None:
    assert set(SUPPORTED_FUNCTIONS) == {"CONTAINS", "COSINE_SIMILARITY", "L2_DISTANCE",
                                        "INNER_PRODUCT", "BM25", "RRF", "WEIGHTED", "SHAPE",
                                        "ROW_ID"}


# ---- fuzz: any text is a Query or a QueryError ---------------------------------------------

VALID = [
    SPEC,
    "SELECT * WHERE SHAPE(images)[0] > 3 ORDER BY SHAPE(images, 1) DESC",
    "SELECT RRF(BM25(caption, 'x'), COSINE_SIMILARITY(embedding, [0.1, -2]), k => 30) AS s "
    "ORDER BY s LIMIT $n",
    "SELECT WEIGHTED(BM25(caption, 'x'), 0.3, L2_DISTANCE(embedding, ARRAY[1, 2]), $w) AS s, "
    "INNER_PRODUCT(embedding, :q) AS ip ORDER BY s DESC, ip, RRF(s, ip, 10) OFFSET :n",
    "SELECT x, meta.a.b WHERE x NOT IN (1, 'a', TRUE, NULL, -2.5) AND NOT y BETWEEN 1 AND 2 "
    "OR meta.a.b IS NOT NULL AND caption NOT LIKE 'a%' AND ROW_ID() >= $n",
]
PARAMS = {"q": [0.5, 0.5], "w": 0.5, "n": 3}
TOKENS = ["SELECT", "FROM", "WHERE", "ORDER BY", "LIMIT", "OFFSET", "AND", "OR", "NOT", "IN",
          "BETWEEN", "IS", "NULL", "LIKE", "ILIKE", "(", ")", "[", "]", ",", "'", '"', "$",
          ":", "?", "=", "<>", "!=", "*", ".", "-", "1", "0.5", "1e999", "-0", "ROW_ID", "id",
          "score", "SHAPE(", "RRF(", "WEIGHTED(", "BM25(", "CONTAINS(", "COSINE_SIMILARITY(",
          "k =>", "k :=", "::", ";", "--", "/*", "*/", "$$", "\\", "\n", "JOIN", "GROUP BY",
          "(SELECT 1)", "ARRAY[", "{", "}", "@", "#", "%", "||", "->", "CAST(", "INTERVAL",
          "CASE WHEN", "END", "E'", "x'", "DESC", "ASC", "NULLS FIRST", "WITH", "UNION",
          "$q", ":n", "AS"]


@st.composite
def mutated_queries(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(text)))
        j = min(len(text), i + draw(st.integers(1, 12)))
        op = draw(st.sampled_from(["delete", "char", "token", "replace", "swap"]))
        if op == "delete":
            text = text[:i] + text[j:]
        elif op == "char":
            text = text[:i] + draw(st.characters()) + text[i:]
        elif op == "token":
            text = text[:i] + draw(st.sampled_from(TOKENS)) + text[i:]
        elif op == "replace":
            text = text[:i] + f" {draw(st.sampled_from(TOKENS))} " + text[j:]
        else:
            text = text[:i] + text[i:j][::-1] + text[j:]
    return text


def params_in(obj: Any) -> set[str]:
    if isinstance(obj, Param):
        return {obj.name}
    if isinstance(obj, tuple):
        return set().union(*(params_in(o) for o in obj)) if obj else set()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return params_in(tuple(getattr(obj, f.name) for f in dataclasses.fields(obj)
                               if f.name != "params"))
    return set()


def check_any(text: str, params: dict[str, Any] | None, tensors: list[str] | None) -> None:
    try:
        q = parse(text, params, tensors=tensors)
    except QueryError as e:
        assert str(e)
        assert "cannot parse the query (" not in str(e), str(e)  # no unforeseen exception
        return
    assert isinstance(q, Query)
    if params is not None:
        assert params_in(q) <= set(params)


@pytest.mark.parametrize("text", VALID)
def test_fuzz_seeds_are_valid(text: str) -> None:
    assert isinstance(parse(text, PARAMS), Query)


FUZZ = settings(max_examples=500, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.text())
def test_fuzz_any_text(text: str) -> None:
    check_any(text, None, None)


@FUZZ
@given(st.text(alphabet=st.sampled_from("SELECT WHERE ORDER BY LIMIT()[]'\"$:?,.;-*/\n"
                                        "0123456789xyzé=<>!")))
def test_fuzz_sql_like_text(text: str) -> None:
    check_any("SELECT " + text, None, None)


@FUZZ
@given(mutated_queries(), st.sampled_from([None, PARAMS]),
       st.sampled_from([None, ["caption", "labels", "x"]]))
def test_fuzz_mutated_queries(text: str, params: dict[str, Any] | None,
                              tensors: list[str] | None) -> None:
    check_any(text, params, tensors)
