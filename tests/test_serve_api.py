"""`plane serve` through aiohttp's test client: pages, media, query, versions, edits, errors."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest

import plane

pytest.importorskip("aiohttp")

from _serve import ROWS, SCRIPT, Client, build, card_ids, csrf

from plane.serve import make_app
from plane.serve._app import CTX


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A dataset the read-only tests share (nothing writes to it)."""
    path = tmp_path_factory.mktemp("serve") / "ds"
    ds = build(path)
    ds.create_index("labels", kind="btree")
    return path


@pytest.fixture
def fresh(tmp_path: Path) -> Path:
    path = tmp_path / "ds"
    build(path)
    return path


def client_for(path: Path, **kw: object) -> Iterator[Client]:
    c = Client(make_app(str(path), **kw))  # type: ignore[arg-type]
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def client(shared: Path) -> Iterator[Client]:
    yield from client_for(shared, read_only=True)


@pytest.fixture
def wclient(fresh: Path) -> Iterator[Client]:
    yield from client_for(fresh)


def q(text: str) -> str:
    return quote(text, safe="")


# ---- overview, grid, sample ------------------------------------------------------------------
def test_overview_lists_schema_versions_log_and_indexes(client: Client, shared: Path) -> None:
    status, html, _ = client.get("/")
    assert status == 200
    ds = plane.open(str(shared), read_only=True)
    for name, t in ds.tensors.items():
        assert f"<td>{name}</td><td>{t.htype}</td>" in html
    assert "cat, dog, fox" in html and "jpeg" in html
    for b in ("main", "alice", "bob"):
        assert f'href="/?v={b}">{b}</a>' in html
    for e in ds.versions.log():
        assert e["id"][:12] in html and e["message"] in html and e["author"] in html
    assert "<td>labels</td><td>btree</td>" in html
    assert ds.commit_id is not None and ds.commit_id in html
    assert f"{ROWS:,} rows" in html


def test_grid_pages_show_exactly_their_rows(client: Client, shared: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    ids = ds.row_ids
    status, html, _ = client.get("/grid?start=10&n=5")
    assert status == 200
    assert card_ids(html) == ids[10:15].tolist()
    for i in range(10, 15):
        assert f"caption-{i:03d}" in html
        assert f'src="/media?v=main&amp;t=images&amp;row={i}"' in html
    assert "caption-009" not in html and "caption-015" not in html
    assert 'href="/grid?v=main&amp;start=15&amp;n=5"' in html  # next page
    assert 'href="/grid?v=main&amp;start=5&amp;n=5"' in html   # previous page
    _, last, _ = client.get(f"/grid?start={ROWS - 3}&n=5")
    assert card_ids(last) == ids[ROWS - 3:].tolist() and 'id="next"' not in last
    # boxes are drawn over the first image: the SVG's view box is the image's size
    assert '<svg viewBox="0 0 64 48"' in html and 'width="20.0" height="10.0"' in html


def test_grid_at_a_branch_shows_its_values(client: Client, shared: Path) -> None:
    alice = plane.open(str(shared), read_only=True, version="alice")
    _, html, _ = client.get("/grid?v=alice&start=0&n=3")
    cards = html.split('class="card"')[1:]
    names = alice["labels"].class_names
    for i, card in enumerate(cards):
        assert f"<dt>labels</dt> <dd>{names[int(alice['labels'][i].numpy())]}</dd>" in card


def test_sample_page_shows_every_tensor_full_size(client: Client, shared: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    status, html, _ = client.get("/sample?row=6")
    assert status == 200
    for name in ds.tensors:
        assert f"<td>{name}</td>" in html
    assert 'src="/media?v=main&amp;t=images&amp;row=6&amp;px=0"' in html
    assert "caption-006" in html
    rid = int(ds.row_ids[6])
    assert f'href="/query?v=main&amp;like={rid}&amp;emb=embedding"' in html


def test_thumbnail_is_the_decoded_image_scaled(client: Client, shared: Path) -> None:
    from PIL import Image

    ds = plane.open(str(shared), read_only=True)
    status, body, headers = client.get("/media?t=images&row=5&px=32")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    got = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), np.int16)
    assert got.shape == (24, 32, 3)
    want = np.asarray(Image.fromarray(ds["images"][5].numpy()).resize(
        (32, 24), Image.Resampling.BILINEAR), np.int16)
    assert np.abs(got - want).mean() < 4
    status, full, headers = client.get("/media?t=images&row=5&px=0")
    assert full == ds["images"][5].bytes() and headers["Content-Type"] == "image/jpeg"


