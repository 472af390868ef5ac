"""Grouped queries: SELECT COUNT(*) WHERE ..., GROUP BY with COUNT / SUM / AVG / MIN / MAX,
HAVING, ORDER BY an aggregate, LIMIT; checked against numpy on generated data."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
from plane.query import AggregateResult, View

CLASSES = ["cat", "dog", "bird"]
WORDS = ["red", "green", "blue"]


def _make(url: Any, n: int, seed: int = 0, commit: bool = True) -> tuple[Any, dict[str, Any]]:
    """A dataset of `n` rows (labels, width, score, flag, color, embedding) and its columns."""
    rng = np.random.default_rng(seed)
    cols = {"labels": rng.integers(0, 3, n), "width": rng.integers(0, 200, n),
            "score": rng.random(n), "flag": rng.random(n) < 0.5,
            "color": [WORDS[i] for i in rng.integers(0, 3, n)],
            "embedding": rng.random((n, 4)).astype(np.float32),
            "images": np.zeros((n, 2, 2, 3), np.uint8)}
    ds = plane.create(_fresh(url))
    ds.create_tensor("labels", htype="class_label", class_names=CLASSES)
    ds.create_tensor("width", dtype="int64")
    ds.create_tensor("score", dtype="float64")
    ds.create_tensor("flag", dtype="bool")
    ds.create_tensor("color", htype="text")
    ds.create_tensor("embedding", htype="embedding")
    ds.create_tensor("images", htype="image")
    if n:
        ds.extend({k: v for k, v in cols.items()})
    if commit:
        ds.commit("data")
    return ds, cols


def _fresh(url: Any) -> Any:
    """`url`, made unique for mem:// (the in-memory store lives as long as the process)."""
    return f"{url}-{uuid.uuid4().hex[:12]}" if str(url).startswith("mem://") else url


def _agg(ds: Any, sql: str, params: dict[str, Any] | None = None) -> AggregateResult:
    res = ds.query(sql, params)
    assert isinstance(res, AggregateResult)
    return res


# ---- COUNT(*) ----------------------------------------------------------------------------------
def test_count_star_with_and_without_where() -> None:
    ds, c = _make("mem://agg-count", 300)
    res = _agg(ds, "SELECT COUNT(*) WHERE width < 100")
    want = int((c["width"] < 100).sum())
    assert res.count == want and int(res) == want
    assert res.columns == ["COUNT(*)"] and res.rows() == [{"COUNT(*)": want}]
    assert _agg(ds, "SELECT COUNT(*)").count == 300
    assert _agg(ds, "SELECT COUNT(1) AS n WHERE labels = 'dog' AND width < 100").count == \
        int(((c["labels"] == 1) & (c["width"] < 100)).sum())
    assert _agg(ds, "SELECT COUNT(*) WHERE width < $w", {"w": 50}).count == \
        int((c["width"] < 50).sum())
    none = _agg(ds, "SELECT COUNT(*) WHERE width > 1000")  # SQL: one row, count 0
    assert len(none) == 1 and none.count == 0
    assert ds.search().where("width < 100").count() == want


def test_count_reads_no_tensor_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """COUNT(*) with a WHERE reads only the filtered tensor; GROUP BY labels reads labels
    (only at the matching rows) and nothing else."""
    ds, c = _make("mem://agg-reads", 200)
    from plane.core._snapshot import Snapshot

    reads: list[tuple[str, int]] = []
    real = Snapshot.read

    def spy(self: Snapshot, name: str, positions: np.ndarray, *a: Any, **k: Any) -> Any:
        reads.append((name, int(np.asarray(positions).shape[0])))
        return real(self, name, positions, *a, **k)
    monkeypatch.setattr(Snapshot, "read", spy)
    assert _agg(ds, "SELECT COUNT(*)").count == 200
    assert reads == []
    _agg(ds, "SELECT COUNT(*) WHERE width < 100")
    assert {n for n, _ in reads} == {"width"}
    reads.clear()
    res = _agg(ds, "SELECT labels, COUNT(*) WHERE width < 100 GROUP BY labels")
    assert {n for n, _ in reads} == {"width", "labels"}
    assert ("labels", int((c["width"] < 100).sum())) in reads
    assert sum(res["COUNT(*)"]) == int((c["width"] < 100).sum())
    reads.clear()  # a key or aggregate that cannot work is refused before the filter reads
    for sql in ("SELECT COUNT(*) WHERE width < 100 GROUP BY images",
                "SELECT AVG(color) WHERE width < 100"):
        with pytest.raises(plane.QueryError):
            ds.query(sql)
    assert reads == []


