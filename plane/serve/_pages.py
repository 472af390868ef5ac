"""The pages: each takes the request's parameters, reads through DataAccess, returns a Reply.

No web framework here (the routes in `_app` adapt these), so the pages are plain functions.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import numpy as np

import plane
from plane._errors import InvalidArgumentError, TensorNotFoundError
from plane.serve._auth import Guard
from plane.serve._data import DataAccess, check_version
from plane.serve._html import error_box, esc, form, page, table, url
from plane.serve._thumbs import THUMB_PX, ThumbCache, encode_jpeg, first_frame, shrink, to_rgb

__all__ = ["Ctx", "Reply", "PAGES", "POSTS", "media"]

PAGE_ROWS = 24
MAX_ROWS = 200
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "mp4": "video/mp4",
               "webm": "video/webm", "mkv": "video/x-matroska", "avi": "video/x-msvideo",
               "wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg"}


@dataclass
class Ctx:
    data: DataAccess
    guard: Guard
    thumbs: ThumbCache = field(default_factory=ThumbCache)

    @property
    def read_only(self) -> bool:
        return self.data.read_only

    def page(self, title: str, body: str, v: str | None) -> Reply:
        return Reply(page(title, body, v=v, dataset=self.data.url, read_only=self.read_only))


@dataclass
class Reply:
    body: str | bytes
    content_type: str = "text/html"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


# ---- parameters ------------------------------------------------------------------------------
def _int(q: Mapping[str, str], name: str, default: int, lo: int = 0, hi: int | None = None
         ) -> int:
    text = q.get(name)
    if text is None or text == "":
        return default
    try:
        n = int(text)
    except ValueError:
        raise InvalidArgumentError(f"parameter {name}={text[:40]!r} is not a whole number"
                                   ) from None
    if n < lo or (hi is not None and n > hi):
        raise InvalidArgumentError(f"parameter {name}={n} is out of range: give "
                                   f"{lo} to {hi if hi is not None else 'more'}")
    return n


def _tensor(ds: plane.Dataset, name: str | None) -> str:
    if not name or name not in ds.tensors:
        raise TensorNotFoundError(f"no tensor {str(name)[:80]!r}; tensors: "
                                  f"{', '.join(ds.tensors) or '(none)'}")
    return name


def _row(ds: plane.Dataset, q: Mapping[str, str]) -> int:
    if len(ds) == 0:
        raise InvalidArgumentError("the dataset has no rows at this version")
    return _int(q, "row", 0, 0, len(ds) - 1)


# ---- values ----------------------------------------------------------------------------------
def _shape_text(meta: Any) -> str:
    if meta.shape is not None:
        return str(tuple(meta.shape))
    if meta.kind != "array":
        return ""
    text = f"{meta.ndim}-d" if meta.ndim is not None else "any"
    return text + (f", max {tuple(meta.max_shape)}" if meta.max_shape else "")


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def fmt_value(meta: Any, value: Any, full: bool = False) -> str:
    """One sample as escaped HTML (not images: those are thumbnails)."""
    n = 100_000 if full else 120
    if value is None:
        return '<span class="muted">—</span>'
    h = meta.htype
    if h == "class_label":
        ids = np.asarray(value).reshape(-1)
        names = meta.class_names
        return esc(", ".join(names[int(i)] if 0 <= int(i) < len(names) else str(int(i))
                             for i in ids))
    if h == "text" or isinstance(value, str):
        return f"<pre>{esc(_short(str(value), n))}</pre>"
    if h == "json":
        return f"<pre>{esc(_short(json.dumps(value, indent=1 if full else None), n))}</pre>"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return esc(f"{len(value):,} bytes")
    a = np.asarray(value)
    if h == "embedding" and not full:
        return esc(f"{a.dtype} {a.shape}")
    if a.size <= (64 if full else 8):
        return esc(np.array2string(a, separator=", ", precision=4))
    return esc(f"{a.dtype} {a.shape}")


def _img_data_uri(value: Any, htype: str, px: int = 96) -> str:
    """An inline thumbnail of a decoded image, or of stored bytes (what `Diff.values` gives
    for a compressed tensor): an image's, or a video's first frame."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        if "video" in htype:
            value = first_frame(bytes(value))
        else:
            import io

            from PIL import Image

            value = np.asarray(Image.open(io.BytesIO(bytes(value))).convert("RGB"))
    rgb = shrink(to_rgb(value), px)
    b64 = base64.b64encode(encode_jpeg(rgb, 85)).decode()
    return f'<img src="data:image/jpeg;base64,{b64}" alt="">'


