"""HTML building blocks: every value that reaches a page goes through `esc` (or `url`)."""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

__all__ = ["CSS", "JS", "esc", "url", "page", "table", "form", "error_page"]

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#233;color:#fff;padding:8px 16px;display:flex;gap:16px;align-items:center}
header a{color:#cde;text-decoration:none}header b{color:#fff}
main{padding:12px 16px}h2{margin:18px 0 6px;font-size:16px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#eee}
.err{background:#fee;border:1px solid #c33;color:#900;padding:8px 12px;margin:8px 0;
white-space:pre-wrap}
.ok{background:#efe;border:1px solid #3a3;padding:8px 12px;margin:8px 0}
.grid{display:flex;flex-wrap:wrap;gap:10px}
.card{background:#fff;border:1px solid #ccc;border-radius:4px;padding:6px;width:180px;
font-size:12px;overflow:hidden}
.card .img{position:relative;display:inline-block;line-height:0}
.card .img svg{position:absolute;left:0;top:0;width:100%;height:100%}
.card dl{margin:4px 0}.card dt{font-weight:bold;display:inline}.card dd{display:inline;margin:0}
.card dd::after{content:"";display:block}
.full img{max-width:100%}pre{white-space:pre-wrap;margin:0}
.side{display:flex;gap:12px}.muted{color:#777}
textarea{width:100%;font-family:monospace}
.pager a{margin-right:12px}
"""

JS = """
document.addEventListener('click', function (e) {
  var t = e.target;
  if (t && t.id === 'select-all') {
    document.querySelectorAll('input[name=id]').forEach(function (c) { c.checked = t.checked; });
  }
});
"""


def esc(value: Any) -> str:
    """Text for HTML content or a quoted attribute."""
    return html.escape(str(value), quote=True)


def url(path: str, **params: Any) -> str:
    """A relative URL with its query, escaped for an attribute (None values left out)."""
    q = {k: v for k, v in params.items() if v is not None and v != ""}
    return esc(path + ("?" + urlencode(q) if q else ""))


def table(head: Iterable[str], rows: Iterable[Iterable[str]], cls: str = "") -> str:
    """A table of already-escaped cells (`head` is plain text)."""
    h = "".join(f"<th>{esc(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{esc(cls)}"><tr>{h}</tr>{body}</table>'


def form(action: str, csrf: str, fields: Mapping[str, Any], inner: str, cls: str = "") -> str:
    """A POST form with the CSRF token and hidden `fields`; `inner` is already escaped."""
    hidden = "".join(f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
                     for k, v in fields.items() if v is not None)
    return (f'<form method="post" action="{esc(action)}" class="{esc(cls)}">'
            f'<input type="hidden" name="csrf" value="{esc(csrf)}">{hidden}{inner}</form>')


def page(title: str, body: str, v: str | None = None, dataset: str = "",
         read_only: bool = False) -> str:
    """A whole page: header with the navigation at version `v`, then `body` (escaped)."""
    nav = " ".join(f'<a href="{url(p, v=v)}">{esc(n)}</a>' for n, p in
                   (("Overview", "/"), ("Grid", "/grid"), ("Query", "/query"),
                    ("Versions", "/versions")))
    ro = ' <span class="muted">(read-only)</span>' if read_only else ""
    where = f" @ {esc(v)}" if v else ""
    return ("<!doctype html><html><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)} · plane serve</title>"
            '<link rel="stylesheet" href="/static/style.css">'
            '<script src="/static/app.js" defer></script></head><body>'
            f"<header><b>plane</b> <span>{esc(dataset)}{where}</span>{ro} {nav}</header>"
            f"<main><h1 style=\"font-size:18px\">{esc(title)}</h1>{body}</main></body></html>")


def error_box(kind: str, message: str) -> str:
    return f'<div class="err" id="error"><b>{esc(kind)}</b>: {esc(message)}</div>'


def error_page(kind: str, message: str, dataset: str = "", v: str | None = None) -> str:
    return page("Error", error_box(kind, message), v=v, dataset=dataset)