def test_count_uses_the_btree_index_and_explain_shows_it(tmp_path: Path) -> None:
    ds, c = _make(tmp_path / "d", 500)
    ds.create_index("width", kind="btree")
    sql = "SELECT COUNT(*) WHERE width < 100"
    plan = ds.explain(sql)
    assert "btree index at commit" in plan and "aggregate COUNT(*) over" in plan
    assert _agg(ds, sql).count == int((c["width"] < 100).sum())
    ds.append({"labels": "dog", "width": 5, "score": 0.5, "flag": True, "color": "red",
               "embedding": np.zeros(4, np.float32), "images": np.zeros((2, 2, 3), np.uint8)})
    assert _agg(ds, sql).count == int((c["width"] < 100).sum()) + 1  # after the index


# ---- GROUP BY ----------------------------------------------------------------------------------
def test_group_by_class_label_shows_names_and_orders_by_count() -> None:
    ds, c = _make("mem://agg-group", 400)
    res = _agg(ds, "SELECT labels, COUNT(*) AS n WHERE width < 100 GROUP BY labels "
                   "ORDER BY n DESC LIMIT 2")
    keep = c["width"] < 100
    counts = {name: int(((c["labels"] == i) & keep).sum()) for i, name in enumerate(CLASSES)}
    want = sorted(counts.items(), key=lambda kv: (-kv[1], CLASSES.index(kv[0])))[:2]
    assert [(r["labels"], r["n"]) for r in res.rows()] == want
    assert [(r["labels"], r["n"]) for r in res] == want  # iterating gives the rows
    assert res.to_dict() == {"labels": [k for k, _ in want], "n": [v for _, v in want]}
    # data reads as ids, as view["labels"] does
    assert res["labels"].tolist() == [CLASSES.index(k) for k, _ in want]
    text = str(res)
    assert text.splitlines()[0].split() == ["labels", "|", "n"]
    assert want[0][0] in text and "|" in text
    # no ORDER BY: groups in key (class id) order; OFFSET skips groups
    res = _agg(ds, "SELECT labels, COUNT(*) WHERE width < 100 GROUP BY labels")
    assert res.to_dict()["labels"] == [n for n in CLASSES if counts[n]]
    res = _agg(ds, "SELECT labels, COUNT(*) AS n GROUP BY 1 ORDER BY n, labels OFFSET 1")
    assert len(res) == 2


def test_group_by_text_bool_int_and_two_keys() -> None:
    ds, c = _make("mem://agg-keys", 300)
    res = _agg(ds, "SELECT color, flag, COUNT(*) AS n, SUM(width) AS s, AVG(score) AS a, "
                   "MIN(width) AS lo, MAX(score) AS hi GROUP BY color, flag")
    colors = np.asarray(c["color"])
    rows = res.rows()
    want_keys = sorted({(str(k), bool(f)) for k, f in zip(colors, c["flag"])})
    assert [(r["color"], r["flag"]) for r in rows] == want_keys
    for r in rows:
        m = (colors == r["color"]) & (c["flag"] == r["flag"])
        assert r["n"] == int(m.sum())
        assert r["s"] == int(c["width"][m].sum()) and isinstance(r["s"], int)
        assert r["a"] == pytest.approx(float(c["score"][m].mean()))
        assert r["lo"] == int(c["width"][m].min())
        assert r["hi"] == pytest.approx(float(c["score"][m].max()))
    res = _agg(ds, "SELECT width, COUNT(*) AS n GROUP BY width ORDER BY width DESC LIMIT 3")
    top = sorted(set(c["width"].tolist()), reverse=True)[:3]
    assert res["width"].tolist() == top
    assert res["n"].tolist() == [int((c["width"] == w).sum()) for w in top]