def _is_visual(meta: Any) -> bool:
    return bool(meta.htype in ("image", "video", "link[image]", "link[video]"))


# ---- cards (grid, query results, views) ------------------------------------------------------
def cards(ctx: Ctx, v: str, ds: plane.Dataset, positions: np.ndarray, ids: np.ndarray,
          scores: np.ndarray | None, columns: list[str] | None = None) -> tuple[str, list[str]]:
    """A card per row: thumbnails, values, row id; (html, error messages)."""
    names = [c for c in (columns or list(ds.tensors)) if c in ds.tensors]
    metas = {t: ds[t].meta for t in names}
    values: dict[str, Any] = {}
    errors: list[str] = []
    for t in names:
        if _is_visual(metas[t]) or positions.shape[0] == 0:
            continue
        try:
            tv = ds[t][positions]
            values[t] = tv.text() if metas[t].htype.startswith("link[") else tv.numpy()
        except plane.PlaneError as e:
            errors.append(f"tensor {t!r}: {type(e).__name__}: {e}")
    imgs = [t for t in names if _is_visual(metas[t])]
    boxes = next((t for t in names if metas[t].htype == "bbox" and t in values), None)
    out = []
    for i, p in enumerate(positions.tolist()):
        rid = int(ids[i])
        head = ""
        if not ctx.read_only:
            head += f'<input type="checkbox" name="id" value="{rid}" title="select"> '
        head += (f'<a href="{url("/sample", v=v, row=p)}" class="rowlink">row {p}</a> '
                 f'<span class="muted">id {rid}</span>')
        if scores is not None:
            head += f' <span class="score">score {float(scores[i]):.4f}</span>'
        body = ""
        for t in imgs:
            overlay = ""
            if boxes is not None and metas[t].htype == "image" and t == imgs[0]:
                overlay = _overlay(ds, t, p, values[boxes][i])
            body += (f'<div class="img"><img class="thumb" data-tensor="{esc(t)}" '
                     f'data-row="{p}" src="{url("/media", v=v, t=t, row=p)}" '
                     f'alt="{esc(t)} row {p}" loading="lazy">{overlay}</div>')
        dl = ""
        for t in names:
            if t in values:
                dl += f"<dt>{esc(t)}</dt> <dd>{fmt_value(metas[t], values[t][i])}</dd>"
            elif not _is_visual(metas[t]):
                dl += f'<dt>{esc(t)}</dt> <dd class="muted">(unreadable)</dd>'
        out.append(f'<div class="card" data-id="{rid}" data-row="{p}">{head}{body}'
                   f"<dl>{dl}</dl></div>")
    return '<div class="grid">' + "".join(out) + "</div>", errors


