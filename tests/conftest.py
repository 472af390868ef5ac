"""Shared fixtures: an in-process S3 (moto) on loopback, and fresh store URLs per backend."""

from __future__ import annotations

import threading
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from plane.storage import MemoryStore

_FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
_UNSET_AWS_ENV = ["AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"]


def _serialize_moto_puts(mp: pytest.MonkeyPatch) -> None:
    """Make moto's conditional PutObject atomic, as it is on S3.

    moto checks ``If-None-Match: *`` and then stores the object without a lock, while its server
    handles requests on many threads: two racing creates of one key can both succeed there.
    """
    from moto.s3.responses import S3Response

    lock = threading.Lock()
    original = S3Response.put_object

    def put_object(self: S3Response) -> Any:
        with lock:
            return original(self)

    mp.setattr(S3Response, "put_object", put_object)


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A moto S3 server on 127.0.0.1 (a free port) for the whole session; yields its URL."""
    pytest.importorskip("s3fs")
    server_mod = pytest.importorskip("moto.server")
    with pytest.MonkeyPatch.context() as mp:
        for name, value in _FAKE_AWS_ENV.items():
            mp.setenv(name, value)
        for name in _UNSET_AWS_ENV:
            mp.delenv(name, raising=False)
        _serialize_moto_puts(mp)
        server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield f"http://{host}:{port}"
        finally:
            server.stop()


@pytest.fixture(scope="session")
def _s3_client(s3_server: str) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")


def s3_storage_options(endpoint: str) -> dict[str, Any]:
    """storage_options for an FsspecStore on the moto server at `endpoint`.

    ``skip_instance_cache``: every store gets its own S3FileSystem (fsspec would otherwise hand
    back one cached instance, listings cache included, across resets and across "clients").
    """
    return {
        "endpoint_url": endpoint,
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"region_name": "us-east-1"},
        "skip_instance_cache": True,
    }


@pytest.fixture
def s3_bucket(s3_server: str, _s3_client: Any) -> tuple[str, dict[str, Any]]:
    """A fresh bucket on a freshly reset moto: ``("s3://<bucket>/root", storage_options)``."""
    req = urllib.request.Request(f"{s3_server}/moto-api/reset", method="POST")
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    _s3_client.create_bucket(Bucket=bucket)
    return f"s3://{bucket}/root", s3_storage_options(s3_server)


@pytest.fixture(params=["mem", "local", pytest.param("s3", marks=pytest.mark.s3)])
def tmp_store_url(
    request: pytest.FixtureRequest, tmp_path: Any
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """``(url, storage_options)`` of a fresh, empty location on each backend."""
    if request.param == "mem":
        name = f"test-{uuid.uuid4().hex}"
        yield f"mem://{name}", None
        MemoryStore.drop(name)
    elif request.param == "local":
        path = tmp_path / "store"
        path.mkdir()
        yield str(path), None
    else:
        yield request.getfixturevalue("s3_bucket")