def test_having_filters_groups() -> None:
    ds, c = _make("mem://agg-having", 300)
    counts = {n: int((c["labels"] == i).sum()) for i, n in enumerate(CLASSES)}
    cut = sorted(counts.values())[1]
    res = _agg(ds, "SELECT labels, COUNT(*) AS n GROUP BY labels HAVING n >= $k",
               {"k": cut})
    assert {r["labels"] for r in res} == {k for k, v in counts.items() if v >= cut}
    res = _agg(ds, "SELECT labels, COUNT(*) GROUP BY labels HAVING labels = 'dog' OR "
                   "COUNT(*) < 0")
    assert [r["labels"] for r in res] == ["dog"]
    res = _agg(ds, "SELECT labels, MAX(width) AS m GROUP BY labels HAVING MAX(width) "
                   "BETWEEN 0 AND 1000 AND NOT labels IN ('cat')")
    assert [r["labels"] for r in res] == ["dog", "bird"]


def test_empty_groups_and_nulls() -> None:
    ds, _ = _make("mem://agg-empty", 50)
    res = _agg(ds, "SELECT labels, COUNT(*) WHERE width > 1000 GROUP BY labels")
    assert len(res) == 0 and res.rows() == [] and "(no groups)" in str(res)
    res = _agg(ds, "SELECT COUNT(*) AS n, SUM(width) AS s, AVG(score) AS a WHERE width > 1000")
    assert res.rows() == [{"n": 0, "s": None, "a": None}]  # SQL: SUM of nothing is NULL
    assert "NULL" in str(res)
    empty, _ = _make("mem://agg-none", 0, commit=False)
    assert _agg(empty, "SELECT COUNT(*)").count == 0


def test_to_arrow_keeps_ids_and_names() -> None:
    pa = pytest.importorskip("pyarrow")
    ds, c = _make("mem://agg-arrow", 100)
    res = _agg(ds, "SELECT labels, COUNT(*) AS n GROUP BY labels")
    t = res.to_arrow()
    assert pa.types.is_dictionary(t.schema.field("labels").type)
    assert t.column("labels").to_pylist() == [n for i, n in enumerate(CLASSES)
                                               if (c["labels"] == i).any()]
    assert t.column("n").to_pylist() == res["n"].tolist()
    assert t.schema.field("n").type == pa.int64()


# ---- the dataset as ds.query sees it -----------------------------------------------------------
def test_counts_see_deleted_rows_and_uncommitted_appends(tmp_path: Path) -> None:
    ds, c = _make(tmp_path / "d", 200)
    ds.create_index("width", kind="btree")
    ds.delete(list(range(0, 200, 3)))  # uncommitted deletes
    ds.extend({"labels": [1, 1], "width": [1, 2], "score": [0.0, 0.0], "flag": [True, False],
               "color": ["red", "red"], "embedding": np.zeros((2, 4), np.float32),
               "images": np.zeros((2, 2, 2, 3), np.uint8)})
    kept = np.ones(200, bool)
    kept[::3] = False
    labels = np.concatenate([c["labels"][kept], [1, 1]])
    width = np.concatenate([c["width"][kept], [1, 2]])
    assert _agg(ds, "SELECT COUNT(*)").count == len(ds) == labels.shape[0]
    assert _agg(ds, "SELECT COUNT(*) WHERE width < 100").count == int((width < 100).sum())
    res = _agg(ds, "SELECT labels, COUNT(*) AS n WHERE width < 100 GROUP BY labels")
    assert res.to_dict() == {
        "labels": [n for i, n in enumerate(CLASSES) if ((labels == i) & (width < 100)).any()],
        "n": [int(((labels == i) & (width < 100)).sum()) for i in range(3)
              if ((labels == i) & (width < 100)).any()]}
    assert res.commit_id is None
    assert ds.has_changes  # counting published nothing


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(labels=st.lists(st.integers(0, 2), min_size=0, max_size=60),
       data=st.data(), op=st.sampled_from(["<", "<=", ">", ">=", "=", "!="]),
       limit=st.integers(0, 90), label=st.sampled_from(CLASSES),
       combine=st.sampled_from(["", "AND", "OR"]), deleted=st.integers(0, 4))