def _overlay(ds: plane.Dataset, image: str, p: int, boxes: Any) -> str:
    """An SVG over the thumbnail with the (x, y, w, h) boxes in image pixels."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4) if np.size(boxes) else np.zeros((0, 4))
    if not b.shape[0]:
        return ""
    shape = ds[image][p].shape
    hgt, wid = int(shape[0] or 1), int(shape[1] or 1)
    rects = "".join(f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{hh:.1f}" '
                    'fill="none" stroke="#f30" stroke-width="2" '
                    'vector-effect="non-scaling-stroke"/>' for x, y, w, hh in b.tolist())
    return (f'<svg viewBox="0 0 {wid} {hgt}" preserveAspectRatio="none" class="boxes">'
            f"{rects}</svg>")


def _edit_controls(ctx: Ctx, ds: plane.Dataset, v: str, branch: str | None) -> str:
    """Relabel / delete controls for a form of selected rows (empty when read-only)."""
    if ctx.read_only:
        return ""
    labels = [t for t in ds.tensors if ds[t].htype == "class_label"]
    opts = "".join(f'<option value="{esc(t)}">{esc(t)}</option>' for t in labels)
    names = sorted({n for t in labels for n in ds[t].class_names})
    label_opts = "".join(f'<option value="{esc(n)}">{esc(n)}</option>' for n in names)
    relabel = ""
    if labels:
        relabel = (f'tensor <select name="tensor">{opts}</select> label '
                   f'<select name="label">{label_opts}</select> or new '
                   '<input name="label_new" size="8"> '
                   '<button name="action" value="relabel" id="relabel">Relabel</button> ')
    return (f'<div class="edit"><label><input type="checkbox" id="select-all"> all</label> '
            f'{relabel}<button name="action" value="delete" id="delete">Delete rows</button> '
            f'on branch <input name="branch" value="{esc(branch or "")}" size="10"> '
            'new branch <input name="new_branch" size="10" placeholder="(optional)"> '
            'message <input name="message" size="24" id="message"></div>')


def _editable(ctx: Ctx, inner: str, ds: plane.Dataset, v: str, branch: str | None) -> str:
    if ctx.read_only:
        return inner
    return form("/edit", ctx.guard.csrf, {"v": v},
                _edit_controls(ctx, ds, v, branch) + inner, cls="editform")


def _errors_html(errors: list[str]) -> str:
    return "".join(error_box("error", e) for e in errors)


# ---- pages -----------------------------------------------------------------------------------
def overview(ctx: Ctx, q: Mapping[str, str]) -> Reply:
    ds = ctx.data.at(q.get("v"))
    v, branch, commit = ctx.data.resolve(q.get("v"))
    body = ""
    if q.get("done"):
        body += f'<div class="ok" id="done">committed {esc(q["done"])}</div>'
    body += (f'<p>{len(ds):,} rows · {len(ds.tensors)} tensors · '
             f'{"branch " + esc(branch) if branch else "read-only version"} · commit '
             f'<code>{esc(commit or "(none)")}</code></p>')
    rows = []
    for name, t in ds.tensors.items():
        m = t.meta
        cn = m.class_names
        names = ", ".join(cn[:20]) + (f" … ({len(cn)} in all)" if len(cn) > 20 else "")
        rows.append([esc(name), esc(m.htype), esc(m.dtype or ""), esc(_shape_text(m)),
                     esc(m.sample_compression or ""), esc(m.chunk_compression or ""),
                     esc(names)])
    body += "<h2>Tensors</h2>" + table(
        ["tensor", "htype", "dtype", "shape", "sample compression", "chunk compression",
         "class names"], rows, "tensors")
    vc = ctx.data.root.versions
    brows = [[f'<a href="{url("/", v=b)}">{esc(b)}</a>',
              f"<code>{esc((vc.resolve(b)[1] or '(no commits)')[:12])}</code>"]
             for b in vc.branches()]
    body += "<h2>Branches</h2>" + table(["branch", "head"], brows, "branches")
    trows = [[f'<a href="{url("/", v=n)}">{esc(n)}</a>', f"<code>{esc(c[:12])}</code>"]
             for n, c in sorted(vc.tags().items())]
    body += "<h2>Tags</h2>" + (table(["tag", "commit"], trows, "tags") if trows
                               else '<p class="muted">(none)</p>')
    lrows = [[f'<a href="{url("/", v=e["id"])}"><code>{esc(e["id"][:12])}</code></a>',
              esc(e["author"]), esc(time.strftime("%Y-%m-%d %H:%M:%S",
                                                  time.localtime(float(e["time"])))),
              esc(e["message"])] for e in ds.versions.log(limit=50)]
    body += "<h2>Log</h2>" + table(["commit", "author", "when", "message"], lrows, "log")
    from plane.query import list_indexes

    irows = [[esc(i.tensor), esc(i.kind), esc(i.metric), f"<code>{esc(i.commit[:12])}</code>",
              esc(f"{i.rows:,}")] for i in list_indexes(ds)]
    body += "<h2>Indexes</h2>" + (table(["tensor", "kind", "metric", "bound to commit", "rows"],
                                        irows, "indexes") if irows
                                  else '<p class="muted">(none)</p>')
    views = plane.list_views(ds)
    body += "<h2>Saved views</h2>" + (
        "<ul>" + "".join(f'<li><a href="{url("/view", name=n)}">{esc(n)}</a></li>'
                         for n in views) + "</ul>" if views else '<p class="muted">(none)</p>')
    return ctx.page("Overview", body, v)


def grid(ctx: Ctx, q: Mapping[str, str]) -> Reply:
    ds = ctx.data.at(q.get("v"))
    v, branch, _ = ctx.data.resolve(q.get("v"))
    n = _int(q, "n", PAGE_ROWS, 1, MAX_ROWS)
    start = _int(q, "start", 0, 0)
    total = len(ds)
    start = min(start, max(total - 1, 0))
    stop = min(total, start + n)
    pos = np.arange(start, stop, dtype=np.int64)
    ids = ctx.data.row_ids(v, ds)[start:stop]
    inner, errors = cards(ctx, v, ds, pos, ids, None)
    pager = '<p class="pager">'
    if start > 0:
        prev = url("/grid", v=v, start=max(0, start - n), n=n)
        pager += f'<a id="prev" href="{prev}">← prev</a>'
    if stop < total:
        pager += f'<a id="next" href="{url("/grid", v=v, start=stop, n=n)}">next →</a>'
    pager += f'<span id="range">rows {start:,}-{max(stop - 1, 0):,} of {total:,}</span></p>'
    body = _errors_html(errors) + pager + _editable(ctx, inner, ds, v, branch)
    return ctx.page("Grid", body, v)


def sample(ctx: Ctx, q: Mapping[str, str]) -> Reply:
    ds = ctx.data.at(q.get("v"))
    v, branch, _ = ctx.data.resolve(q.get("v"))
    p = _row(ds, q)
    rid = int(ctx.data.row_ids(v, ds)[p])
    rows = []
    labels = []
    for t, tensor in ds.tensors.items():
        m = tensor.meta
        try:
            if m.htype in ("image", "link[image]"):
                cell = (f'<div class="full"><img src="{url("/media", v=v, t=t, row=p, px=0)}" '
                        f'alt="{esc(t)}"></div>')
            elif m.htype in ("video", "audio") and m.sample_compression:
                tag = "video" if m.htype == "video" else "audio"
                cell = (f'<{tag} controls src="{url("/media", v=v, t=t, row=p, px=0)}">'
                        f"</{tag}>")
            elif m.htype.startswith("link["):
                cell = fmt_value(m, tensor[p].text(), full=True)
            else:
                val = tensor[p].numpy()
                cell = fmt_value(m, val, full=True)
                if m.htype == "embedding":
                    cell += (f' <a class="like" href="{url("/query", v=v, like=rid, emb=t)}">'
                             "more like this</a>")
                if m.htype == "class_label":
                    labels.append(t)
        except plane.PlaneError as e:
            cell = error_box(type(e).__name__, str(e))
        rows.append([esc(t), esc(m.htype), cell])
    body = (f"<p>row {p:,} of {len(ds):,} · row id <code>{rid}</code> · "
            f'<a href="{url("/grid", v=v, start=p)}">back to grid</a></p>')
    body += table(["tensor", "htype", "value"], rows, "sample")
    if not ctx.read_only:
        body += "<h2>Edit</h2>" + form("/edit", ctx.guard.csrf, {"v": v, "id": rid},
                                       _edit_controls(ctx, ds, v, branch))
    return ctx.page(f"Sample {p}", body, v)


def _like_params(ctx: Ctx, ds: plane.Dataset, v: str, q: Mapping[str, str]
                 ) -> tuple[dict[str, Any] | None, str | None]:
    """($q params, default SQL) of "more like this row"."""
    like = q.get("like")
    if not like:
        return None, None
    emb = _tensor(ds, q.get("emb"))
    try:
        rid = int(like)
    except ValueError:
        raise InvalidArgumentError(f"like={like[:40]!r} is not a row id") from None
    p = int(ctx.data.positions_of(v, ds, np.array([rid], np.int64))[0])
    vec = np.asarray(ds[emb][p].numpy(), np.float32).reshape(-1)
    return {"q": vec}, f"SELECT * ORDER BY COSINE_SIMILARITY({emb}, $q) DESC LIMIT {PAGE_ROWS}"


def query(ctx: Ctx, q: Mapping[str, str]) -> Reply:
    ds = ctx.data.at(q.get("v"))
    v, _, _ = ctx.data.resolve(q.get("v"))
    params, default_sql = _like_params(ctx, ds, v, q)
    sql = q.get("sql") or default_sql or ""
    keep = {"v": v, "like": q.get("like"), "emb": q.get("emb")}
    hidden = "".join(f'<input type="hidden" name="{k}" value="{esc(x)}">'
                     for k, x in keep.items() if x)
    body = (f'<form method="get" action="/query" id="queryform">{hidden}'
            f'<textarea name="sql" id="sql" rows="4">{esc(sql)}</textarea>'
            '<button id="run">Run</button></form>')
    if params is not None:
        body += f'<p class="muted">$q = the {esc(q.get("emb"))} of row id {esc(q["like"])}</p>'
    status = 200
    if sql.strip():
        try:
            res = ds.query(sql, params)
            plan = ds.explain(sql, params)
        except plane.PlaneError as e:
            body += error_box(type(e).__name__, str(e))
            return Reply(page("Query", body, v=v, dataset=ctx.data.url,
                              read_only=ctx.read_only), status=400)
        if isinstance(res, plane.AggregateResult):  # COUNT / GROUP BY: a table of groups
            shown = res.rows()[:MAX_ROWS]
            body += f'<p id="count">{len(res):,} group(s)</p>' + table(
                res.columns, ([esc("NULL" if r[c] is None else r[c]) for c in res.columns]
                              for r in shown), "groups")
            body += f'<h2>Plan</h2><pre id="explain">{esc(plan)}</pre>'
            return Reply(page("Query", body, v=v, dataset=ctx.data.url,
                              read_only=ctx.read_only), status=status)
        start = _int(q, "start", 0, 0)
        n = _int(q, "n", 60, 1, MAX_ROWS)
        sel = slice(start, start + n)
        pos = res.positions[sel]
        scores = None if res.scores is None else np.asarray(res.scores)[sel]
        inner, errors = cards(ctx, v, ds, pos, res.ids[sel], scores, None)
        body += (f'<p id="count">{len(res):,} rows (showing {start:,}-'
                 f"{start + pos.shape[0]:,})</p>")
        body += _errors_html(errors) + inner
        body += f'<h2>Plan</h2><pre id="explain">{esc(plan)}</pre>'
        if not ctx.read_only:
            fields = {"v": v, "sql": sql, "like": q.get("like"), "emb": q.get("emb")}
            body += "<h2>Save as view</h2>" + form(
                "/view/save", ctx.guard.csrf, {k: x for k, x in fields.items() if x},
                'name <input name="name" id="viewname"> <button>Save</button>')
    return Reply(page("Query", body, v=v, dataset=ctx.data.url, read_only=ctx.read_only),
                 status=status)


def view(ctx: Ctx, q: Mapping[str, str]) -> Reply:
    name = q.get("name") or ""
    with ctx.data.lock:
        res = plane.load_view(ctx.data.root, name)
        v = res.commit_id or ctx.data.default
        start = _int(q, "start", 0, 0)
        sel = slice(start, start + 60)
        scores = None if res.scores is None else np.asarray(res.scores)[sel]
        inner, errors = cards(ctx, v, ctx.data.at(v), res.positions[sel], res.ids[sel],
                              scores, None)
    body = (f"<p>view <b>{esc(name)}</b>: {len(res):,} rows at commit <code>{esc(v[:12])}"
            f"</code>; query <code>{esc(res.query)}</code></p>")
    return ctx.page(f"View {name}", body + _errors_html(errors) + inner, v)


def versions(ctx: Ctx, q: Mapping[str, str]) -> Reply:
    vc = ctx.data.root.versions
    names = vc.branches() + sorted(vc.tags())
    opts = "".join(f'<option value="{esc(n)}">' for n in names)
    a, b = q.get("a") or "", q.get("b") or ""
    body = (f'<form method="get" action="/versions" id="diffform"><datalist id="vers">{opts}'
            f'</datalist>old <input name="a" id="a" list="vers" value="{esc(a)}"> new '
            f'<input name="b" id="b" list="vers" value="{esc(b)}"> '
            '<button id="diff">Diff</button></form>')
    body += '<p class="muted">branches, tags or commit ids; "Merge preview" shows merging ' \
            "new into old.</p>"
    if not (a and b):
        return ctx.page("Versions", body, q.get("v"))
    check_version(a)
    check_version(b)
    with ctx.data.lock:
        d = vc.diff(a, b)
        body += (f'<p id="summary">rows +{d.rows_added.shape[0]:,} '
                 f"-{d.rows_deleted.shape[0]:,}")
        if d.tensors_added:
            body += f" · tensors added: {esc(', '.join(d.tensors_added))}"
        if d.tensors_removed:
            body += f" · tensors removed: {esc(', '.join(d.tensors_removed))}"
        body += "</p>"
        trows = []
        for t, td in d.tensors.items():
            link = f'<a href="{url("/versions", a=a, b=b, t=t)}">{esc(t)}</a>'
            trows.append([link, f"{td.added.shape[0]:,}", f"{td.updated.shape[0]:,}",
                          f"{td.deleted.shape[0]:,}"])
        body += table(["tensor", "added", "updated", "deleted"], trows, "difftable")
        changed = [t for t, td in d.tensors.items() if td]
        t_sel = q.get("t") or (changed[0] if changed else None)
        if t_sel is not None:
            t = t_sel
            if t not in d.tensors:
                raise TensorNotFoundError(f"no tensor {t[:80]!r} in this diff; tensors: "
                                          f"{', '.join(d.tensors)}")
            side = ctx.data.at(b) if t in ctx.data.at(b).tensors else ctx.data.at(a)
            body += _diff_rows(d, side[t].meta, t, q, a, b)
    body += _merge_html(ctx, a, b)
    return ctx.page(f"Diff {a} → {b}", body, None)


def _diff_rows(d: Any, meta: Any, t: str, q: Mapping[str, str], a: str, b: str) -> str:
    td = d.tensors[t]
    kinds = np.concatenate([np.full(td.updated.shape, 0), np.full(td.added.shape, 1),
                            np.full(td.deleted.shape, 2)]).astype(np.int8)
    ids = np.concatenate([td.updated, td.added, td.deleted]).astype(np.int64)
    start = _int(q, "start", 0, 0)
    n = 20
    sel = slice(start, start + n)
    page_ids, page_kinds = ids[sel], kinds[sel]
    vals = d.values(t, page_ids) if page_ids.shape[0] else []
    rows = []
    for (rid, old, new), k in zip(vals, page_kinds.tolist()):
        def cell(x: Any) -> str:
            if x is not None and _is_visual(meta) and not isinstance(x, str):
                return _img_data_uri(x, meta.htype)
            return fmt_value(meta, x)
        rows.append([("updated", "added", "deleted")[k], f"<code>{rid}</code>", cell(old),
                     cell(new)])
    html = (f'<h2>{esc(t)}: rows {start:,}-{start + len(rows):,} of {ids.shape[0]:,}</h2>'
            + table(["change", "row id", f"old ({a})", f"new ({b})"], rows, "diffrows"))
    if start + n < ids.shape[0]:
        nxt = url("/versions", a=a, b=b, t=t, start=start + n)
        html += f'<p class="pager"><a id="next" href="{nxt}">next →</a></p>'
    return html


def _merge_html(ctx: Ctx, a: str, b: str) -> str:
    try:
        mp = ctx.data.merge_preview(a, b)
    except plane.PlaneError as e:
        return "<h2>Merge preview</h2>" + error_box(type(e).__name__, str(e))
    body = f"<h2>Merge preview: {esc(b)} into {esc(a)}</h2><div id=\"merge\">"
    if mp.up_to_date:
        return body + "<p>already up to date</p></div>"
    base = f"<code>{esc((mp.base or '(none)')[:12])}</code>"
    body += f"<p>merge base {base}" + (" · fast-forward" if mp.fast_forward else "")
    upd = sum(mp.rows_updated.values())
    body += (f" · would bring +{mp.rows_added:,} rows, {upd:,} updated, "
             f"-{mp.rows_deleted:,} deleted</p>")
    if mp.conflicts:
        rows = [[esc(t), esc(k), esc(", ".join(str(i) for i in ids[:50])) +
                 (" …" if len(ids) > 50 else "")]
                for t, kinds in mp.conflicts.items() for k, ids in kinds.items()]
        body += ('<p class="err">conflicts: merging with conflicts="fail" would change '
                 "nothing; resolve with ours / theirs</p>")
        body += table(["tensor", "kind", "row ids"], rows, "conflicts")
    else:
        body += '<p id="noconflict">no conflicts</p>'
    return body + "</div>"


def media(ctx: Ctx, q: Mapping[str, str]) -> Reply:
    """A sample's image (thumbnail, or `px=0` full size) or stored media bytes."""
    ds = ctx.data.at(q.get("v"))
    t = _tensor(ds, q.get("t"))
    p = _row(ds, q)
    px = _int(q, "px", THUMB_PX, 0, 4096)
    m = ds[t].meta
    if not _is_visual(m) and m.htype != "audio":
        raise InvalidArgumentError(f"tensor {t!r} is {m.htype}: only image, video and audio "
                                   "tensors are served as media")
    with ctx.data.lock:
        stored = ds[t][p].bytes()
    comp = m.sample_compression
    if px == 0 and comp in MEDIA_TYPES and not m.htype.startswith("link["):
        return Reply(stored, MEDIA_TYPES[comp], headers={"Cache-Control": "private, max-age=60"})
    if m.htype == "audio":
        raise InvalidArgumentError(f"tensor {t!r}: raw audio has no media form; read it with "
                                   "the Python API")
    key = ctx.thumbs.key(stored, m.htype, px)
    out = ctx.thumbs.get(key)
    if out is None:
        if m.htype in ("video", "link[video]"):
            if comp or m.htype.startswith("link["):
                rgb = first_frame(stored)
            else:
                with ctx.data.lock:
                    rgb = np.asarray(ds[t][p].numpy())[0]
        else:
            with ctx.data.lock:
                rgb = ds[t][p].numpy()
        rgb = to_rgb(rgb)
        out = encode_jpeg(shrink(rgb, px) if px else rgb)
        ctx.thumbs.put(key, out)
    return Reply(out, "image/jpeg", headers={"Cache-Control": "private, max-age=60"})


