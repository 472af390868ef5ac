"""S3 failures after a dataset is open — the endpoint goes away mid-session — are StoreErrors
naming the URL and the fix, on read and on write, with no credential in the message, and a
failed write leaves the dataset as it was (issue #15 item 9; open is tested in
tests/test_hostile_input.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pytest

import plane
from plane._errors import StoreError

pytestmark = pytest.mark.s3
_SECRET = "testing"  # the moto fixture's key and secret


class _Proxy:
    """A TCP forwarder to the moto server that can be cut: then every connection to it is
    refused, as when an S3 endpoint becomes unreachable."""

    def __init__(self, target: str) -> None:
        u = urlparse(target)
        self.target = (u.hostname or "127.0.0.1", int(u.port or 80))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()
        self.thread.join(timeout=5)


@pytest.fixture
def proxied(s3_bucket: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], _Proxy]]:
    import s3fs

    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
    url, direct = s3_bucket
    proxy = _Proxy(direct["endpoint_url"])
    opts = {**direct, "endpoint_url": proxy.url,
            "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    ds = plane.create(url, storage_options=direct)
    ds.create_tensor("x", dtype="float32")
    ds.extend({"x": np.arange(8, dtype=np.float32)})
    ds.commit("eight")
    try:
        yield url, direct, opts, proxy
    finally:
        proxy.cut()


def _check(err: pytest.ExceptionInfo[StoreError], url: str) -> None:
    msg = str(err.value)
    assert isinstance(err.value, OSError)
    assert url in msg and "reachable" in msg and "endpoint_url" in msg, msg
    assert _SECRET not in msg.replace(url, "")


def test_read_after_the_endpoint_goes_away(proxied: Any) -> None:
    url, _, opts, proxy = proxied
    ds = plane.open(url, storage_options=opts, read_only=True)
    proxy.cut()
    with pytest.raises(StoreError) as err:
        ds["x"].numpy()  # its chunks are fetched now
    _check(err, url)


def test_write_after_the_endpoint_goes_away(proxied: Any) -> None:
    url, direct, opts, proxy = proxied
    ds = plane.open(url, storage_options=opts)
    proxy.cut()
    with pytest.raises(StoreError) as err:
        ds.extend({"x": np.ones(4, np.float32)})
        ds.commit("four more")
    _check(err, url)
    again = plane.open(url, storage_options=direct, read_only=True)
    assert len(again) == 8 and [e["message"] for e in again.log()] == ["eight"]


def test_open_and_read_without_credentials(proxied: Any, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    url, direct, _, _ = proxied
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    anonymous = {k: v for k, v in direct.items() if k not in ("key", "secret")}
    with pytest.raises(StoreError, match=r"NoCredentialsError.*storage_options=\{'key'") as e:
        plane.open(url, storage_options=anonymous)
    assert url in str(e.value) and isinstance(e.value, OSError)