def test_counts_match_numpy_oracle(labels: list[int], data: st.DataObject, op: str,
                                   limit: int, label: str, combine: str, deleted: int) -> None:
    n = len(labels)
    widths = data.draw(st.lists(st.integers(0, 120), min_size=n, max_size=n))
    ds = plane.create(_fresh("mem://agg-prop"))
    ds.create_tensor("labels", htype="class_label", class_names=CLASSES)
    ds.create_tensor("width", dtype="int64")
    if n:
        ds.extend({"labels": labels, "width": widths})
    lab, wid = np.asarray(labels, np.int64), np.asarray(widths, np.int64)
    if deleted and n:
        gone = sorted(set(range(0, n, deleted + 1)))
        ds.delete(gone)
        lab, wid = np.delete(lab, gone), np.delete(wid, gone)
    pyop = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "=": np.equal, "!=": np.not_equal}[op]
    mask = pyop(wid, limit)
    where = f"width {op} {limit}"
    if combine:
        other = lab == CLASSES.index(label)
        mask = mask & other if combine == "AND" else mask | other
        where = f"{where} {combine} labels = '{label}'"
    assert _agg(ds, f"SELECT COUNT(*) WHERE {where}").count == int(mask.sum())
    res = _agg(ds, f"SELECT labels, COUNT(*) AS n, SUM(width) AS s WHERE {where} "
                   "GROUP BY labels ORDER BY n DESC, labels")
    want = [(CLASSES[i], int((mask & (lab == i)).sum()), int(wid[mask & (lab == i)].sum()))
            for i in range(3) if (mask & (lab == i)).any()]
    want.sort(key=lambda t: (-t[1], CLASSES.index(t[0])))
    assert [(r["labels"], r["n"], r["s"]) for r in res] == want