# ---- forms -----------------------------------------------------------------------------------
def edit(ctx: Ctx, f: Mapping[str, Any]) -> Reply:
    ids_text = f.get("id") or []
    try:
        ids = np.array([int(x) for x in ids_text], np.int64)
    except ValueError:
        raise InvalidArgumentError("row ids must be whole numbers") from None
    v = str(f.get("v") or ctx.data.default)
    branch = str(f.get("branch") or v)
    label = str(f.get("label_new") or f.get("label") or "")
    cid = ctx.data.edit(branch, str(f.get("action") or ""), ids, f.get("tensor"), label,
                        str(f.get("message") or ""), str(f.get("new_branch") or "") or None)
    dest = str(f.get("new_branch") or branch)
    return Reply("", status=303, headers={"Location": "/?" + urlencode({"v": dest, "done": cid})})


def save_view(ctx: Ctx, f: Mapping[str, Any]) -> Reply:
    v = str(f.get("v") or ctx.data.default)
    with ctx.data.lock:
        ds = ctx.data.at(v)
        params, default_sql = _like_params(ctx, ds, v, {k: str(x) for k, x in f.items()
                                                        if k in ("like", "emb")})
    sql = str(f.get("sql") or default_sql or "")
    name = str(f.get("name") or "")
    ctx.data.save_view(v, sql, params, name)
    return Reply("", status=303, headers={"Location": "/view?" + urlencode({"name": name})})


def _locked(fn: Callable[[Ctx, Mapping[str, str]], Reply]
            ) -> Callable[[Ctx, Mapping[str, str]], Reply]:
    """Run a page under the dataset lock (Dataset objects are not shared across threads)."""
    def run(ctx: Ctx, q: Mapping[str, str]) -> Reply:
        with ctx.data.lock:
            return fn(ctx, q)
    return run


#: `media` takes the lock only to read; it decodes and encodes outside it
PAGES = {"/": _locked(overview), "/grid": _locked(grid), "/sample": _locked(sample),
         "/query": _locked(query), "/view": _locked(view), "/versions": _locked(versions),
         "/media": media}
POSTS = {"/edit": edit, "/view/save": save_view}
