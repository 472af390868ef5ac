"""Datasets and clients for the `plane serve` tests."""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path
from typing import Any

import numpy as np

import plane

ROWS = 40
SCRIPT = "<script>document.title='pwned'</script>"


def jpeg(i: int) -> bytes:
    from PIL import Image

    a = np.zeros((48, 64, 3), np.uint8)
    a[..., 0] = np.linspace(0, 255, 64, dtype=np.uint8)[None, :]
    a[..., 1] = (i * 6) % 256
    a[..., 2] = np.linspace(0, 255, 48, dtype=np.uint8)[:, None]
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def build(path: Path | str) -> plane.Dataset:
    """40 rows (images, labels, embedding, caption, boxes) on main; branch alice relabels
    rows 1 and 2; branch bob relabels row 1 differently (a conflict with alice), row 2 as
    alice did (no conflict) and changes caption 7."""
    ds = plane.create(str(path))
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog", "fox"])
    ds.create_tensor("embedding", htype="embedding", dtype="float32")
    ds.create_tensor("caption", htype="text", chunk_compression=None, chunk_bytes=1024)
    ds.create_tensor("boxes", htype="bbox")
    rng = np.random.default_rng(0)
    ds.extend({"images": [jpeg(i) for i in range(ROWS)],
               "labels": [i % 2 for i in range(ROWS)],
               "embedding": rng.normal(size=(ROWS, 8)).astype("float32"),
               "caption": [SCRIPT if i == 3 else f"caption-{i:03d} " + "x" * 100
                           for i in range(ROWS)],
               "boxes": [np.array([[4, 4, 20, 10]], np.float32)] * ROWS})
    ds.commit("first rows")
    ds.checkout("alice", create=True)
    ds["labels"][[1, 2]] = ["cat", "dog"]
    ds.commit("alice relabels 1 and 2")
    ds.checkout("main")
    ds.checkout("bob", create=True)
    ds["labels"][1] = "fox"
    ds["labels"][2] = "dog"  # the value alice set too: no conflict
    ds["caption"][7] = "bob's caption"
    ds.commit("bob relabels 1 and 2")
    ds.checkout("main")
    return ds


def card_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'class="card" data-id="(\d+)"', html)]


def csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


class Client:
    """A synchronous wrapper over aiohttp's test client (its own event loop)."""

    def __init__(self, app: Any) -> None:
        from aiohttp.test_utils import TestClient, TestServer

        self.loop = asyncio.new_event_loop()

        async def make() -> Any:
            c = TestClient(TestServer(app))
            await c.start_server()
            return c
        self.client = self.loop.run_until_complete(make())
        self.app = app

    def request(self, method: str, path: str, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        async def go() -> tuple[int, Any, dict[str, str]]:
            kw.setdefault("allow_redirects", False)
            async with self.client.request(method, path, **kw) as r:
                ctype = r.headers.get("Content-Type", "")
                body = await (r.text() if ctype.startswith("text/") else r.read())
                return r.status, body, dict(r.headers)
        return self.loop.run_until_complete(go())

    def get(self, path: str, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self.request("GET", path, **kw)

    def post(self, path: str, data: Any, **kw: Any) -> tuple[int, Any, dict[str, str]]:
        return self.request("POST", path, data=data, **kw)

    def close(self) -> None:
        self.loop.run_until_complete(self.client.close())
        self.loop.close()