# ---- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("sql", "parts"), [
    ("SELECT labels, COUNT(*) GROUP BY nope", ["unknown tensor 'nope'", "available tensors"]),
    ("SELECT COUNT(*) GROUP BY images", ["cannot GROUP BY 'images'", "image samples",
                                         "GROUP BY a scalar tensor"]),
    ("SELECT COUNT(*) GROUP BY embedding", ["cannot GROUP BY 'embedding'", "scalar"]),
    ("SELECT width, COUNT(*)", ["width is in SELECT but is neither grouped nor aggregated",
                                "GROUP BY it, or aggregate it"]),
    ("SELECT width, COUNT(*) GROUP BY labels", ["width is in SELECT but is neither grouped",
                                                "add it to GROUP BY (labels"]),
    ("SELECT * GROUP BY labels", ["SELECT * cannot be grouped"]),
    ("SELECT STDDEV(width)", ["aggregate STDDEV is not supported", "COUNT(*), COUNT(col)"]),
    ("SELECT COUNT(DISTINCT width)", ["COUNT(DISTINCT ...) is not supported", "GROUP BY"]),
    ("SELECT SUM(labels)", ["SUM(labels)", "class ids", "GROUP BY labels"]),
    ("SELECT AVG(color)", ["AVG(color)", "text samples", "numeric scalar tensor"]),
    ("SELECT SUM(*)", ["only COUNT takes *"]),
    ("SELECT COUNT(*) WHERE COUNT(*) > 2", ["cannot be used in WHERE", "HAVING"]),
    ("SELECT width HAVING width > 2", ["HAVING filters groups", "WHERE to filter rows"]),
    ("SELECT labels, COUNT(*) GROUP BY labels HAVING width > 3",
     ["width in HAVING is neither grouped nor aggregated"]),
    ("SELECT labels, COUNT(*) GROUP BY labels HAVING labels = 'cow'", ["no class 'cow'"]),
    ("SELECT COUNT(*) ORDER BY COSINE_SIMILARITY(embedding, [1, 0, 0, 0]) DESC",
     ["a score cannot be used in ORDER BY of a grouped query", "WHERE"]),
    ("SELECT COUNT(*), COSINE_SIMILARITY(embedding, [1, 0, 0, 0])",
     ["a score cannot be used in SELECT of a grouped query"]),
    ("SELECT labels ORDER BY COUNT(*)", ["needs a grouped query"]),
    ("SELECT COUNT(*), COUNT(*)", ["two result columns are named 'COUNT(*)'", "alias"]),
    ("SELECT COUNT(*) GROUP BY ROW_ID", ["GROUP BY ROW_ID makes one group per row"]),
])
def test_errors_name_the_problem(sql: str, parts: list[str]) -> None:
    ds, _ = _make("mem://agg-errors", 20)
    before = ds.snapshot().state_key
    with pytest.raises(plane.QueryError) as info:
        ds.query(sql)
    for p in parts:
        assert p in str(info.value), (p, str(info.value))
    assert ds.snapshot().state_key == before


def test_count_attribute_refuses_grouped_results() -> None:
    ds, _ = _make("mem://agg-count-err", 20)
    res = _agg(ds, "SELECT labels, COUNT(*) GROUP BY labels")
    with pytest.raises(plane.QueryError, match="res.count is the value of the one COUNT"):
        int(res)
    with pytest.raises(plane.QueryError, match="no result column 'x'; columns: labels"):
        res["x"]
    with pytest.raises(plane.QueryError, match="a ranking .* orders rows"):
        ds.search().nearest("embedding", np.ones(4)).count()


def test_row_queries_still_return_views() -> None:
    ds, _ = _make("mem://agg-rows", 20)
    assert isinstance(ds.query("SELECT labels WHERE width < 100"), View)


# ---- explain and the CLI -----------------------------------------------------------------------
def test_explain_shows_the_aggregate_steps() -> None:
    ds, _ = _make("mem://agg-explain", 100)
    plan = ds.explain("SELECT labels, COUNT(*) AS n WHERE width < 100 GROUP BY labels "
                      "HAVING n > 1 ORDER BY n DESC LIMIT 2")
    steps = [re.sub(r"^\d+\. ", "", s) for s in plan.splitlines()]
    assert steps[1].startswith("filter:")
    assert steps[2].startswith("group by labels: read 1 tensor(s) at")
    assert steps[3].startswith("aggregate COUNT(*) over") and "group(s)" in steps[3]
    assert steps[4].startswith("having:") and steps[5].startswith("sort")
    assert steps[6].startswith("limit 2 offset 0")


def test_explain_says_ascending_similarity_is_least_similar_first() -> None:
    ds, _ = _make("mem://agg-asc", 50)
    plan = ds.explain("SELECT labels ORDER BY COSINE_SIMILARITY(embedding, $q) LIMIT 3",
                      {"q": np.ones(4)})
    assert "least similar rows first (write DESC for the nearest)" in plan


