"""`plane serve` security: loopback by default, a token elsewhere, no path escapes, escaping."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

pytest.importorskip("aiohttp")

from _serve import SCRIPT, Client, build

from plane.serve import make_app, start
from plane.serve._auth import is_loopback

MARKER = "TOP-SECRET-MARKER-5f2a"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sec")
    build(root / "ds")
    # files next to and above the dataset that no request may reach
    (root / "secret.txt").write_text(MARKER)
    (root / "ds" / "secret.txt").write_text(MARKER)
    return root / "ds"


@pytest.fixture
def client(dataset: Path) -> Iterator[Client]:
    c = Client(make_app(str(dataset)))
    try:
        yield c
    finally:
        c.close()


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def test_loopback_is_the_default(dataset: Path) -> None:
    from plane.cli import main

    server = start(str(dataset))
    try:
        assert server.host == "127.0.0.1" and server.app is not None
        assert server.url == f"http://127.0.0.1:{server.port}/"  # no token needed
        status, html, _ = fetch(server.url)
        assert status == 200 and "Overview" in html
    finally:
        server.stop()
    with pytest.raises(SystemExit):
        main(["serve", "--help"])


@pytest.mark.parametrize("host,loop", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                       ("127.0.0.2", True), ("0.0.0.0", False),
                                       ("::", False), ("192.0.2.1", False)])
def test_is_loopback(host: str, loop: bool) -> None:
    assert is_loopback(host) is loop


def test_a_non_loopback_host_needs_the_token(dataset: Path) -> None:
    server = start(str(dataset), host="0.0.0.0")
    try:
        token = re.fullmatch(r"http://0\.0\.0\.0:\d+/\?token=(.+)", server.url)
        assert token, server.url
        base = f"http://127.0.0.1:{server.port}"
        for path in ("/", "/grid", "/media?t=images&row=0", "/static/style.css"):
            status, text, _ = fetch(base + path)
            assert status == 403 and "needs its token" in text, path
            status, _, _ = fetch(base + path, {"X-Plane-Token": "wrong" + token.group(1)})
            assert status == 403
        status, html, headers = fetch(f"{base}/grid?token={token.group(1)}")
        assert status == 200 and "Grid" in html
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        status, _, _ = fetch(base + "/", {"Cookie": cookie.split(";")[0]})
        assert status == 200
        status, _, _ = fetch(base + "/", {"X-Plane-Token": token.group(1)})
        assert status == 200
    finally:
        server.stop()


def test_loopback_refuses_other_host_names(dataset: Path) -> None:
    """DNS rebinding: a page at evil.example resolving to 127.0.0.1 sends its own Host."""
    server = start(str(dataset))
    try:
        status, text, _ = fetch(server.url, {"Host": "evil.example"})
        assert status == 403 and "Host" in text
        status, _, _ = fetch(server.url, {"Host": f"localhost:{server.port}"})
        assert status == 200
        status, _, _ = fetch(server.url, {"Host": f"127.0.0.1:{server.port + 1}"})
        assert status == 403
    finally:
        server.stop()
    server = start(str(dataset), host="127.0.0.2")  # loopback too: no token, its own name
    try:
        assert server.url == f"http://127.0.0.2:{server.port}/"
        assert fetch(server.url)[0] == 200
        assert fetch(server.url, {"Host": "evil.example"})[0] == 403
    finally:
        server.stop()


ESCAPES = ["../secret.txt", "../../secret.txt", "..%2F..%2Fsecret.txt", "/etc/passwd",
           "state:../secret.txt", "state:../../secret", "..\\..\\secret.txt",
           "chunks/../../secret.txt"]


@pytest.mark.parametrize("evil", ESCAPES)
def test_dotdot_in_any_parameter_cannot_escape(client: Client, evil: str) -> None:
    e = quote(evil, safe="")
    paths = [f"/?v={e}", f"/grid?v={e}", f"/grid?start={e}", f"/sample?v={e}&row=0",
             f"/sample?row={e}", f"/media?t={e}&row=0", f"/media?v={e}&t=images&row=0",
             f"/media?t=images&row=0&px={e}", f"/query?v={e}&sql=SELECT+*+LIMIT+1",
             f"/query?like=1&emb={e}", f"/query?like={e}&emb=embedding",
             f"/query?sql=SELECT+{e}", f"/view?name={e}", f"/versions?a={e}&b=main",
             f"/versions?a=main&b={e}", f"/versions?a=main&b=alice&t={e}",
             f"/static/{e}", f"/{e}"]
    if not evil.startswith("/"):
        paths += [f"/static/{evil}", f"/{evil}"]
    for path in paths:
        status, body, headers = client.get(path)
        text = body if isinstance(body, str) else body.decode("latin-1")
        assert MARKER not in text, path
        assert "root:x:0" not in text, path
        assert status in (400, 403, 404), (path, status)
        if headers.get("Content-Type", "").startswith("text/html"):
            assert 'id="error"' in text and "Traceback" not in text, path


def test_raw_dotdot_paths_cannot_escape(dataset: Path) -> None:
    """Paths sent as written (no client-side normalisation of `..`)."""
    import http.client

    server = start(str(dataset))
    try:
        for path in ("/static/../../secret.txt", "/static/..%2F..%2Fsecret.txt",
                     "/../secret.txt", "/static/../ds/secret.txt", "/static/%2e%2e/secret.txt",
                     "/media/../../secret.txt?t=images&row=0"):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            conn.putrequest("GET", path, skip_accept_encoding=True)
            conn.endheaders()
            r = conn.getresponse()
            body = r.read().decode("latin-1")
            conn.close()
            assert MARKER not in body and r.status in (400, 403, 404), (path, r.status)
    finally:
        server.stop()


def test_pages_escape_text_and_forbid_inline_scripts(client: Client) -> None:
    status, html, headers = client.get("/grid?start=0&n=6")
    assert status == 200
    assert SCRIPT not in html and "&lt;script&gt;document.title" in html
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    # a name in an error message is escaped too
    status, html, _ = client.get("/grid?v=" + quote("<b>x</b>"))
    assert status == 404 and "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html


def test_cli_serve_prints_the_url_and_serves(dataset: Path) -> None:
    import os

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.Popen([sys.executable, "-m", "plane.cli", "serve", str(dataset),
                             "--read-only"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        m = re.search(r"at (http://127\.0\.0\.1:\d+/) \(read-only\)", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None and proc.stderr
                          else "")
        status, html, _ = fetch(m.group(1) + "grid")
        assert status == 200 and "(read-only)" in html
    finally:
        proc.terminate()
        proc.wait(timeout=10)
