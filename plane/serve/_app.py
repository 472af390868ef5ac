"""The aiohttp application: routes, the guard, error pages, and a server in a thread."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

import plane
from plane.serve._auth import COOKIE, HEADER, Guard, is_loopback, new_token
from plane.serve._data import DataAccess
from plane.serve._html import CSS, JS, error_page
from plane.serve._pages import PAGES, POSTS, Ctx, Reply

__all__ = ["make_app", "Server", "start"]

CTX = web.AppKey("ctx", Ctx)
POOL = web.AppKey("pool", ThreadPoolExecutor)
STATIC = {"style.css": ("text/css", CSS), "app.js": ("text/javascript", JS)}
CSP = ("default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'self'; "
       "script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
_STATUS = ((plane.ReadOnlyError, 403), (plane.VersionNotFoundError, 404),
           (plane.TensorNotFoundError, 404), (plane.DatasetNotFoundError, 404),
           (plane.ChecksumError, 500), (plane.StoreError, 500), (plane.ObjectNotFoundError, 500))

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _status(e: BaseException) -> int:
    return next((s for cls, s in _STATUS if isinstance(e, cls)), 400)


def _to_response(r: Reply) -> web.Response:
    if isinstance(r.body, bytes):
        return web.Response(body=r.body, status=r.status, content_type=r.content_type,
                            headers=r.headers)
    return web.Response(text=r.body, status=r.status, content_type=r.content_type,
                        charset="utf-8", headers=r.headers)


def _error(request: web.Request, status: int, kind: str, message: str) -> web.Response:
    ctx = request.app[CTX]
    v = request.query.get("v")
    return web.Response(text=error_page(kind, message, ctx.data.url, v), status=status,
                        content_type="text/html", charset="utf-8")


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Host / token / CSRF checks, then error pages instead of tracebacks; timing header."""
    g = request.app[CTX].guard
    if not g.host_ok(request.headers.get("Host")):
        return web.Response(status=403, text="plane serve: unknown Host header; open the URL "
                            "printed at start (127.0.0.1 or localhost)")
    given = request.query.get("token") or request.cookies.get(COOKIE) or \
        request.headers.get(HEADER)
    if not g.token_ok(given):
        return web.Response(status=403, text="plane serve: this server needs its token: open "
                            "the URL printed at start (it ends with ?token=...)")
    t0 = time.perf_counter()
    try:
        resp = await handler(request)
    except web.HTTPException:
        raise
    except plane.PlaneError as e:
        resp = _error(request, _status(e), type(e).__name__, str(e))
    except Exception as e:  # a bug or a library error: its text, never a bare 500
        traceback.print_exc(file=sys.stderr)
        resp = _error(request, 500, type(e).__name__, str(e) or repr(e))
    resp.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - t0) * 1e3:.2f}"
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    if g.token is not None and request.query.get("token") == g.token:
        resp.set_cookie(COOKIE, g.token, httponly=True, samesite="Strict")
    return resp


def _get(fn: Callable[[Ctx, Mapping[str, str]], Reply]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        q = dict(request.query)
        loop = asyncio.get_running_loop()
        return _to_response(await loop.run_in_executor(request.app[POOL], fn, ctx, q))
    return handle


def _post(fn: Callable[[Ctx, Mapping[str, Any]], Reply]) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CTX]
        data = await request.post()
        if not ctx.guard.csrf_ok(str(data.get("csrf") or "")):
            return _error(request, 403, "Forbidden", "the form's CSRF token is missing or "
                          "stale: reload the page and submit again")
        f: dict[str, Any] = {k: str(data.get(k)) for k in data if k != "id"}
        f["id"] = [str(x) for x in data.getall("id", [])]
        loop = asyncio.get_running_loop()
        return _to_response(await loop.run_in_executor(request.app[POOL], fn, ctx, f))
    return handle


async def _static(request: web.Request) -> web.StreamResponse:
    item = STATIC.get(request.match_info["name"])
    if item is None:
        raise web.HTTPNotFound(text="no such static file")
    return web.Response(text=item[1], content_type=item[0], charset="utf-8")


async def _not_found(request: web.Request) -> web.StreamResponse:
    return _error(request, 404, "Not found", f"no page {request.path[:200]!r}; pages: "
                  + ", ".join(PAGES))


def make_app(url: str, read_only: bool = False, token: str | None = None,
             storage_options: Mapping[str, Any] | None = None,
             version: str | None = None) -> web.Application:
    """The application for the dataset at `url` (pages default to `version`, else its default
    branch); `token` None means loopback-only use."""
    data = DataAccess(url, storage_options, read_only, version=version)
    app = web.Application(middlewares=[guard], client_max_size=1 << 20)
    app[CTX] = Ctx(data, Guard(token))
    app[POOL] = ThreadPoolExecutor(4, thread_name_prefix="plane-serve")
    for path, fn in PAGES.items():
        app.router.add_get(path, _get(fn))
    for path, pfn in POSTS.items():
        app.router.add_post(path, _post(pfn))
    app.router.add_get("/static/{name}", _static)
    app.router.add_route("*", "/{tail:.*}", _not_found)

    async def close(app: web.Application) -> None:
        app[POOL].shutdown(wait=False)
    app.on_cleanup.append(close)
    return app


class Server:
    """A running server (its own event loop in a thread): `url`, `stop()`."""

    def __init__(self, app: web.Application, host: str, port: int) -> None:
        self.app = app
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(host, port), daemon=True,
                                        name="plane-serve")
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            raise self._error
        sock = self._runner.addresses[0]
        self.host, self.port = str(sock[0]), int(sock[1])
        guard_ = app[CTX].guard
        guard_.port = self.port
        guard_.names.add(host.strip("[]"))
        shown = "127.0.0.1" if host in ("127.0.0.1", "localhost") else host
        shown = f"[{shown}]" if ":" in shown else shown
        self.url = f"http://{shown}:{self.port}/"
        if guard_.token is not None:
            self.url += f"?token={guard_.token}"

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, host, port)
            self._loop.run_until_complete(site.start())
        except BaseException as e:
            self._error = e
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def stop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)


def start(url: str, host: str = "127.0.0.1", port: int = 0, read_only: bool = False,
          storage_options: Mapping[str, Any] | None = None, token: str | None = None,
          version: str | None = None) -> Server:
    """Serve the dataset at `url`; a non-loopback `host` gets a token (given or new)."""
    if not is_loopback(host):
        token = token or new_token()
    else:
        token = None
    return Server(make_app(url, read_only, token, storage_options, version), host, port)
