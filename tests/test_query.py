"""Hybrid query: filters, vector indexes vs brute force, BM25, fusion, versions, views, CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
from plane.query._text import TextIndex, tokenize
from plane.query._vector import build_partition, exact_search

pytest.importorskip("faiss")

WORDS = "red blue green car bike dog cat house tree sky road river".split()


def _make(path: Any, n: int = 4000, dim: int = 16, seed: int = 0) -> tuple[plane.Dataset,
                                                                           dict[str, Any]]:
    rng = np.random.default_rng(seed)
    ds = plane.create(path)
    ds.create_tensor("embedding", htype="embedding", shape=(dim,))
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog", "bird"])
    ds.create_tensor("caption", htype="text")
    ds.create_tensor("width", dtype="int32")
    ds.create_tensor("meta", htype="json")
    ds.create_tensor("image", dtype="uint8")
    cols = {
        "embedding": rng.standard_normal((n, dim)).astype(np.float32),
        "labels": rng.integers(0, 3, n),
        "caption": [" ".join(rng.choice(WORDS, 5)) for _ in range(n)],
        "width": rng.integers(0, 1000, n).astype(np.int32),
        "meta": [{"src": f"s{i % 4}", "q": i % 10} for i in range(n)],
        "image": [np.zeros((1 + i % 5, 2), np.uint8) for i in range(n)],
    }
    ds.extend(cols)
    ds.commit("data")
    return ds, cols


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[plane.Dataset, dict[str, Any]]:
    return _make(tmp_path_factory.mktemp("q") / "d")


def _brute(cols: dict[str, Any], mask: np.ndarray, q: np.ndarray, k: int,
           metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    pos = np.flatnonzero(mask)
    return exact_search(cols["embedding"][pos], pos, q, k, metric)


def test_scalar_filters_match_numpy(data: Any) -> None:
    ds, c = data
    lab, w = c["labels"], c["width"]
    cases = {
        "labels = 'dog' AND width > 100": (lab == 1) & (w > 100),
        "labels != 'dog' OR width <= 10": (lab != 1) | (w <= 10),
        "NOT (width BETWEEN 200 AND 300)": ~((w >= 200) & (w <= 300)),
        "labels IN ('cat', 'bird') AND width < 500": np.isin(lab, [0, 2]) & (w < 500),
        "meta.src = 's1' AND meta.q >= 5": np.array([(i % 4 == 1) and (i % 10 >= 5)
                                                     for i in range(len(lab))]),
        "SHAPE(image)[0] > 3": np.array([1 + i % 5 > 3 for i in range(len(lab))]),
        "caption LIKE 'red%'": np.array([t.startswith("red") for t in c["caption"]]),
    }
    for where, mask in cases.items():
        res = ds.query(f"SELECT id WHERE {where}")
        assert res.ids.tolist() == ds.row_ids[mask].tolist(), where
    res = ds.query("SELECT id WHERE width > $w LIMIT 7 OFFSET 3", params={"w": 900})
    assert res.ids.tolist() == ds.row_ids[w > 900][3:10].tolist()
    by_w = ds.query("SELECT width WHERE labels = 'cat' ORDER BY width DESC, ROW_ID LIMIT 5")
    assert by_w["width"].tolist() == sorted(w[lab == 0].tolist(), reverse=True)[:5]


def test_contains_all_terms_and_phrases(data: Any) -> None:
    ds, c = data
    toks = [t.split() for t in c["caption"]]
    want = [i for i, t in enumerate(toks) if "red" in t and "car" in t]
    assert ds.query("SELECT id WHERE CONTAINS(caption, 'red car')").ids.tolist() == \
        ds.row_ids[want].tolist()
    phrase = [i for i, t in enumerate(toks) if any(t[j:j + 2] == ["red", "car"]
                                                   for j in range(len(t) - 1))]
    got = ds.query("""SELECT id WHERE CONTAINS(caption, '"red car"')""").ids.tolist()
    assert got == ds.row_ids[phrase].tolist() and 0 < len(got) < len(want)


def test_flat_index_equals_brute_force_for_every_metric(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    ids = np.arange(3000, dtype=np.int64) * 3
    for metric in ("cosine", "l2", "ip"):
        part = build_partition(x, ids, "flat", metric)
        for q in rng.standard_normal((5, 24)).astype(np.float32):
            gi, gs = part.search(q, 10)
            ei, es = exact_search(x, ids, q, 10, metric)
            assert gi.tolist() == ei.tolist()
            np.testing.assert_allclose(gs, es, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kind", ["hnsw", "ivf_flat", "ivf_pq"])
def test_ann_recall_at_defaults_on_50k_vectors(kind: str) -> None:
    rng = np.random.default_rng(5)
    centers = rng.standard_normal((200, 32)).astype(np.float32) * 2
    x = centers[rng.integers(0, 200, 50_000)] + rng.standard_normal((50_000, 32)).astype(
        np.float32)
    ids = np.arange(50_000, dtype=np.int64)
    part = build_partition(x, ids, kind, "l2")
    qs = x[rng.integers(0, 50_000, 40)] + 0.3 * rng.standard_normal((40, 32)).astype(np.float32)
    recall = np.mean([len(set(part.search(q, 10)[0]) & set(exact_search(x, ids, q, 10, "l2")[0]))
                      / 10 for q in qs])
    assert recall >= 0.95, f"{kind} recall@10 {recall:.3f}"


@pytest.mark.parametrize("kind", ["hnsw", "ivf_flat"])
def test_filtered_vector_queries_keep_k_and_recall(tmp_path: Path, kind: str) -> None:
    ds, c = _make(tmp_path / "d", n=30_000, dim=16, seed=1)
    ds.create_index("embedding", kind=kind, metric="cosine")
    rng = np.random.default_rng(9)
    w = c["width"]
    for sel, where in ((0.01, "width < 10"), (0.10, "width < 100"), (0.50, "width < 500")):
        mask = w < int(where.split("<")[1])
        assert abs(mask.mean() - sel) < 0.02
        recalls = []
        for q in rng.standard_normal((8, 16)).astype(np.float32):
            res = ds.query(f"SELECT id WHERE {where} ORDER BY COSINE_SIMILARITY(embedding, $q) "
                           "DESC LIMIT 10", params={"q": q})
            assert len(res) == min(10, int(mask.sum()))
            pos = np.searchsorted(ds.row_ids, res.ids)
            assert mask[pos].all()  # every result satisfies the filter
            want, _ = _brute(c, mask, q, 10)
            recalls.append(len(set(pos.tolist()) & set(want.tolist())) / 10)
        assert np.mean(recalls) >= 0.95, (kind, where, np.mean(recalls))
    plan = ds.explain("SELECT id ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 3",
                      params={"q": np.ones(16, np.float32)})
    assert f"{kind} index at commit" in plan


def test_bm25_and_hybrid_fusion_follow_their_definitions(data: Any) -> None:
    ds, c = data
    q = c["embedding"][7]
    text = "red car"
    bm = ds.query("SELECT id, score ORDER BY BM25(caption, 'red car') DESC LIMIT 50")
    ref = TextIndex.build(c["caption"], ds.row_ids)
    rid, rsc = ref.search(text, 50, None, ref.stats(tokenize(text)))
    assert bm.ids.tolist() == rid.tolist()
    np.testing.assert_allclose(bm.scores, rsc, rtol=1e-5)
    vec = ds.query("SELECT id ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 100",
                   params={"q": q})
    txt = ds.query("SELECT id ORDER BY BM25(caption, 'red car') DESC LIMIT 100")
    hyb = ds.query("SELECT id, score ORDER BY RRF(COSINE_SIMILARITY(embedding, $q), "
                   "BM25(caption, 'red car')) DESC LIMIT 10", params={"q": q})
    fused: dict[int, float] = {}
    for lst in (vec.ids.tolist(), txt.ids.tolist()):
        for r, i in enumerate(lst):
            fused[i] = fused.get(i, 0.0) + 1.0 / (60 + r + 1)
    want = sorted(fused, key=lambda i: (-fused[i], i))[:10]
    assert hyb.ids.tolist() == want
    np.testing.assert_allclose(hyb.scores, [fused[i] for i in want], rtol=1e-5)
    built = ds.search().match("caption", "red car").nearest("embedding", q).limit(10).run()
    assert sorted(built.ids.tolist()) == sorted(want)


def test_each_commit_answers_with_its_own_truth_and_indexes_are_never_stale(
        tmp_path: Path) -> None:
    ds, _c = _make(tmp_path / "d", n=3000, dim=8, seed=2)
    first = ds.commit_id
    ds.create_index("embedding", kind="hnsw", metric="l2")
    q = np.full(8, 5.0, np.float32)
    sql = "SELECT id, score ORDER BY L2_DISTANCE(embedding, $q) ASC LIMIT 3"
    before = ds.query(sql, params={"q": q})
    ds["embedding"][100] = q  # an update after the index was built
    ds.extend({"embedding": [q + 0.01], "labels": [0], "caption": ["new"], "width": [1],
               "meta": [{}], "image": [np.zeros((1, 2), np.uint8)]})
    second = ds.commit("closer rows")
    after = ds.query(sql, params={"q": q})
    assert after.ids[:2].tolist() == [ds.row_ids[100], ds.row_ids[3000]]
    assert "added or changed since the index's commit" in ds.explain(sql, params={"q": q})
    old = plane.open(tmp_path / "d", version=first)
    assert old.query(sql, params={"q": q}).ids.tolist() == before.ids.tolist()
    assert plane.open(tmp_path / "d", version=second).query(sql, params={"q": q}).ids.tolist() \
        == after.ids.tolist()
    ds.delete([100])
    ds.commit("drop it")
    assert ds.row_ids.tolist().count(int(after.ids[0])) == 0
    assert int(after.ids[0]) not in ds.query(sql, params={"q": q}).ids.tolist()


def test_views_save_reopen_and_stream(tmp_path: Path) -> None:
    import torch

    ds, c = _make(tmp_path / "d", n=2000, dim=8)
    view = ds.query("SELECT caption, width, labels WHERE labels = 'bird' AND width > 500")
    assert len(view) == int(((c["labels"] == 2) & (c["width"] > 500)).sum())
    view.save("wide_birds")
    ds.extend({k: v[:10] for k, v in c.items()})
    ds.commit("more rows")
    again = plane.load_view(plane.open(tmp_path / "d", read_only=True), "wide_birds")
    assert again.ids.tolist() == view.ids.tolist() and again.commit_id == view.commit_id
    assert again["width"].tolist() == view["width"].tolist()
    batches = list(again.pytorch(batch_size=16, tensors=["width", "labels"]))
    got = sorted(int(x) for b in batches for x in b["width"])
    assert got == sorted(view["width"].tolist())
    assert all(isinstance(b["width"], torch.Tensor) for b in batches)
    assert {str(r["labels"]) for r in view.rows()} == {"bird"}
    with pytest.raises(plane.PlaneError, match="no view 'nope'.*wide_birds"):
        plane.load_view(ds, "nope")


def test_query_errors_name_what_exists(data: Any) -> None:
    ds, _ = data
    with pytest.raises(plane.QueryError, match="no class 'dgo'.*cat, dog, bird"):
        ds.query("SELECT id WHERE labels = 'dgo'")
    with pytest.raises(plane.QueryError, match="nope"):
        ds.query("SELECT id WHERE nope > 3")
    with pytest.raises(plane.QueryError, match=r"\$q"):
        ds.query("SELECT id ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 3")
    with pytest.raises(plane.QueryError, match="commit first"):
        d2 = plane.create(f"mem://q-{id(ds)}")
        d2.create_tensor("e", htype="embedding", shape=(2,))
        d2.extend({"e": np.zeros((3, 2), np.float32)})
        d2.create_index("e")
    with pytest.raises(plane.QueryError, match="unknown index kind"):
        ds.create_index("embedding", kind="annoy")


def test_cli_query_and_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from plane.cli import main

    _make(tmp_path / "d", n=500, dim=4)
    url = str(tmp_path / "d")
    assert main(["index", "create", url, "caption", "--kind", "bm25"]) == 0
    assert "bm25 index on 'caption'" in capsys.readouterr().out
    assert main(["query", url, "SELECT id, width WHERE width > 990 ORDER BY width DESC"]) == 0
    out = capsys.readouterr().out
    assert "width" in out.splitlines()[0] and len(out.splitlines()) >= 3
    assert main(["index", "create", url, "width", "--kind", "btree"]) == 0
    assert "btree index on 'width'" in capsys.readouterr().out
    assert main(["query", url, "SELECT id, width WHERE width > 990", "--explain"]) == 0
    assert "btree index at commit" in capsys.readouterr().out
    assert main(["index", "list", url]) == 0
    assert "caption" in capsys.readouterr().out
    assert main(["query", url, "SELEC nonsense"]) == 1
    assert "plane: error:" in capsys.readouterr().err


def test_minmax_statistics_skip_chunks_and_stay_correct(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("t", dtype="int64", chunk_bytes=8 * 1000)  # 1,000 rows per chunk
    ds.create_tensor("x", dtype="float32")
    n = 20_000
    ds.extend({"t": np.arange(n), "x": np.arange(n, dtype=np.float32) % 7})
    ds.commit("sorted t")
    info = ds.create_index("t", kind="minmax")
    assert info.kind == "minmax"

    def rows(where: str) -> list[int]:
        at = {int(r): i for i, r in enumerate(ds.row_ids)}
        return sorted(at[int(r)] for r in ds.query(f"SELECT id WHERE {where}").ids)

    sql_where = "t BETWEEN 4500 AND 5600 AND x < 3"
    assert rows(sql_where) == [i for i in range(n) if 4500 <= i <= 5600 and i % 7 < 3]
    assert "minmax statistics keep 2 of 20 chunk(s)" in ds.explain(f"SELECT id WHERE {sql_where}")
    # later writes: appended rows have no statistics (read), patched rows are re-checked
    ds.extend({"t": [5000], "x": [0.0]})
    ds["t"][10] = 5001
    ds.commit("more")
    assert rows("t >= 5000 AND t <= 5001") == [10, 5000, 5001, n]
    assert rows("t IN (3, 19999)") == [3, 19999]
    assert rows("t = 7") == [7] and rows("t < 2") == [0, 1]
    ds.create_tensor("v", htype="embedding", shape=(2,))
    ds.commit("v")
    with pytest.raises(plane.QueryError, match="scalar numeric"):
        ds.create_index("v", kind="minmax")


def test_optimize_index_rebuilds_at_the_current_commit(tmp_path: Path) -> None:
    ds, c = _make(tmp_path / "d", n=3000, dim=8, seed=4)
    old = ds.create_index("embedding", kind="ivf_flat", metric="l2", partition_rows=1000)
    ds.create_index("caption", kind="bm25")
    assert ds.indexes.optimize() == []  # nothing newer than the indexes
    q = np.full(8, 3.0, np.float32)
    ds.extend({k: v[:5] for k, v in c.items()})
    ds.extend({"embedding": [q], "labels": [0], "caption": ["fresh"], "width": [1],
               "meta": [{}], "image": [np.zeros((1, 2), np.uint8)]})
    head = ds.commit("more rows")
    sql = "SELECT id ORDER BY L2_DISTANCE(embedding, $q) ASC LIMIT 1"
    assert "added or changed since" in ds.explain(sql, params={"q": q})
    new = ds.indexes.optimize()
    assert sorted(i.kind for i in new) == ["bm25", "ivf_flat"]
    vec = next(i for i in new if i.kind == "ivf_flat")
    assert vec.commit == head and vec.rows == 3006 and len(vec.partitions) == 4
    assert vec.params["nlist"] == old.params["nlist"] and vec.metric == "l2"
    plan = ds.explain(sql, params={"q": q})
    assert "added or changed since" not in plan and f"at commit {head[:12]}" in plan
    assert ds.query(sql, params={"q": q}).ids.tolist() == [int(ds.row_ids[-1])]


@pytest.mark.parametrize("kind,metric", [("hnsw", "cosine"), ("ivf_flat", "l2"),
                                         ("flat", "ip"), ("ivf_pq", "cosine")])
def test_prepared_top_k_path_equals_the_general_executor(
        tmp_path: Path, kind: str, metric: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from plane.query import _parse_cached, _prepared
    from plane.query._builder import run_query

    rng = np.random.default_rng(11)
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("embedding", htype="embedding", shape=(8,))
    ds.create_tensor("width", dtype="int32")
    x = rng.standard_normal((12_000, 8)).astype(np.float32)
    x[100:140] = x[7]  # exact ties: ordered by row id on both paths
    ds.extend({"embedding": x, "width": np.arange(12_000, dtype=np.int32)})
    ds.commit("data")
    ds.create_index("embedding", kind=kind, metric=metric, partition_rows=5000)
    fn = {"cosine": "COSINE_SIMILARITY", "l2": "L2_DISTANCE", "ip": "INNER_PRODUCT"}[metric]
    order = "ASC" if metric == "l2" else "DESC"
    used = []
    real_run = _prepared.Prepared.run

    def spy(self: Any, params: Any, text: str) -> Any:
        out = real_run(self, params, text)
        used.append(out is not None)
        return out

    monkeypatch.setattr(_prepared.Prepared, "run", spy)
    sqls = [f"SELECT id ORDER BY {fn}(embedding, $q) {order} LIMIT 10",
            f"SELECT id, width ORDER BY {fn}(embedding, $q) {order} LIMIT 5 OFFSET 3"]
    queries = [x[7], *rng.standard_normal((6, 8)).astype(np.float32)]
    for sql in sqls:
        for q in queries:
            got = ds.query(sql, {"q": q})
            snap = ds.snapshot()
            want = run_query(snap, _parse_cached(sql, {"q": q}, list(snap.tensor_names)), sql,
                             prepared=False)
            assert got.ids.tolist() == want.ids.tolist()
            assert got.positions.tolist() == want.positions.tolist()
            np.testing.assert_array_equal(got.scores, want.scores)
            assert got.commit_id == want.commit_id and got.columns == want.columns
            assert got["width"].tolist() == want["width"].tolist()
    assert used and all(used)  # the prepared path answered every query above
    used.clear()
    b = ds.search().nearest("embedding", queries[1], metric=metric).limit(10).run()
    assert used == [True] and b.ids.tolist() == ds.query(sqls[0], {"q": queries[1]}).ids.tolist()
    if metric != "ip":
        tied = ds.query(sqls[0], {"q": x[7]})  # 41 equal vectors: ties come out by row id
        same = tied.scores[1:] == tied.scores[:-1]
        assert same.sum() >= 5 and (np.diff(tied.ids)[same] > 0).all()
    ds.extend({"embedding": x[:3] * 2, "width": np.zeros(3, np.int32)})  # index now stale
    used.clear()
    res = ds.query(sqls[0], {"q": x[0]})
    assert not used or not any(used)  # the general executor answers for the new rows
    assert len(res) == 10 and int(ds.row_ids[0 if metric == "l2" else 12_000]) in res.ids
    ds.commit("more")
    ds.create_index("embedding", kind=kind, metric=metric, partition_rows=5000)
    with pytest.raises(plane.QueryError, match="3 numbers but 'embedding' holds vectors of "
                       r"shape \(8,\)"):
        ds.query(sqls[0], {"q": np.ones(3, np.float32)})  # the executor's error
    with pytest.raises(plane.QueryError, match="not a list of numbers"):
        ds.query(sqls[0], {"q": ["a", "b"]})


_OPS = ["=", "<", "<=", ">", ">="]
_TEXTS = ["", "a", "ab", "b", "ba", "é", "a b"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_btree_index_answers_like_a_scan_across_later_writes(data: st.DataObject) -> None:
    """Every predicate a btree index answers gives the rows a plain scan gives, on the
    indexed commit and after updates, deletes and appends that the index has not seen."""
    n = data.draw(st.integers(1, 200), label="rows")
    model = {
        "i": data.draw(st.lists(st.integers(-20, 20), min_size=n, max_size=n)),
        "f": data.draw(st.lists(st.floats(-5, 5, width=32) | st.just(float("nan")),
                                min_size=n, max_size=n)),
        "c": data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)),
        "t": data.draw(st.lists(st.sampled_from(_TEXTS), min_size=n, max_size=n)),
    }
    ds = plane.create("mem://")
    ds.create_tensor("i", dtype="int32", chunk_bytes=1024)  # several chunks
    ds.create_tensor("f", dtype="float32")
    ds.create_tensor("c", htype="class_label", class_names=["x", "y", "z"])
    ds.create_tensor("t", htype="text")
    ds.extend({"i": np.array(model["i"], np.int32), "f": np.array(model["f"], np.float32),
               "c": np.array(model["c"]), "t": model["t"]})
    ds.commit("data")
    for name in model:
        ds.create_index(name, kind="btree")
    for _ in range(data.draw(st.integers(0, 4), label="later writes")):
        op = data.draw(st.sampled_from(["update", "delete", "append"]))
        if op == "append" or not len(ds):
            ds.extend({"i": np.array([7], np.int32), "f": np.array([0.5], np.float32),
                       "c": np.array([1]), "t": ["ab"]})
            for k, v in (("i", 7), ("f", 0.5), ("c", 1), ("t", "ab")):
                model[k].append(v)
        else:
            at = data.draw(st.integers(0, len(ds) - 1))
            if op == "delete":
                ds.delete([at])
                for col in model.values():
                    del col[at]
            else:
                ds["i"][at] = -20
                ds["t"][at] = "zz"
                model["i"][at], model["t"][at] = -20, "zz"
        if data.draw(st.booleans(), label="commit"):
            ds.commit("w")
    f32 = np.array(model["f"], np.float32)
    for _ in range(6):
        col = data.draw(st.sampled_from(sorted(model)))
        op = data.draw(st.sampled_from([*_OPS, "between", "in"]))
        if col == "t":
            vals = [data.draw(st.sampled_from([*_TEXTS, "zz", "c"])) for _ in range(2)]
        elif col == "c":
            vals = [data.draw(st.sampled_from(["x", "y", "z"])) for _ in range(2)]
        else:
            vals = [data.draw(st.integers(-21, 21) | st.floats(-6, 6, width=32)
                              | st.floats(-6, 6) | st.floats(-6, 6).map(np.float64)
                              | st.just(float("nan")) | st.integers(-2**40, 2**40))
                    for _ in range(2)]
        cmp = {"=": np.equal, "<": np.less, "<=": np.less_equal, ">": np.greater,
               ">=": np.greater_equal}
        key = [["x", "y", "z"].index(v) for v in vals] if col == "c" else vals
        have = np.array(model[col], dtype=object) if col == "t" else (
            f32 if col == "f" else np.array(model[col]))
        if op == "between":
            where = f"{col} BETWEEN $a AND $b"
            want = (have >= key[0]) & (have <= key[1])
        elif op == "in":
            where = f"{col} IN ($a, $b)"
            want = (have == key[0]) | (have == key[1])
        else:
            where = f"{col} {op} $a"
            want = cmp[op](have, key[0])
        res = ds.query(f"SELECT id WHERE {where}", {"a": vals[0], "b": vals[1]})
        at = {int(r): p for p, r in enumerate(ds.row_ids)}
        got = sorted(at[int(r)] for r in res.ids)
        assert got == np.flatnonzero(np.asarray(want, bool)).tolist(), (where, vals)
        assert "btree index at commit" in ds.explain(f"SELECT id WHERE {where}",
                                                     {"a": vals[0], "b": vals[1]})


def test_btree_index_explains_and_rejects_what_it_cannot_hold(tmp_path: Path) -> None:
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("w", dtype="int64")
    ds.create_tensor("v", htype="embedding", shape=(2,))
    ds.extend({"w": np.arange(1000) % 100, "v": np.zeros((1000, 2), np.float32)})
    ds.commit("c")
    info = ds.create_index("w", kind="btree")
    assert info.kind == "btree" and "btree" in [i.kind for i in plane.query.list_indexes(ds)]
    plan = ds.explain("SELECT id WHERE w = 5")
    assert "w = 5: btree index at commit" in plan and "10 rows" in plan
    ds.extend({"w": [5], "v": np.zeros((1, 2), np.float32)})
    assert "1 rows changed since checked directly" in ds.explain("SELECT id WHERE w = 5")
    assert len(ds.query("SELECT id WHERE w = 5")) == 11
    ds.commit("more")
    before = sorted(ds.store.list(""))
    with pytest.raises(plane.QueryError, match="btree index needs a scalar numeric"):
        ds.create_index("v", kind="btree")
    assert sorted(ds.store.list("")) == before  # nothing written


def test_a_query_after_an_unflushed_delete_sees_the_delete() -> None:
    ds = plane.create("mem://")
    ds.create_tensor("w", dtype="int64")
    ds.extend({"w": [1, 2, 1, 3]})
    ds.commit("c")
    assert len(ds.query("SELECT id WHERE w = 1")) == 2  # caches derived from this state
    ds.delete([0])
    assert ds.has_changes
    res = ds.query("SELECT id WHERE w = 1")
    assert res.ids.tolist() == [int(ds.row_ids[1])]


def test_review_regressions_commit_id_big_ints_and_numpy_limits(tmp_path: Path) -> None:
    """A prepared query's view names the current commit; huge integer literals work on a
    btree index; numpy scalar parameters are part of the parse-cache key."""
    rng = np.random.default_rng(4)
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("embedding", htype="embedding", shape=(4,))
    ds.create_tensor("x", dtype="int8")
    ds.create_tensor("f", dtype="float32")
    ds.extend({"embedding": rng.standard_normal((50, 4)).astype(np.float32),
               "x": np.arange(50, dtype=np.int8), "f": np.linspace(0, 1, 50, dtype=np.float32)})
    ds.commit("c1")
    ds.create_index("embedding", kind="flat", metric="cosine")
    sql = "SELECT id ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 5"
    q = np.ones(4, np.float32)
    assert ds.query(sql, {"q": q}).commit_id == ds.commit_id
    c2 = ds.commit("same state", allow_empty=True)
    assert ds.query(sql, {"q": q}).commit_id == c2  # not the commit it was prepared on
    ds.create_index("x", kind="btree")
    ds.create_index("f", kind="btree")
    big = 2 ** 70
    assert len(ds.query("SELECT id WHERE x < $b", {"b": big})) == 50
    assert len(ds.query("SELECT id WHERE f > $b", {"b": big})) == 0
    assert "btree index" in ds.explain("SELECT id WHERE x < $b", {"b": big})
    lim = "SELECT id WHERE x >= 0 LIMIT $k"
    assert [len(ds.query(lim, {"k": np.int64(k)})) for k in (3, 7)] == [3, 7]