def test_thumbnails_are_cached(client: Client) -> None:
    thumbs = client.app[CTX].thumbs
    _, first, _ = client.get("/media?t=images&row=8")
    hits = thumbs.hits
    _, again, _ = client.get("/media?t=images&row=8")
    assert again == first and thumbs.hits == hits + 1
    # another branch with the same image bytes shares the entry (content-keyed)
    _, other, _ = client.get("/media?v=alice&t=images&row=8")
    assert other == first and thumbs.hits == hits + 2


# ---- query -----------------------------------------------------------------------------------
def test_query_shows_the_rows_of_ds_query_and_the_plan(client: Client, shared: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    sql = "SELECT * WHERE labels = 'dog' AND ROW_ID > 0 LIMIT 7"
    status, html, _ = client.get("/query?sql=" + q(sql))
    assert status == 200
    assert card_ids(html) == ds.query(sql).ids.tolist()
    assert f"<pre id=\"explain\">{_esc(ds.explain(sql))}</pre>" in html


def _esc(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_more_like_this_fills_q_with_the_rows_embedding(client: Client, shared: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    rid = int(ds.row_ids[4])
    status, html, _ = client.get(f"/query?like={rid}&emb=embedding")
    assert status == 200
    want = ds.query("SELECT * ORDER BY COSINE_SIMILARITY(embedding, $q) DESC LIMIT 24",
                    {"q": ds["embedding"][4].numpy()})
    assert card_ids(html) == want.ids.tolist() and card_ids(html)[0] == rid
    score = float(re.findall(r'score ([0-9.]+)', html)[0])
    assert score == pytest.approx(1.0, abs=1e-4)


# ---- errors: the Python error's text, on the page --------------------------------------------
def test_bad_sql_shows_the_query_error(client: Client, shared: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    sql = "SELECT * WHERE nosuch > 3"
    with pytest.raises(plane.QueryError) as e:
        ds.query(sql)
    status, html, _ = client.get("/query?sql=" + q(sql))
    assert status == 400
    assert _esc(str(e.value)) in html and "QueryError" in html and "Traceback" not in html
    assert f">{_esc(sql)}</textarea>" in html  # the box keeps the query to fix


def test_unknown_version_shows_the_version_error(client: Client, shared: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    with pytest.raises(plane.VersionNotFoundError) as e:
        ds.versions.resolve("nope")
    for path in ("/grid?v=nope", "/?v=nope", "/versions?a=main&b=nope"):
        status, html, _ = client.get(path)
        assert status == 404 and _esc(str(e.value)) in html, path


def test_bad_parameters_are_named(client: Client) -> None:
    status, html, _ = client.get("/grid?start=abc")
    assert status == 400 and "parameter start=&#x27;abc&#x27; is not a whole number" in html
    status, html, _ = client.get("/media?t=nosuch&row=0")
    assert status == 404 and "no tensor &#x27;nosuch&#x27;" in html
    status, html, _ = client.get("/media?t=labels&row=0")
    assert status == 400 and "only image, video and audio" in html
    status, html, _ = client.get(f"/sample?row={ROWS}")
    assert status == 400 and "out of range" in html


def test_a_corrupt_chunk_shows_its_checksum_error_and_other_pages_work(tmp_path: Path) -> None:
    path = tmp_path / "ds"
    build(path)
    victim = next(f for f in (path / "chunks").iterdir() if b"caption-030" in f.read_bytes())
    data = bytearray(victim.read_bytes())
    data[data.index(b"caption-030")] ^= 0x01
    victim.write_bytes(bytes(data))
    ds = plane.open(str(path), read_only=True)
    with pytest.raises(plane.ChecksumError) as e:
        ds["caption"][30:31].numpy()
    assert b"caption-000" not in data  # rows 0-4 live in another chunk
    for c in client_for(path, read_only=True):
        status, html, _ = c.get("/grid?start=28&n=4")
        assert status == 200 and "ChecksumError" in html and _esc(str(e.value)) in html
        assert "Traceback" not in html
        status, html, _ = c.get("/grid?start=0&n=5")  # reads only its rows: not the bad chunk
        assert status == 200 and "ChecksumError" not in html and "caption-004" in html


# ---- versions --------------------------------------------------------------------------------
def test_diff_shows_changed_rows_old_and_new(client: Client, shared: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    d = ds.versions.diff("main", "alice")
    status, html, _ = client.get("/versions?a=main&b=alice")
    assert status == 200
    table = html.split('class="diffrows"')[1]
    names = ds["labels"].class_names
    for rid, old, new in d.values("labels"):
        assert (f"<td>updated</td><td><code>{rid}</code></td><td>{names[int(old)]}</td>"
                f"<td>{names[int(new)]}</td>") in table
    assert len(re.findall("<td>updated</td>", table)) == 2


def test_merge_preview_lists_the_conflicts_merge_would_raise(client: Client, shared: Path,
                                                             tmp_path: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    status, html, _ = client.get("/versions?a=alice&b=bob")
    assert status == 200
    merge = html.split('id="merge"')[1]
    # the real merge (on a copy, so `shared` stays as it is) raises with these rows
    import shutil

    shutil.copytree(shared, tmp_path / "copy")
    w = plane.open(str(tmp_path / "copy"), version="alice")
    with pytest.raises(plane.MergeConflictError) as e:
        w.merge("bob")
    want = e.value.conflicts
    assert want == {"labels": [int(ds.row_ids[1])]}
    assert f"<td>labels</td><td>both updated</td><td>{want['labels'][0]}</td>" in merge
    assert "caption" not in merge  # bob's caption change is no conflict
    assert plane.open(str(tmp_path / "copy"), version="alice").commit_id == \
        ds.versions.resolve("alice")[1]


def test_merge_preview_of_a_clean_merge(client: Client) -> None:
    _, html, _ = client.get("/versions?a=main&b=alice")
    merge = html.split('id="merge"')[1]
    assert "fast-forward" in merge and "2 updated" in merge and 'id="noconflict"' in merge


# ---- edits -----------------------------------------------------------------------------------
def test_relabel_commits_on_the_branch(wclient: Client, fresh: Path) -> None:
    ds = plane.open(str(fresh), read_only=True)
    before = ds.commit_id
    rid = int(ds.row_ids[6])
    _, page, _ = wclient.get("/sample?row=6")
    status, _, headers = wclient.post("/edit", {
        "csrf": csrf(page), "v": "main", "id": str(rid), "action": "relabel",
        "tensor": "labels", "label": "dog", "branch": "main", "message": "row 6 is a dog"})
    assert status == 303 and headers["Location"].startswith("/?v=main&done=")
    after = plane.open(str(fresh), read_only=True)
    assert after.versions.log()[0]["message"] == "row 6 is a dog"
    assert after.versions.log()[0]["parents"] == [before]
    d = after.versions.diff(before, after.commit_id)
    assert d.tensors["labels"].updated.tolist() == [rid]
    assert after["labels"].class_names[int(after["labels"][6].numpy())] == "dog"
    _, html, _ = wclient.get(headers["Location"])
    assert "row 6 is a dog" in html and f"committed {after.commit_id}" in html


def test_relabel_a_selection_on_a_new_branch(wclient: Client, fresh: Path) -> None:
    ds = plane.open(str(fresh), read_only=True)
    ids = ds.row_ids[[0, 2, 4]].tolist()
    _, page, _ = wclient.get("/grid")
    status, body, _ = wclient.post("/edit", [
        ("csrf", csrf(page)), ("v", "main"), *[("id", str(i)) for i in ids],
        ("action", "relabel"), ("tensor", "labels"), ("label_new", "bird"),
        ("branch", "main"), ("new_branch", "birds"), ("message", "")])
    assert status == 303, body
    birds = plane.open(str(fresh), read_only=True, version="birds")
    assert birds["labels"].class_names == ("cat", "dog", "fox", "bird")
    assert [birds["labels"].class_names[int(x)] for x in birds["labels"][[0, 2, 4]].numpy()] \
        == ["bird"] * 3
    assert plane.open(str(fresh), read_only=True).commit_id == ds.commit_id  # main unchanged


def test_delete_rows_commits(wclient: Client, fresh: Path) -> None:
    ds = plane.open(str(fresh), read_only=True)
    ids = ds.row_ids[[1, 3]].tolist()
    _, page, _ = wclient.get("/grid")
    status, _, _ = wclient.post("/edit", [("csrf", csrf(page)), ("v", "main"),
                                          *[("id", str(i)) for i in ids],
                                          ("action", "delete"), ("branch", "main")])
    assert status == 303
    after = plane.open(str(fresh), read_only=True)
    assert len(after) == ROWS - 2 and not set(ids) & set(after.row_ids.tolist())
    assert after.versions.log()[0]["message"] == "delete 2 row(s) (plane serve)"


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_a_failing_edit_changes_nothing(wclient: Client, fresh: Path) -> None:
    ds = plane.open(str(fresh), read_only=True)
    rid = int(ds.row_ids[0])
    _, page, _ = wclient.get("/grid")
    before = _files(fresh)
    cases = [({"action": "relabel", "tensor": "caption", "label": "x"}, "not class_label"),
             ({"action": "relabel", "tensor": "labels", "label": "dog", "branch": "nope"},
              "no branch, tag or commit"),
             ({"action": "explode"}, "unknown edit"),
             ({"action": "delete", "id": "123"}, "are not in")]
    for extra, text in cases:
        form = {"csrf": csrf(page), "v": "main", "id": str(rid), "branch": "main", **extra}
        status, html, _ = wclient.post("/edit", form)
        assert status in (400, 404) and text in html, (extra, html[-400:])
    assert _files(fresh) == before


def test_edits_need_the_csrf_token(wclient: Client, fresh: Path) -> None:
    ds = plane.open(str(fresh), read_only=True)
    before = _files(fresh)
    for token in (None, "forged"):
        form = {"v": "main", "id": str(int(ds.row_ids[0])), "action": "delete"}
        if token:
            form["csrf"] = token
        status, html, _ = wclient.post("/edit", form)
        assert status == 403 and "CSRF token" in html
    assert _files(fresh) == before


def test_read_only_server_has_no_forms_and_refuses_edits(fresh: Path) -> None:
    before = _files(fresh)
    for c in client_for(fresh, read_only=True):
        for path in ("/", "/grid", "/sample?row=0", "/query?sql=SELECT+*+LIMIT+3"):
            _, html, _ = c.get(path)
            assert 'method="post"' not in html and 'type="checkbox"' not in html, path
            assert "(read-only)" in html
        csrf_token = c.app[CTX].guard.csrf
        status, html, _ = c.post("/edit", {"csrf": csrf_token, "v": "main", "id": "1",
                                           "action": "delete"})
        assert status == 403 and "--read-only" in html
        status, html, _ = c.post("/view/save", {"csrf": csrf_token, "v": "main",
                                                "sql": "SELECT * LIMIT 1", "name": "x"})
        assert status == 403 and "--read-only" in html
    assert _files(fresh) == before


def test_save_a_query_as_a_view(wclient: Client, fresh: Path) -> None:
    sql = "SELECT * WHERE labels = 'cat' LIMIT 5"
    _, page, _ = wclient.get("/query?sql=" + q(sql))
    status, _, headers = wclient.post("/view/save", {"csrf": csrf(page), "v": "main",
                                                     "sql": sql, "name": "cats"})
    assert status == 303 and headers["Location"] == "/view?name=cats"
    ds = plane.open(str(fresh), read_only=True)
    want = plane.load_view(ds, "cats").ids.tolist()
    assert want == ds.query(sql).ids.tolist()
    status, html, _ = wclient.get("/view?name=cats")
    assert status == 200 and card_ids(html) == want
    _, html, _ = wclient.get("/")
    assert 'href="/view?name=cats">cats</a>' in html


def test_a_grouped_query_shows_its_groups(client: Client, shared: Path) -> None:
    ds = plane.open(str(shared), read_only=True)
    sql = "SELECT labels, COUNT(*) AS n GROUP BY labels ORDER BY n DESC"
    res = ds.query(sql)
    assert isinstance(res, plane.AggregateResult)
    status, html, _ = client.get("/query?sql=" + q(sql))
    assert status == 200 and f'<p id="count">{len(res):,} group(s)</p>' in html
    for r in res.rows():
        assert f"<td>{_esc(str(r['labels']))}</td><td>{r['n']}</td>" in html
    assert "aggregate COUNT(*)" in html and card_ids(html) == []


def test_a_grouped_query_cannot_be_saved_as_a_view(wclient: Client, fresh: Path) -> None:
    sql = "SELECT COUNT(*) WHERE labels = 'cat'"
    _, page, _ = wclient.get("/query?sql=" + q("SELECT * LIMIT 1"))
    status, html, _ = wclient.post("/view/save", {"csrf": csrf(page), "v": "main",
                                                  "sql": sql, "name": "cats"})
    assert status == 400 and "only a query of rows can be saved as a view" in html
    assert plane.list_views(plane.open(str(fresh), read_only=True)) == []


def test_script_in_a_caption_is_text(client: Client) -> None:
    for path in ("/grid?start=0&n=6", "/sample?row=3"):
        _, html, _ = client.get(path)
        assert SCRIPT not in html and _esc(SCRIPT) in html, path


def test_import_plane_does_not_import_aiohttp() -> None:
    import subprocess
    import sys

    code = "import sys, plane, plane.cli; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_video_first_frame_and_json(tmp_path: Path) -> None:
    av = pytest.importorskip("av")
    from PIL import Image

    def mp4(level: int) -> bytes:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mp4") as c:
            s = c.add_stream("mpeg4", rate=10)
            s.width, s.height, s.pix_fmt = 48, 32, "yuv420p"
            for i in range(3):
                frame = av.VideoFrame.from_ndarray(
                    np.full((32, 48, 3), level + i * 40, np.uint8), "rgb24")
                for pkt in s.encode(frame):
                    c.mux(pkt)
            for pkt in s.encode():
                c.mux(pkt)
        return buf.getvalue()

    ds = plane.create(str(tmp_path / "v"))
    ds.create_tensor("clip", htype="video", sample_compression="mp4")
    ds.create_tensor("meta", htype="json")
    ds.extend({"clip": [mp4(20), mp4(120)], "meta": [{"src": "<cam 1>"}, {"src": "cam2"}]})
    ds.commit("clips")
    for c in client_for(tmp_path / "v", read_only=True):
        _, html, _ = c.get("/grid")
        assert "{&quot;src&quot;: &quot;&lt;cam 1&gt;&quot;}" in html
        status, body, headers = c.get("/media?t=clip&row=1")
        assert status == 200 and headers["Content-Type"] == "image/jpeg"
        got = np.asarray(Image.open(io.BytesIO(body)).convert("RGB"), np.int16)
        want = ds["clip"][1].numpy()[0].astype(np.int16)  # the first frame
        assert got.shape == want.shape and np.abs(got - want).mean() < 4
        _, html, _ = c.get("/sample?row=0")
        assert '<video controls src="/media?v=main&amp;t=clip&amp;row=0&amp;px=0">' in html
        status, body, headers = c.get("/media?t=clip&row=0&px=0")
        assert body == ds["clip"][0].bytes() and headers["Content-Type"] == "video/mp4"


def test_diff_shows_images_before_and_after_and_pages(fresh: Path) -> None:
    from _serve import jpeg

    ds = plane.open(str(fresh))
    ds.checkout("pics", create=True)
    ds["images"][0] = jpeg(99)
    ds.extend({"images": [jpeg(i) for i in range(25)], "labels": [0] * 25,
               "embedding": np.zeros((25, 8), np.float32), "caption": ["new"] * 25,
               "boxes": [np.zeros((0, 4), np.float32)] * 25})
    ds.commit("new picture and 25 rows")
    for c in client_for(fresh, read_only=True):
        _, html, _ = c.get("/versions?a=main&b=pics&t=images")
        rows = html.split('class="diffrows"')[1].split("<tr>")[2:]
        assert len(rows) == 20  # a page
        updated = rows[0]
        assert updated.startswith("<td>updated</td>") and \
            updated.count('<img src="data:image/jpeg;base64,') == 2
        assert rows[1].startswith("<td>added</td>") and '<span class="muted">' in rows[1]
        assert 'href="/versions?a=main&amp;b=pics&amp;t=images&amp;start=20"' in html
        _, html, _ = c.get("/versions?a=main&b=pics&t=images&start=20")
        assert len(html.split('class="diffrows"')[1].split("<tr>")[2:]) == 6


def test_pages_default_to_the_version_given(shared: Path) -> None:
    alice = plane.open(str(shared), read_only=True, version="alice")
    for c in client_for(shared, read_only=True, version="alice"):
        _, html, _ = c.get("/")
        assert "@ alice" in html and alice.versions.log()[0]["message"] in html
        _, html, _ = c.get("/grid?n=3")
        assert 'src="/media?v=alice&amp;t=images&amp;row=0"' in html


def test_cli_serve_on_a_missing_dataset_says_so(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from plane.cli import main

    assert main(["serve", str(tmp_path / "nothing")]) == 1  # a runtime error, not usage
    err = capsys.readouterr().err
    assert err.startswith("plane: error:") and str(tmp_path / "nothing") in err
