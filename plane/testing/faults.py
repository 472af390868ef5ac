"""A store wrapper that injects latency, failures and corruption (tests and benchmarks)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator

from plane._errors import StoreError
from plane.storage import Store, WrapperStore

__all__ = ["FaultyStore"]


class FaultyStore(WrapperStore):
    """Injects latency and failures, for tests and benchmarks.

    latency: seconds added to every call (plus `jitter` * random). fail_rate: probability that a
    call raises StoreError. fail_keys: predicate; matching keys always fail. corrupt: predicate;
    matching keys return their bytes with one byte flipped.
    """

    def __init__(
        self,
        inner: Store,
        latency: float = 0.0,
        jitter: float = 0.0,
        fail_rate: float = 0.0,
        fail_keys: Callable[[str], bool] | None = None,
        corrupt: Callable[[str], bool] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(inner)
        self.latency, self.jitter, self.fail_rate = latency, jitter, fail_rate
        self.fail_keys, self.corrupt = fail_keys, corrupt
        self._rng = random.Random(seed)
        self.calls = 0

    def _before(self, op: str, key: str) -> None:
        self.calls += 1
        if self.latency or self.jitter:
            time.sleep(self.latency + self.jitter * self._rng.random())
        if (self.fail_keys is not None and self.fail_keys(key)) or (
            self.fail_rate and self._rng.random() < self.fail_rate
        ):
            raise StoreError(f"injected failure: {op} {self.url}/{key}")

    def _maybe_corrupt(self, key: str, data: bytes) -> bytes:
        if self.corrupt is not None and self.corrupt(key) and data:
            b = bytearray(data)
            b[len(b) // 2] ^= 0xFF
            return bytes(b)
        return data

    def get_buffer(self, key: str) -> bytes | memoryview:
        return self.get(key)

    def read_into(self, key: str, start: int, out: memoryview) -> int:
        return Store.read_into(self, key, start, out)

    def get(self, key: str) -> bytes:
        self._before("get", key)
        return self._maybe_corrupt(key, self.inner.get(key))

    def get_range(self, key: str, start: int, end: int) -> bytes:
        self._before("get_range", key)
        return self._maybe_corrupt(key, self.inner.get_range(key, start, end))

    def put(self, key: str, data: bytes) -> None:
        self._before("put", key)
        self.inner.put(key, data)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        self._before("put_if_absent", key)
        return self.inner.put_if_absent(key, data)

    def delete(self, key: str) -> None:
        self._before("delete", key)
        self.inner.delete(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        self._before("list", prefix)
        return self.inner.list(prefix)