def test_cli_prints_groups_as_a_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    from plane.cli import main

    _, c = _make(tmp_path / "d", 120)
    url = str(tmp_path / "d")
    sql = "SELECT labels, COUNT(*) AS n WHERE width < 100 GROUP BY labels ORDER BY labels"
    assert main(["query", url, sql]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["labels", "|", "n"]
    body = [[x.strip() for x in line.split("|")] for line in lines[2:]]
    keep = c["width"] < 100
    assert body == [[n, str(int(((c["labels"] == i) & keep).sum()))]
                    for i, n in enumerate(CLASSES) if ((c["labels"] == i) & keep).any()]
    assert main(["query", url, "SELECT COUNT(*) WHERE width < 100"]) == 0
    assert capsys.readouterr().out.splitlines()[2].strip() == str(int(keep.sum()))
    assert main(["query", url, sql, "--explain"]) == 0
    assert "aggregate COUNT(*)" in capsys.readouterr().out
    assert main(["query", url, "SELECT width, COUNT(*)"]) != 0
    assert "neither grouped nor aggregated" in capsys.readouterr().err


def test_count_with_full_text_and_a_bm25_index(tmp_path: Path) -> None:
    ds, c = _make(tmp_path / "d", 120)
    sql = "SELECT color, COUNT(*) AS n WHERE CONTAINS(color, 'red') OR width < 10 GROUP BY color"
    colors = np.asarray(c["color"])
    keep = (colors == "red") | (c["width"] < 10)
    want = {w: int((keep & (colors == w)).sum()) for w in WORDS if (keep & (colors == w)).any()}
    assert {r["color"]: r["n"] for r in _agg(ds, sql)} == want
    ds.create_index("color", kind="bm25")
    assert "bm25 index" in ds.explain(sql)
    assert {r["color"]: r["n"] for r in _agg(ds, sql)} == want


def test_nulls_form_one_group_and_are_not_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the null seam (Snapshot.null_mask): COUNT(col) skips nulls, SUM / MIN skip
    them, GROUP BY puts them in one group, last, shown as None / NULL."""
    ds, c = _make("mem://agg-nulls", 60)
    from plane.core._snapshot import Snapshot

    null = c["width"] % 7 == 0  # pretend these widths are missing
    real = Snapshot.null_mask

    def mask(self: Snapshot, name: str, positions: np.ndarray) -> np.ndarray | None:
        return null[positions] if name == "width" else real(self, name, positions)
    monkeypatch.setattr(Snapshot, "null_mask", mask)
    res = _agg(ds, "SELECT COUNT(*) AS rows_, COUNT(width) AS n, SUM(width) AS s, "
                   "MIN(width) AS lo")
    ok = ~null
    assert res.rows() == [{"rows_": 60, "n": int(ok.sum()), "s": int(c["width"][ok].sum()),
                           "lo": int(c["width"][ok].min())}]
    res = _agg(ds, "SELECT width, COUNT(*) AS n GROUP BY width")
    keys = res.to_dict()["width"]
    assert keys[-1] is None and res.rows()[-1]["n"] == int(null.sum())
    assert keys[:-1] == sorted(set(c["width"][ok].tolist()))
    assert "NULL" in str(_agg(ds, "SELECT width, COUNT(*) GROUP BY width ORDER BY width "
                                  "DESC LIMIT 100"))
    res = _agg(ds, "SELECT width, COUNT(*) GROUP BY width HAVING width IS NULL")
    assert res.to_dict()["width"] == [None]


def test_min_max_keep_bool_and_skip_nan() -> None:
    ds = plane.create(_fresh("mem://agg-nan"))
    ds.create_tensor("flag", dtype="bool")
    ds.create_tensor("f", dtype="float32")
    ds.extend({"flag": [True, False, True, True], "f": [1.5, np.nan, 2.0, np.nan]})
    ds.commit("data")
    res = _agg(ds, "SELECT flag, MIN(flag) AS lo, MAX(f) AS hi, SUM(flag) AS s GROUP BY flag")
    rows = res.rows()
    assert [r["lo"] for r in rows] == [False, True]
    assert all(isinstance(r["lo"], bool) for r in rows)
    assert np.isnan(rows[0]["hi"]) and rows[1]["hi"] == 2.0  # only NaN: NaN; else skipped
    assert [r["s"] for r in rows] == [0, 3]
