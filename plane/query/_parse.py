"""SQL text -> the logical query (``plane.query._ast``), parsed with sqlglot.

One statement, every clause but SELECT optional, in this order::

    SELECT item, ...          -- *, a tensor, meta.a.b, ROW_ID / ROW_ID() / id, a score,
                              -- `score` (= the ORDER BY score); each may have AS alias
    [FROM dataset]            -- a bare name, ignored
    [WHERE condition]
    [GROUP BY tensor, ...]    -- scalar tensors (also a SELECT alias or position)
    [HAVING condition]        -- over aggregates, SELECT aliases and GROUP BY tensors
    [ORDER BY item [ASC|DESC], ...]   -- a score, a tensor, ROW_ID, SHAPE(col)[i], a SELECT alias
    [LIMIT n] [OFFSET n]      -- non-negative integers or $params (resolved from `params`);
                              -- LIMIT offset, n is read as LIMIT n OFFSET offset

Conditions: ``= != <> < <= > >=``, ``[NOT] IN (v, ...)``, ``[NOT] BETWEEN a AND b``,
``IS [NOT] NULL``, ``[NOT] LIKE``, ``CONTAINS(col, 'text')``, ``AND`` / ``OR`` / ``NOT`` and
parentheses. Operands: a tensor (``meta.a.b`` is a json path into tensor ``meta``),
``ROW_ID``, ``SHAPE(col)[i]`` (or ``SHAPE(col, i)``), a literal (number, 'string', TRUE,
FALSE, NULL) or a parameter ``$name`` / ``:name``. Scores (SELECT and ORDER BY only):
``COSINE_SIMILARITY(col, q)``, ``L2_DISTANCE(col, q)``, ``INNER_PRODUCT(col, q)`` with `q`
a parameter or a vector literal ``[0.1, 0.2]`` / ``ARRAY[0.1, 0.2]``; ``BM25(col, 'text')``;
``RRF(score, score, ...)`` with k given as a trailing integer, ``k => 60`` or ``k := 60``;
``WEIGHTED(score, w, score, w, ...)``. Function names are case-insensitive.

Aggregates: ``COUNT(*)``, ``COUNT(col)``, ``SUM(col)``, ``AVG(col)``, ``MIN(col)``,
``MAX(col)`` in SELECT, HAVING and ORDER BY. A query with an aggregate or a GROUP BY returns
groups: its other SELECT items must be GROUP BY tensors, and its ORDER BY names aggregates,
their aliases or GROUP BY tensors (no scores: a grouped query does not rank rows).

Names (keywords matched case-insensitively): an unquoted ``ROW_ID`` is the row id; an
unquoted ``id`` is the row id unless `tensors` names a tensor ``id``; an unquoted ``score`` in
SELECT is the first score of ORDER BY, aliased ``score`` (unless `tensors` names a tensor
``score``; with no ORDER BY score it is ``Col("score")``, or an error when `tensors` is given).
A double-quoted name is always a tensor, and so is a name given to a function as its column.
``SELECT *`` alone gives an empty select (every tensor); ``*`` beside other items is
``Col("*")``. ORDER BY resolves SELECT aliases first (also inside RRF / WEIGHTED). RRF k and
WEIGHTED weights are literals or parameters resolved from `params`. ``ILIKE`` is rejected
(the AST has no case-insensitive match). ``NULLS FIRST/LAST`` is accepted and ignored.
``NOT`` directly over IN / BETWEEN / IS NULL / LIKE folds into their `negated` flag, and
nested AND / OR chains are flattened into one node.

sqlglot's DuckDB dialect is used (it reads ``$q`` and ``:q`` as placeholders, ``[..]``
lists and ``k => v`` arguments), subclassed: 0-based subscripts (DuckDB's are 1-based, and
sqlglot would rewrite ``SHAPE(x)[0]`` into index -1), no ``$tag$...$tag$`` strings (else
``IN ($a,$b)`` is one string), and our function names left as plain calls (DuckDB parses
CONTAINS into its own node).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ParseError, TokenError
from sqlglot.parsers.duckdb import DuckDBParser
from sqlglot.tokenizer_core import Token, TokenType

from plane._errors import QueryError
from plane.query._ast import (
    AGG_FUNCS,
    Agg,
    And,
    Between,
    Bm25,
    Cmp,
    Col,
    Contains,
    Expr,
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
    Score,
    SelectItem,
    Shape,
    VectorScore,
)

__all__ = ["parse", "SUPPORTED_FUNCTIONS", "AGGREGATE_FUNCTIONS"]


class _PlaneDialect(DuckDB):
    """DuckDB syntax with 0-based subscripts, so ``SHAPE(col)[0]`` stays index 0, and without
    dollar-quoted strings, so ``IN ($a,$b)`` is two parameters, not a ``$a,$...$`` string."""

    INDEX_OFFSET = 0

    class Tokenizer(DuckDB.Tokenizer):
        HEREDOC_STRINGS: ClassVar[list[str | tuple[str, str]]] = []

    class Parser(DuckDBParser):
        # our function names stay plain calls (DuckDB maps CONTAINS to its own node, with
        # its own arity checks); their arguments are checked here
        FUNCTIONS: ClassVar[dict[str, Callable[..., Any]]] = {
            name: build for name, build in DuckDBParser.FUNCTIONS.items()
            if name not in ("CONTAINS", "COSINE_SIMILARITY", "L2_DISTANCE", "INNER_PRODUCT",
                            "BM25", "RRF", "WEIGHTED", "SHAPE", "ROW_ID")
        }


_DIALECT = _PlaneDialect()

#: name -> how it is written and where it may be used (the "available" list in errors).
SUPPORTED_FUNCTIONS: dict[str, str] = {
    "CONTAINS": "CONTAINS(col, 'text') -- condition, WHERE only",
    "COSINE_SIMILARITY": "COSINE_SIMILARITY(col, $q | [..]) -- score, higher is closer",
    "L2_DISTANCE": "L2_DISTANCE(col, $q | [..]) -- score, lower is closer",
    "INNER_PRODUCT": "INNER_PRODUCT(col, $q | [..]) -- score, higher is closer",
    "BM25": "BM25(col, 'text') -- score",
    "RRF": "RRF(score, score, ...[, k]) or RRF(..., k => 60) -- score (rank fusion)",
    "WEIGHTED": "WEIGHTED(score, w, score, w, ...) -- score (weighted sum)",
    "SHAPE": "SHAPE(col)[dim] or SHAPE(col, dim) -- value, WHERE / ORDER BY",
    "ROW_ID": "ROW_ID or ROW_ID() -- the row id",
}
#: the aggregates a grouped query computes (`Agg.func` is the lower-case name).
AGGREGATE_FUNCTIONS: dict[str, str] = {
    "COUNT": "COUNT(*) or COUNT(col) -- aggregate: rows / rows where col is not null",
    "SUM": "SUM(col) -- aggregate of a numeric scalar tensor",
    "AVG": "AVG(col) -- aggregate of a numeric scalar tensor",
    "MIN": "MIN(col) -- aggregate of a numeric scalar tensor",
    "MAX": "MAX(col) -- aggregate of a numeric scalar tensor",
}
_METRIC_OF = {"COSINE_SIMILARITY": "cosine", "L2_DISTANCE": "l2", "INNER_PRODUCT": "ip"}
_SCORE_FUNCS = frozenset((*_METRIC_OF, "BM25", "RRF", "WEIGHTED"))
_SCORE_TYPES = (VectorScore, Bm25, Fuse)
_CMP: dict[type[exp.Expr], str] = {
    exp.EQ: "=", exp.NEQ: "!=", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}

_GRAMMAR = ("SELECT items [FROM dataset] [WHERE condition] [GROUP BY tensors] "
            "[HAVING condition] [ORDER BY items [ASC|DESC]] [LIMIT n] [OFFSET n]")
_FUNCS_LIST = "supported functions:\n" + "\n".join(
    f"  {s}" for s in (*SUPPORTED_FUNCTIONS.values(), *AGGREGATE_FUNCTIONS.values()))
_EXPECT_AGG = "an aggregate: " + ", ".join(
    ("COUNT(*)", "COUNT(col)", *(f"{f}(col)" for f in AGGREGATE_FUNCTIONS if f != "COUNT")))
_EXPECT_GROUP = "GROUP BY scalar tensors (ints, floats, bool, class_label, text)"
_EXPECT_COND = ("a condition: comparison (= != <> < <= > >=), [NOT] IN (...), [NOT] BETWEEN, "
                "IS [NOT] NULL, [NOT] LIKE, CONTAINS(col, 'text'), combined with AND/OR/NOT")
_EXPECT_VALUE = ("a tensor name, ROW_ID, SHAPE(col)[i], a literal (number, 'string', TRUE, "
                 "FALSE, NULL) or a parameter ($name / :name)")
_EXPECT_SELECT = ("*, a tensor name, ROW_ID, `score`, or a score function "
                  "(COSINE_SIMILARITY, L2_DISTANCE, INNER_PRODUCT, BM25, RRF, WEIGHTED)")
_EXPECT_ORDER = ("a score function (COSINE_SIMILARITY, L2_DISTANCE, INNER_PRODUCT, BM25, RRF, "
                 "WEIGHTED), a tensor name, ROW_ID, SHAPE(col)[i] or a SELECT alias")
_EXPECT_SCORE = ("a score: COSINE_SIMILARITY(...), L2_DISTANCE(...), INNER_PRODUCT(...), "
                 "BM25(...), RRF(...), WEIGHTED(...)")
_CLAUSES = {"with_": "WITH", "kind": "SELECT AS", "distinct": "DISTINCT", "into": "INTO",
            "laterals": "LATERAL", "joins": "JOIN", "connect": "CONNECT BY", "pivots": "PIVOT",
            "group": "GROUP BY", "having": "HAVING", "qualify": "QUALIFY", "windows": "WINDOW",
            "distribute": "DISTRIBUTE BY", "sort": "SORT BY", "cluster": "CLUSTER BY",
            "locks": "FOR UPDATE / FOR SHARE", "sample": "SAMPLE", "for_": "FOR"}
_TOKEN_RE = re.compile(r"<Token token_type: TokenType\.(\w+), text: (.*?), line: \d+.*?>")
_CLASS_RE = re.compile(r"<class '(?:[\w.]+\.)?(\w+)'>")


def parse(
    sql: str,
    params: Mapping[str, Any] | None = None,
    *,
    tensors: Sequence[str] | None = None,
) -> Query:
    """Parse one query into a :class:`Query`; see the module docstring for the language.

    `params` binds ``$name`` / ``:name`` parameters: when given, every parameter used must
    be in it (LIMIT / OFFSET / RRF k / WEIGHTED weights given as parameters are resolved
    from it); it is kept on the returned query. `tensors`, when given, is the list of tensor
    names a column may refer to. Every failure is a :class:`QueryError` naming where it is,
    what was expected and what is available.
    """
    if not isinstance(sql, str):
        raise QueryError(f"a query must be a str, got {type(sql).__name__}")
    if params is not None and not isinstance(params, Mapping):
        raise QueryError(f"params must be a mapping of name -> value, got "
                         f"{type(params).__name__}")
    try:
        names = None if tensors is None else [str(t) for t in tensors]
        return _Parser(sql, params, names).run()
    except QueryError:
        raise
    except RecursionError:
        raise QueryError("the query is nested too deeply to parse") from None
    except Exception as e:  # anything sqlglot or we did not foresee
        raise QueryError(f"cannot parse the query ({type(e).__name__}: {e}); "
                         f"expected {_GRAMMAR}") from e


class _Parser:
    def __init__(self, sql: str, params: Mapping[str, Any] | None,
                 tensors: list[str] | None) -> None:
        self.sql = sql
        self.params = params
        self.tensors = tensors
        self.used: dict[str, int | None] = {}  # parameter name -> offset of first use
        self.tokens: list[Token] = []
        self.grouped = False  # the query has an aggregate or a GROUP BY
        self.in_having = False  # parsing HAVING: aggregates and SELECT aliases are values
        self.aliases: dict[str, Expr] = {}

    # ---- errors and positions ---------------------------------------------------------

    def _pos(self, offset: int | None) -> str:
        if offset is None or not 0 <= offset <= len(self.sql):
            return ""
        line = self.sql.count("\n", 0, offset) + 1
        line_start = self.sql.rfind("\n", 0, offset) + 1
        col = offset - line_start + 1
        line_end = self.sql.find("\n", offset)
        text = self.sql[line_start:line_end if line_end >= 0 else len(self.sql)]
        if len(text) > 200:  # keep the excerpt short, around the column
            cut = max(0, col - 100)
            text, col = text[cut:cut + 200], col - cut
        caret = "".join(c if c == "\t" else " " for c in text[:col - 1]) + "^"
        return f" at line {line}, column {offset - line_start + 1}\n  {text}\n  {caret}"

    def _err(self, problem: str, where: exp.Expr | int | None = None,
             expected: str | None = None, available: str | None = None) -> QueryError:
        offset: int | None = None
        if isinstance(where, int):
            offset = where
        node = where if isinstance(where, exp.Expr) else None
        while node is not None and offset is None:  # the nearest node that has a position
            offset, node = self._offset(node), node.parent
        msg = problem + self._pos(offset)
        if expected:
            msg += f"\nexpected {expected}"
        if available:
            msg += f"\n{available}"
        return QueryError(msg)

    def _offset(self, node: exp.Expr) -> int | None:
        best: int | None = None
        for n in node.walk():
            start = n.meta_get("start")
            if isinstance(start, int) and (best is None or start < best):
                best = start
            elif isinstance(n, exp.Placeholder):  # placeholders carry no position
                start = self._param_offset(n.args.get("this"))
                if start is not None and (best is None or start < best):
                    best = start
        return best

    def _param_offset(self, name: Any) -> int | None:
        """Where parameter `name` ($name / :name; None: ?) first occurs."""
        toks = self.tokens
        for i, tok in enumerate(toks):
            if name is None:
                if tok.token_type == TokenType.PLACEHOLDER:
                    return int(tok.start)
            elif (tok.token_type in (TokenType.PARAMETER, TokenType.COLON)
                  and i + 1 < len(toks) and toks[i + 1].text == name):
                return int(tok.start)
        return None

    @staticmethod
    def _text(node: exp.Expr) -> str:
        try:
            text = node.sql(dialect=_DIALECT)
        except Exception:
            text = type(node).__name__
        return text if len(text) <= 60 else text[:57] + "..."

    def _unsupported(self, node: exp.Expr, place: str, expected: str) -> QueryError:
        if isinstance(node, (exp.Subquery, exp.Query, exp.Exists)) or node.find(exp.Select):
            return self._err(f"subqueries are not supported (in {place})", node,
                             expected=expected)
        if isinstance(node, exp.ILike):
            return self._err("ILIKE is not supported (matching is case-sensitive; use LIKE)",
                             node, expected=_EXPECT_COND)
        if isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous):
            return self._unknown_function(node.sql_name(), node)
        return self._err(f"unsupported expression `{self._text(node)}` in {place}", node,
                         expected=expected)

    def _unknown_function(self, name: str, node: exp.Expr) -> QueryError:
        return self._err(f"unknown function {name}", node, available=_FUNCS_LIST)

    def _tensor_list(self) -> str:
        assert self.tensors is not None
        return "available tensors: " + (", ".join(self.tensors) or "(none)")

    # ---- the statement -----------------------------------------------------------------

    def _keyword_offset(self, word: str) -> int | None:
        """Where keyword `word` (not a name or a string) first occurs."""
        for tok in self.tokens:
            if (tok.token_type not in (TokenType.VAR, TokenType.STRING, TokenType.IDENTIFIER)
                    and tok.text.upper().split()[:1] == [word]):
                return int(tok.start)
        return None

    def run(self) -> Query:
        try:
            self.tokens = _DIALECT.tokenize(self.sql)
        except TokenError as e:
            raise self._token_error(e) from None
        self._precheck()
        try:
            statements = [s for s in _DIALECT.parser().parse(self.tokens, self.sql)
                          if s is not None]
        except TokenError as e:
            raise self._token_error(e) from None
        except ParseError as e:
            raise self._syntax_error(e) from None
        if not statements:
            raise self._err("empty query", expected=_GRAMMAR)
        if len(statements) > 1:
            raise self._err("only one statement is supported, got "
                            f"{len(statements)}", statements[1], expected=_GRAMMAR)
        stmt = statements[0]
        if isinstance(stmt, exp.Subquery):
            raise self._err("a parenthesized query is not supported; write SELECT ... "
                            "without the parentheses", 0, expected=_GRAMMAR)
        if not isinstance(stmt, exp.Select):
            kind = stmt.key.upper()
            raise self._err(f"only SELECT queries are supported, got {kind}", 0,
                            expected=_GRAMMAR)
        self._clauses(stmt)
        for sub in stmt.find_all(exp.Query, exp.Subquery):
            if sub is not stmt:
                selects = [t.start for t in self.tokens if t.token_type == TokenType.SELECT]
                where = selects[1] if len(selects) > 1 else sub
                raise self._err("subqueries are not supported", where, expected=_GRAMMAR)
        return self._select(stmt)

    def _precheck(self) -> None:
        """Reject what is not one SELECT before sqlglot parses it (and, for statements it
        does not know, logs a warning and falls back to an opaque Command)."""
        if not self.tokens:
            raise self._err("empty query", expected=_GRAMMAR)
        first = self.tokens[0]
        if first.token_type not in (TokenType.SELECT, TokenType.FROM, TokenType.WITH,
                                    TokenType.L_PAREN):
            raise self._err(f"only SELECT queries are supported, got `{first.text}`",
                            int(first.start), expected=_GRAMMAR)
        semi = next((i for i, t in enumerate(self.tokens)
                     if t.token_type == TokenType.SEMICOLON), None)
        if semi is not None:
            rest = [t for t in self.tokens[semi:] if t.token_type != TokenType.SEMICOLON]
            if rest:
                raise self._err("only one statement is supported", int(rest[0].start),
                                expected=_GRAMMAR)

    def _token_error(self, e: TokenError) -> QueryError:
        offset: int | None = None
        detail = "cannot read the text"
        cause = e.__cause__
        m = re.search(r"Missing (.+) from (\d+):(\d+)$", str(cause)) if cause else None
        if m:
            detail = f"unterminated quote: missing the closing {m.group(1)}"
            offset = int(m.group(3))
        elif e.start is not None and e.start > 0:
            offset = e.start + 50
        elif e.end is not None and e.end < len(self.sql) - 1:
            offset = max(0, e.end - 50)
        elif cause is not None:
            detail += f" ({cause})"
        if offset is not None:
            offset = min(offset, len(self.sql))
        return self._err(f"syntax error: {detail}", offset, expected=_GRAMMAR)

    def _syntax_error(self, e: ParseError) -> QueryError:
        if not e.errors:
            return self._err("empty query" if not self.sql.strip() else
                             f"syntax error: {e}", expected=_GRAMMAR)
        first = e.errors[0]
        desc = str(first.get("description") or "invalid syntax")
        desc = _TOKEN_RE.sub(lambda m: "the end of the query" if m.group(1) == "SENTINEL"
                             else f"'{m.group(2)}'", desc)
        desc = _CLASS_RE.sub(r"\1", desc)
        highlight = str(first.get("highlight") or "")
        offset: int | None = None
        line, col = first.get("line"), first.get("col")
        if isinstance(line, int) and isinstance(col, int):
            # sqlglot's col is that of the highlighted token's last character
            starts = [0] + [i + 1 for i, c in enumerate(self.sql) if c == "\n"]
            if 1 <= line <= len(starts):
                width = len(highlight) if highlight and "\n" not in highlight else 1
                offset = max(starts[line - 1], starts[line - 1] + col - width)
        near = f" near '{highlight}'" if highlight else ""
        return self._err(f"syntax error: {desc}{near}", offset,
                         expected=_GRAMMAR + "\n" + _FUNCS_LIST)

    def _clauses(self, sel: exp.Select) -> None:
        for key, value in sel.args.items():
            if key in ("expressions", "from_", "where", "group", "having", "order", "limit",
                       "offset"):
                continue
            if value is None or value is False or value == []:
                continue
            name = _CLAUSES.get(key, key.rstrip("_").replace("_", " ").upper())
            node = value[0] if isinstance(value, list) and value else value
            offset = self._keyword_offset(name.split()[0])
            raise self._err(f"{name} is not supported",
                            offset if offset is not None or not isinstance(node, exp.Expr)
                            else node, expected=_GRAMMAR)

    def _select(self, sel: exp.Select) -> Query:
        self._from(sel.args.get("from_"))
        select, pending, aliases = self._select_items(sel)
        self.aliases = aliases
        where_node = sel.args.get("where")
        where = self._cond(where_node.this) if isinstance(where_node, exp.Where) else None
        group_node = sel.args.get("group")
        self.grouped = group_node is not None or any(isinstance(it.expr, Agg) for it in select)
        group_by = self._group(group_node, select, aliases)
        having = self._having(sel.args.get("having"))
        order_by = self._order(sel.args.get("order"), aliases)
        if self.grouped:
            self._check_grouped(sel, select, group_by, having, order_by)
        if pending:
            score: Expr | None = next(
                (o.expr for o in order_by if isinstance(o.expr, _SCORE_TYPES)), None)
            if score is None:
                if self.tensors is not None:
                    raise self._err(
                        "`score` in SELECT means the ORDER BY score, but ORDER BY has no "
                        "score function and there is no tensor named score",
                        pending[0][1], expected=_EXPECT_ORDER, available=self._tensor_list())
                score = Col("score")
            for i, _node in pending:
                alias = select[i].alias
                if isinstance(score, _SCORE_TYPES):
                    alias = alias or "score"
                select[i] = SelectItem(score, alias)

        limit = self._limit_arg(sel.args.get("limit"), "LIMIT")
        offset = self._limit_arg(sel.args.get("offset"), "OFFSET")
        self._check_params()
        return Query(select=tuple(select), where=where, order_by=order_by, limit=limit,
                     offset=offset or 0, params=dict(self.params or {}), group_by=group_by,
                     having=having)

    def _from(self, node: Any) -> None:
        if node is None:
            return
        table = node.this if isinstance(node, exp.From) else node
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            raise self._unsupported(table, "FROM", "FROM <dataset name> (it is ignored)")
        extra = [k for k, v in table.args.items()
                 if k not in ("this", "db", "catalog") and v not in (None, False, [])]
        if extra:
            raise self._err(f"FROM takes only a dataset name (no {extra[0]})", table,
                            expected="FROM <dataset name> (it is ignored)")

    # ---- SELECT / ORDER BY -------------------------------------------------------------

    def _select_items(
        self, sel: exp.Select
    ) -> tuple[list[SelectItem], list[tuple[int, exp.Expr]], dict[str, Expr]]:
        items = list(sel.expressions)
        if not items:
            raise self._err("SELECT needs at least one item", 0, expected=_EXPECT_SELECT)
        select: list[SelectItem] = []
        pending: list[tuple[int, exp.Expr]] = []
        aliases: dict[str, Expr] = {}
        if len(items) == 1 and self._is_star(items[0]):
            return select, pending, aliases
        for node in items:
            alias: str | None = None
            inner = node
            if isinstance(node, exp.Alias):
                alias, inner = node.alias, node.this
            if self._is_star(inner):
                select.append(SelectItem(Col("*"), alias))
                continue
            if self._is_word(inner, "score") and not self._names_tensor("score"):
                pending.append((len(select), inner))
                select.append(SelectItem(Col("score"), alias))
                continue
            expr = self._output(inner, "SELECT", {})
            select.append(SelectItem(expr, alias))
            if alias:
                aliases[alias] = expr
        return select, pending, aliases

    def _is_star(self, node: exp.Expr) -> bool:
        if not isinstance(node, exp.Star):
            return False
        if any(v not in (None, False, []) for v in node.args.values()):
            raise self._err("* modifiers (EXCLUDE, REPLACE, ...) are not supported", node,
                            expected=_EXPECT_SELECT)
        return True

    def _order(self, node: Any, aliases: dict[str, Expr]) -> tuple[OrderItem, ...]:
        if node is None:
            return ()
        if not isinstance(node, exp.Order) or node.args.get("siblings"):
            raise self._unsupported(node, "ORDER BY", _EXPECT_ORDER)
        out = []
        for o in node.expressions:
            if not isinstance(o, exp.Ordered) or o.args.get("with_fill"):
                raise self._unsupported(o, "ORDER BY", _EXPECT_ORDER)
            out.append(OrderItem(self._output(o.this, "ORDER BY", aliases),
                                 desc=bool(o.args.get("desc"))))
        return tuple(out)

    def _output(self, node: exp.Expr, place: str, aliases: dict[str, Expr]) -> Expr:
        """An item of SELECT (tensor, ROW_ID, score) or ORDER BY (also SHAPE, aliases)."""
        n = _unparen(node)
        expected = _EXPECT_SELECT if place == "SELECT" else _EXPECT_ORDER
        alias = self._alias_ref(n, aliases)
        if alias is not None:
            return alias
        agg = self._agg(n)
        if agg is not None:
            if place != "SELECT" and not self.grouped:
                raise self._err(f"the aggregate {self._text(n)} in {place} needs a grouped "
                                "query", n, expected="SELECT it, e.g. SELECT col, COUNT(*) "
                                "AS n ... GROUP BY col ORDER BY n DESC")
            return agg
        score = self._score(n, aliases)
        if score is not None:
            return score
        fn = _function(n)
        if fn is not None and fn[0] == "CONTAINS":
            raise self._err(f"CONTAINS is a condition and can only be used in WHERE, not in "
                            f"{place}", n, expected=expected)
        ref = self._colref(n) or self._rowid_call(n)
        if ref is not None:
            return ref
        if place == "ORDER BY":
            shape = self._shape(n)
            if shape is not None:
                return shape
        elif isinstance(n, exp.Bracket) or (fn is not None and fn[0] == "SHAPE"):
            raise self._err("SHAPE(...) cannot be selected; use it in WHERE or ORDER BY", n,
                            expected=expected)
        if fn is not None and fn[0] not in SUPPORTED_FUNCTIONS:
            raise self._unknown_function(fn[0], n)
        if isinstance(n, (exp.Literal, exp.Neg)) and place == "ORDER BY":
            raise self._err(f"ORDER BY by position or literal (`{self._text(n)}`) is not "
                            "supported", n, expected=expected)
        raise self._unsupported(n, place, expected)

    def _alias_ref(self, n: exp.Expr, aliases: dict[str, Expr]) -> Expr | None:
        if aliases and isinstance(n, exp.Column) and len(n.parts) == 1:
            part = n.parts[0]
            if isinstance(part, exp.Identifier):
                return aliases.get(part.name)
        return None

    # ---- aggregates, GROUP BY, HAVING --------------------------------------------------

    def _agg(self, n: exp.Expr) -> Agg | None:
        """``COUNT(*)``, ``COUNT(col)``, ``SUM(col)`` ...; None if `n` is no aggregate."""
        if not isinstance(n, exp.AggFunc):
            return None
        name = n.sql_name().upper()
        if name.lower() not in AGG_FUNCS:
            raise self._err(f"aggregate {name} is not supported", n, expected=_EXPECT_AGG)
        arg = n.args.get("this")
        extra = [k for k, v in n.args.items()
                 if k not in ("this", "big_int") and v not in (None, False, [])]
        if extra or arg is None:
            raise self._err(f"{name} takes one argument, got `{self._text(n)}`", n,
                            expected=AGGREGATE_FUNCTIONS[name])
        arg = _unparen(arg)
        if isinstance(arg, exp.Distinct):
            raise self._err(f"{name}(DISTINCT ...) is not supported", n,
                            expected="GROUP BY the tensor: the result has one row per "
                                     "distinct value (len(result) counts them)")
        if isinstance(arg, exp.Star) or (name == "COUNT" and _number_node(arg)):
            if name != "COUNT":
                raise self._err(f"{name}(*) is not supported: only COUNT takes *", n,
                                expected=AGGREGATE_FUNCTIONS[name])
            return Agg("count")
        ref = self._colref(arg, as_tensor=True) if isinstance(arg, (exp.Column, exp.Dot)) \
            else None
        if not isinstance(ref, Col) or ref.path:
            what = "a json field" if isinstance(ref, Col) else f"`{self._text(arg)}`"
            raise self._err(f"{name} takes a tensor name, got {what}", arg,
                            expected=AGGREGATE_FUNCTIONS[name])
        return Agg(name.lower(), ref)

    def _group(self, node: Any, select: list[SelectItem],
               aliases: dict[str, Expr]) -> tuple[Col, ...]:
        """GROUP BY items: tensors, SELECT aliases of tensors or 1-based SELECT positions."""
        if node is None:
            return ()
        extra = [k for k, v in node.args.items()
                 if k != "expressions" and v not in (None, False, [])]
        if extra or not node.expressions:
            raise self._err(f"only GROUP BY tensor, ... is supported, got "
                            f"`{self._text(node)}`", node, expected=_EXPECT_GROUP)
        out: list[Col] = []
        for g in node.expressions:
            n = _unparen(g)
            expr: Expr | None = None
            if _number_node(n):
                i = self._number(n)
                if not isinstance(i, int) or not 1 <= i <= len(select):
                    raise self._err(f"GROUP BY {self._text(n)}: a position is 1 to the number "
                                    f"of SELECT items ({len(select)})", n,
                                    expected=_EXPECT_GROUP)
                expr = select[i - 1].expr
            elif isinstance(n, exp.Column) and len(n.parts) == 1 \
                    and not self._names_tensor(n.parts[0].name):
                expr = self._alias_ref(n, aliases)
            if isinstance(n, exp.AggFunc):
                raise self._err(f"cannot GROUP BY the aggregate {self._text(n)}", n,
                                expected=_EXPECT_GROUP)
            if expr is None:
                expr = self._colref(n)
            if isinstance(expr, RowId):
                raise self._err("GROUP BY ROW_ID makes one group per row", n,
                                expected=_EXPECT_GROUP + "; count rows with COUNT(*)")
            if not isinstance(expr, Col):
                raise self._err(f"cannot GROUP BY `{self._text(n)}`", n,
                                expected=_EXPECT_GROUP)
            if expr.path:
                raise self._err(f"GROUP BY a json field ({self._text(n)}) is not supported", n,
                                expected=_EXPECT_GROUP)
            if expr not in out:
                out.append(expr)
        return tuple(out)

    def _having(self, node: Any) -> Expr | None:
        if node is None:
            return None
        if not self.grouped:
            raise self._err("HAVING filters groups, but the query has no GROUP BY and no "
                            "aggregate", node, expected="WHERE to filter rows, or GROUP BY "
                            "col ... HAVING COUNT(*) > n to filter groups")
        self.in_having = True
        try:
            return self._cond(node.this if isinstance(node, exp.Having) else node)
        finally:
            self.in_having = False

    def _check_grouped(self, sel: exp.Select, select: list[SelectItem],
                       group_by: tuple[Col, ...], having: Expr | None,
                       order_by: tuple[OrderItem, ...]) -> None:
        """Every output of a grouped query is an aggregate or a GROUP BY tensor."""
        keys = ", ".join(c.name for c in group_by)
        fix = (f"add it to GROUP BY ({keys}, ...) or aggregate it (COUNT, MIN, MAX, ...)"
               if keys else "GROUP BY it, or aggregate it (COUNT, MIN, MAX, ...)")
        nodes = list(sel.expressions)
        if not select or any(it.expr == Col("*") for it in select):
            star = next((x for x in nodes if isinstance(_unparen(x), exp.Star)), 0)
            raise self._err("SELECT * cannot be grouped or aggregated", star,
                            expected="SELECT the GROUP BY tensors and aggregates, e.g. "
                                     "SELECT labels, COUNT(*) ... GROUP BY labels")
        for it, node in zip(select, nodes):
            self._check_output(it.expr, node, group_by, "SELECT", fix)
        order = sel.args.get("order")
        for o, onode in zip(order_by, order.expressions if order is not None else []):
            self._check_output(o.expr, onode, group_by, "ORDER BY", fix)
        if having is not None:
            self._check_having(having, sel.args["having"], group_by, fix)

    def _check_output(self, e: Expr, node: exp.Expr, group_by: tuple[Col, ...], place: str,
                      fix: str) -> None:
        if isinstance(e, Agg) or (isinstance(e, Col) and e in group_by):
            return
        if isinstance(e, _SCORE_TYPES):
            raise self._err(f"a score cannot be used in {place} of a grouped query: a "
                            "score ranks rows, a grouped query returns groups", node,
                            expected="COUNT the rows a filter keeps (WHERE ...), or run the "
                                     "ranking as a row query without aggregates")
        what = {RowId: "ROW_ID", Shape: "SHAPE(...)"}.get(type(e))
        if what is not None:
            raise self._err(f"{what} cannot be used in {place} of a grouped query (each "
                            "result row is a group)", node,
                            expected=f"{_EXPECT_AGG}, or a GROUP BY tensor")
        name = _describe_col(e)
        raise self._err(f"{name} is in {place} but is neither grouped nor aggregated", node,
                        expected=fix)

    def _check_having(self, e: Expr, node: exp.Expr, group_by: tuple[Col, ...],
                      fix: str) -> None:
        for sub in _walk(e):
            if isinstance(sub, Col) and sub not in group_by:
                raise self._err(f"{_describe_col(sub)} in HAVING is neither grouped nor "
                                "aggregated", node, expected=fix)
            if isinstance(sub, (RowId, Shape, Contains, Like, *_SCORE_TYPES)):
                raise self._err("HAVING compares aggregates, SELECT aliases and GROUP BY "
                                f"tensors with values; {type(sub).__name__} is not supported "
                                "there", node, expected="WHERE for conditions on rows")

    # ---- scores ------------------------------------------------------------------------

    def _score(self, n: exp.Expr, aliases: dict[str, Expr]) -> Score | None:
        fn = _function(n)
        if fn is None or fn[0] not in _SCORE_FUNCS:
            return None
        name, args = fn
        if name in ("RRF", "WEIGHTED"):
            return self._fuse(name, n, args, aliases)
        positional = self._no_kwargs(name, args)
        if len(positional) != 2:
            raise self._err(f"{name} takes 2 arguments, got {len(positional)}", n,
                            expected=SUPPORTED_FUNCTIONS[name])
        col = self._col_arg(positional[0], name)
        if name == "BM25":
            return Bm25(col, self._text_arg(positional[1], name))
        return VectorScore(_METRIC_OF[name], col, self._vector_arg(positional[1], name))

    def _no_kwargs(self, name: str, args: list[exp.Expr]) -> list[exp.Expr]:
        for a in args:
            if isinstance(a, (exp.Kwarg, exp.PropertyEQ)):
                raise self._err(f"{name} takes no named arguments", a,
                                expected=SUPPORTED_FUNCTIONS.get(name))
        return args

    def _fuse(self, name: str, n: exp.Expr, args: list[exp.Expr],
              aliases: dict[str, Expr]) -> Fuse:
        if name == "WEIGHTED":
            positional = self._no_kwargs(name, args)
            if not positional or len(positional) % 2:
                raise self._err(f"WEIGHTED takes pairs of (score, weight), got "
                                f"{_count(len(positional))}", n,
                                expected=SUPPORTED_FUNCTIONS[name])
            parts = tuple(self._score_arg(a, name, aliases) for a in positional[::2])
            weights = tuple(self._const_number(w, "a WEIGHTED weight") for w in positional[1::2])
            return Fuse(parts, weights, method="weighted")
        k: int | None = None
        positional = []
        for a in args:
            if isinstance(a, (exp.Kwarg, exp.PropertyEQ)):
                key = a.this.name if isinstance(a.this, exp.Expr) else str(a.this)
                if key.lower() != "k":
                    raise self._err(f"RRF has no argument named {key!r}", a,
                                    expected=SUPPORTED_FUNCTIONS[name])
                if k is not None:
                    raise self._err("RRF got k twice", a, expected=SUPPORTED_FUNCTIONS[name])
                k = self._const_int(a.expression, "RRF k")
            else:
                positional.append(a)
        last = _unparen(positional[-1]) if positional else None
        if last is not None and (_number_node(last) or isinstance(last, exp.Placeholder)):
            if k is not None:
                raise self._err("RRF got k twice", last, expected=SUPPORTED_FUNCTIONS[name])
            k = self._const_int(last, "RRF k")
            positional.pop()
        if not positional:
            raise self._err("RRF needs at least one score", n, expected=SUPPORTED_FUNCTIONS[name])
        parts = tuple(self._score_arg(a, name, aliases) for a in positional)
        return Fuse(parts, method="rrf") if k is None else Fuse(parts, k=k, method="rrf")

    def _score_arg(self, node: exp.Expr, fname: str, aliases: dict[str, Expr]) -> Score:
        n = _unparen(node)
        ref = self._alias_ref(n, aliases)
        if isinstance(ref, _SCORE_TYPES):
            return ref
        score = self._score(n, aliases)
        if score is None:
            fn = _function(n)
            if fn is not None and fn[0] not in SUPPORTED_FUNCTIONS:
                raise self._unknown_function(fn[0], n)
            raise self._err(f"{fname} combines scores, got `{self._text(n)}`", n,
                            expected=_EXPECT_SCORE)
        return score

    # ---- WHERE -------------------------------------------------------------------------

    def _cond(self, node: exp.Expr) -> Expr:
        n = _unparen(node)
        if isinstance(n, exp.AggFunc):
            self._value(n)  # an aggregate in WHERE (or an unsupported one) is reported there
            raise self._err(f"`{self._text(n)}` is a value, not a condition", n,
                            expected=_EXPECT_COND)
        if isinstance(n, (exp.And, exp.Or)):
            kind = type(n)
            items: list[Expr] = []
            stack: list[exp.Expr] = [n]
            while stack:  # flatten a AND (b AND c) into one node, left to right
                cur = stack.pop()
                if isinstance(cur, kind):
                    stack.append(_unparen(cur.expression))
                    stack.append(_unparen(cur.this))
                else:
                    items.append(self._cond(cur))
            return And(tuple(items)) if kind is exp.And else Or(tuple(items))
        if isinstance(n, exp.Not):
            inner = self._cond(n.this)
            if isinstance(inner, (In, Between, IsNull, Like)):
                return dataclasses.replace(inner, negated=not inner.negated)
            return Not(inner)
        op = _CMP.get(type(n))
        if op is not None:
            return Cmp(op, self._value(n.this), self._value(n.expression))
        if isinstance(n, exp.In):
            if n.args.get("query") is not None:
                raise self._err("subqueries are not supported (in IN)", n,
                                expected="expr [NOT] IN (value, ...)")
            for key in ("unnest", "field"):
                if n.args.get(key) is not None:
                    raise self._err("IN takes a parenthesized list of values", n,
                                    expected="expr [NOT] IN (value, ...) with values "
                                    + _EXPECT_VALUE)
            if not n.expressions:
                raise self._err("IN needs at least one value", n,
                                expected="expr [NOT] IN (value, ...)")
            return In(self._value(n.this), tuple(self._value(v) for v in n.expressions))
        if isinstance(n, exp.Between):
            if n.args.get("symmetric"):
                raise self._err("BETWEEN SYMMETRIC is not supported", n,
                                expected="expr [NOT] BETWEEN low AND high")
            return Between(self._value(n.this), self._value(n.args["low"]),
                           self._value(n.args["high"]))
        if isinstance(n, exp.Is):
            if not isinstance(n.expression, exp.Null):
                raise self._err(f"IS supports only NULL, got `{self._text(n)}`", n,
                                expected="expr IS NULL / expr IS NOT NULL")
            return IsNull(self._value(n.this), negated=bool(n.args.get("negate")))
        if isinstance(n, exp.Like):
            return Like(self._value(n.this), self._value(n.expression),
                        negated=bool(n.args.get("negate")))
        fn = _function(n)
        if fn is not None:
            name, args = fn
            if name == "CONTAINS":
                positional = self._no_kwargs(name, args)
                if len(positional) != 2:
                    raise self._err(f"CONTAINS takes 2 arguments, got {len(positional)}", n,
                                    expected=SUPPORTED_FUNCTIONS[name])
                return Contains(self._col_arg(positional[0], name),
                                self._text_arg(positional[1], name))
            if name in _SCORE_FUNCS:
                raise self._err(f"{name} is a score: use it in SELECT or ORDER BY, not in "
                                "WHERE", n, expected=_EXPECT_COND)
            if name not in SUPPORTED_FUNCTIONS:
                raise self._unknown_function(name, n)
        if isinstance(n, (exp.Column, exp.Dot, exp.Literal, exp.Boolean, exp.Null, exp.Neg,
                          exp.Placeholder, exp.Bracket)) or fn is not None:
            raise self._err(f"`{self._text(n)}` is a value, not a condition", n,
                            expected=_EXPECT_COND)
        raise self._unsupported(n, "WHERE", _EXPECT_COND)

    def _value(self, node: exp.Expr) -> Expr:
        """An operand of a condition: tensor, ROW_ID, SHAPE, literal or parameter (in
        HAVING also an aggregate or a SELECT alias)."""
        n = _unparen(node)
        if isinstance(n, exp.AggFunc):
            if not self.in_having:
                agg = self._agg(n)  # an unsupported aggregate says so first
                raise self._err(f"the aggregate {self._text(n)} cannot be used in WHERE (WHERE "
                                "filters rows before they are grouped)", n,
                                expected=f"HAVING {self._text(n)} ... to filter groups"
                                if agg is not None else None)
            agg = self._agg(n)
            assert agg is not None
            return agg
        if self.in_having and isinstance(n, exp.Column) and len(n.parts) == 1 \
                and not self._names_tensor(n.parts[0].name):
            alias = self._alias_ref(n, self.aliases)
            if alias is not None:
                return alias
        ref = self._colref(n) or self._rowid_call(n) or self._shape(n)
        if ref is not None:
            return ref
        lit = self._literal(n)
        if lit is not None:
            return lit
        if isinstance(n, exp.Placeholder):
            return self._param(n)
        if isinstance(n, exp.Array):
            raise self._err("a vector literal can only be the query of COSINE_SIMILARITY, "
                            "L2_DISTANCE or INNER_PRODUCT", n, expected=_EXPECT_VALUE)
        fn = _function(n)
        if fn is not None:
            if fn[0] in _SCORE_FUNCS:
                raise self._err(f"{fn[0]} is a score: use it in SELECT or ORDER BY, not in a "
                                "condition", n, expected=_EXPECT_VALUE)
            if fn[0] not in SUPPORTED_FUNCTIONS:
                raise self._unknown_function(fn[0], n)
            raise self._err(f"{fn[0]}(...) is a condition, not a value", n,
                            expected=_EXPECT_VALUE)
        if isinstance(n, (exp.Predicate, exp.Connector, exp.Not)):
            raise self._err(f"`{self._text(n)}` is a condition, not a value", n,
                            expected=_EXPECT_VALUE)
        raise self._unsupported(n, "a condition", _EXPECT_VALUE)

    # ---- leaves ------------------------------------------------------------------------

    def _names_tensor(self, name: str) -> bool:
        return self.tensors is not None and name in self.tensors

    def _is_word(self, n: exp.Expr, word: str) -> bool:
        """An unquoted one-part name equal to `word` (any case)."""
        if not isinstance(n, exp.Column) or len(n.parts) != 1:
            return False
        part = n.parts[0]
        return (isinstance(part, exp.Identifier) and not part.quoted
                and part.name.lower() == word)

    def _colref(self, n: exp.Expr, *, as_tensor: bool = False) -> Col | RowId | None:
        """A column name (``x``, ``"x"``, ``meta.a.b``), ROW_ID or id; None if not a name."""
        if not isinstance(n, (exp.Column, exp.Dot)):
            return None
        if isinstance(n, exp.Column) and isinstance(n.this, exp.Star):
            raise self._err("table.* is not supported; use *", n, expected=_EXPECT_SELECT)
        try:
            parts = n.parts
        except Exception:
            parts = []
        if not parts or not all(isinstance(p, exp.Identifier) for p in parts):
            if isinstance(n, exp.Column):
                return None
            raise self._unsupported(n, "a name", "a tensor name or a json path tensor.a.b")
        names = [p.name for p in parts]
        if len(parts) == 1 and not as_tensor and not parts[0].args.get("quoted"):
            if names[0].upper() == "ROW_ID":
                return RowId()
            if names[0].lower() == "id" and not self._names_tensor(names[0]):
                return RowId()
        if self.tensors is not None and names[0] not in self.tensors:
            raise self._err(f"unknown tensor {names[0]!r}", n,
                            expected="a tensor name, ROW_ID or id",
                            available=self._tensor_list())
        return Col(names[0], tuple(names[1:]))

    def _rowid_call(self, n: exp.Expr) -> RowId | None:
        fn = _function(n)
        if fn is None or fn[0] != "ROW_ID":
            return None
        if fn[1]:
            raise self._err("ROW_ID() takes no arguments", n,
                            expected=SUPPORTED_FUNCTIONS["ROW_ID"])
        return RowId()

    def _shape(self, n: exp.Expr) -> Shape | None:
        if isinstance(n, exp.Bracket):
            fn = _function(_unparen(n.this))
            extra = [k for k, v in n.args.items()
                     if k not in ("this", "expressions") and v not in (None, False, [])]
            if fn is None or fn[0] != "SHAPE" or extra:
                raise self._err(f"subscripts are only supported on SHAPE(col), got "
                                f"`{self._text(n)}`", n, expected=SUPPORTED_FUNCTIONS["SHAPE"])
            if len(fn[1]) != 1 or len(n.expressions) != 1:
                raise self._err("expected SHAPE(col)[dim] with one tensor and one dimension", n,
                                expected=SUPPORTED_FUNCTIONS["SHAPE"])
            return Shape(self._col_arg(fn[1][0], "SHAPE"),
                         self._const_int(n.expressions[0], "a SHAPE dimension"))
        fn = _function(n)
        if fn is None or fn[0] != "SHAPE":
            return None
        args = self._no_kwargs("SHAPE", fn[1])
        if len(args) != 2:
            raise self._err("SHAPE needs a dimension: SHAPE(col)[dim] or SHAPE(col, dim)", n,
                            expected=SUPPORTED_FUNCTIONS["SHAPE"])
        return Shape(self._col_arg(args[0], "SHAPE"),
                     self._const_int(args[1], "a SHAPE dimension"))

    def _col_arg(self, node: exp.Expr, fname: str) -> Col:
        n = _unparen(node)
        ref = self._colref(n, as_tensor=True)
        if not isinstance(ref, Col):
            raise self._err(f"the first argument of {fname} must be a tensor name, got "
                            f"`{self._text(n)}`", n, expected=SUPPORTED_FUNCTIONS[fname])
        if ref.path:
            raise self._err(f"the first argument of {fname} must be a tensor name, got the "
                            f"json field `{self._text(n)}`", n,
                            expected=SUPPORTED_FUNCTIONS[fname] + f" with col a tensor, e.g. "
                            f"{ref.name}")
        return ref

    def _text_arg(self, node: exp.Expr, fname: str) -> Lit | Param:
        n = _unparen(node)
        if isinstance(n, exp.Literal) and n.is_string:
            return Lit(n.this)
        if isinstance(n, exp.Placeholder):
            return self._param(n)
        raise self._err(f"the text of {fname} must be a 'string' or a $param, got "
                        f"`{self._text(n)}`", n, expected=SUPPORTED_FUNCTIONS[fname])

    def _vector_arg(self, node: exp.Expr, fname: str) -> Lit | Param:
        n = _unparen(node)
        if isinstance(n, exp.Placeholder):
            return self._param(n)
        if isinstance(n, exp.Array):
            values: list[float] = []
            for item in n.expressions:
                num = self._number(_unparen(item))
                if num is None:
                    raise self._err("a vector literal holds only numbers", item,
                                    expected="[0.1, 0.2, ...] or ARRAY[0.1, 0.2, ...]")
                values.append(float(num))
            if not values:
                raise self._err("a vector literal cannot be empty", n,
                                expected="[0.1, 0.2, ...] or ARRAY[0.1, 0.2, ...]")
            return Lit(values)
        raise self._err(f"the query of {fname} must be a $param or a vector literal, got "
                        f"`{self._text(n)}`", n, expected=SUPPORTED_FUNCTIONS[fname])

    def _literal(self, n: exp.Expr) -> Lit | None:
        if isinstance(n, exp.Literal) and n.is_string:
            return Lit(n.this)
        if isinstance(n, exp.Boolean):
            return Lit(bool(n.this))
        if isinstance(n, exp.Null):
            return Lit(None)
        num = self._number(n)
        return None if num is None else Lit(num)

    def _number(self, n: exp.Expr) -> int | float | None:
        """A numeric literal, possibly negated; None if `n` is not one."""
        sign = 1
        node = n
        while isinstance(node, exp.Neg):
            sign, node = -sign, _unparen(node.this)
        if not isinstance(node, exp.Literal) or node.is_string:
            return None
        text = str(node.this)
        value: int | float
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise self._err(f"invalid number {text!r}", n) from None
        if isinstance(value, float) and not math.isfinite(value):
            raise self._err(f"number {text!r} is out of range", n)
        return sign * value

    def _param(self, n: exp.Placeholder) -> Param:
        name = n.args.get("this")
        if not isinstance(name, str) or not name:
            raise self._err("positional parameters (?) are not supported", n,
                            expected="a named parameter: $name or :name")
        self.used.setdefault(name, self._offset(n))
        return Param(name)

    def _resolve(self, n: exp.Expr, what: str) -> Any:
        """The value of a constant: a numeric literal, or a parameter looked up in params."""
        n = _unparen(n)
        if isinstance(n, exp.Placeholder):
            p = self._param(n)
            if self.params is None:
                raise self._err(f"{what} is the parameter ${p.name}, but no params were given",
                                n, expected=f"a number, or params={{'{p.name}': ...}}")
            return self.params.get(p.name)  # a missing one is reported by _check_params
        num = self._number(n)
        if num is None:
            raise self._err(f"{what} must be a number or a $param, got `{self._text(n)}`", n)
        return num

    def _const_int(self, node: exp.Expr, what: str) -> int:
        n = _unparen(node)
        value = self._resolve(n, what)
        if isinstance(n, exp.Placeholder) and n.name not in (self.params or {}):
            return 0
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 0:
            raise self._err(f"{what} must be a non-negative integer, got {value!r}", node,
                            expected="an integer >= 0")
        return int(value)

    def _const_number(self, node: exp.Expr, what: str) -> float:
        n = _unparen(node)
        value = self._resolve(n, what)
        if isinstance(n, exp.Placeholder) and n.name not in (self.params or {}):
            return 0.0
        if (not isinstance(value, numbers.Real) or isinstance(value, bool)
                or not math.isfinite(float(value))):
            raise self._err(f"{what} must be a finite number, got {value!r}", node,
                            expected="a number")
        return float(value)

    def _limit_arg(self, node: Any, clause: str) -> int | None:
        if node is None:
            return None
        if not isinstance(node, (exp.Limit, exp.Offset)):
            raise self._unsupported(node, clause, f"{clause} n with n a non-negative integer")
        extra = [k for k, v in node.args.items()
                 if k != "expression" and v not in (None, False, [])]
        if extra or node.expression is None:
            raise self._err(f"only {clause} n is supported, got `{self._text(node)}`", node,
                            expected=f"{clause} n with n a non-negative integer or $param")
        return self._const_int(node.expression, clause)

    def _check_params(self) -> None:
        if self.params is None:
            return
        missing = [name for name in self.used if name not in self.params]
        if missing:
            given = ", ".join(sorted(map(str, self.params))) or "(none)"
            listed = ", ".join(f"${m}" for m in missing)
            raise self._err(f"missing parameter{'s' if len(missing) > 1 else ''} {listed}",
                            self.used[missing[0]], expected="a value in params for each",
                            available=f"given params: {given}")


def _unparen(node: exp.Expr) -> exp.Expr:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def _number_node(n: exp.Expr) -> bool:
    while isinstance(n, exp.Neg):
        n = _unparen(n.this)
    return isinstance(n, exp.Literal) and not n.is_string


def _function(n: exp.Expr) -> tuple[str, list[exp.Expr]] | None:
    """(upper-case name, arguments) of a function call, or None."""
    if isinstance(n, exp.Anonymous):
        return str(n.name).upper(), list(n.expressions)
    if isinstance(n, exp.Func):
        args: list[exp.Expr] = []
        for key in n.arg_types:
            value = n.args.get(key)
            for v in value if isinstance(value, list) else [value]:
                if isinstance(v, exp.Expr):
                    args.append(v)
        return n.sql_name().upper(), args
    return None


def _describe_col(e: Expr) -> str:
    return ".".join((e.name, *e.path)) if isinstance(e, Col) else type(e).__name__


def _walk(e: Expr) -> list[Expr]:
    """`e` and every expression inside it (conditions and their operands)."""
    out: list[Expr] = [e]
    if isinstance(e, (And, Or)):
        for it in e.items:
            out += _walk(it)
    elif isinstance(e, Not):
        out += _walk(e.item)
    elif isinstance(e, Cmp):
        out += _walk(e.left) + _walk(e.right)
    elif isinstance(e, In):
        for v in (e.expr, *e.values):
            out += _walk(v)
    elif isinstance(e, Between):
        out += _walk(e.expr) + _walk(e.low) + _walk(e.high)
    elif isinstance(e, (IsNull, Like)):
        out += _walk(e.expr)
    return out


def _count(n: int) -> str:
    return f"{n} argument" if n == 1 else f"{n} arguments"
