"""The Store contract against every backend and wrapper, plus backend-specific behaviour."""

from __future__ import annotations

import errno
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from plane._errors import ObjectNotFoundError, PlaneError, ReadOnlyError, StoreError
from plane.storage import (
    CachingStore,
    FsspecStore,
    LocalStore,
    MemoryStore,
    ReadOnlyStore,
    Store,
    open_store,
)
from plane.testing import FaultyStore, StoreReadTests, StoreTests, run_store_state_machine


@pytest.fixture
def mem_name() -> Iterator[str]:
    name = f"test-{uuid.uuid4().hex}"
    yield name
    MemoryStore.drop(name)


# ---- the contract, backend by backend -----------------------------------------------------


class TestMemoryStoreAnonymous(StoreTests):
    @pytest.fixture
    def store(self) -> Store:
        return MemoryStore()


class TestMemoryStoreNamed(StoreTests):
    @pytest.fixture
    def store(self, mem_name: str) -> Store:
        return MemoryStore(mem_name)

    def test_same_name_shares_data(self, store: Store, mem_name: str) -> None:
        store.put("k", b"v")
        other = MemoryStore(mem_name)
        assert other.get("k") == b"v"
        assert open_store(f"mem://{mem_name}").get("k") == b"v"

    def test_put_if_absent_race_across_instances(self, mem_name: str) -> None:
        stores = [MemoryStore(mem_name) for _ in range(8)]
        barrier = threading.Barrier(len(stores))

        def attempt(i: int) -> bool:
            barrier.wait()
            return stores[i].put_if_absent("k", bytes([i]))

        with ThreadPoolExecutor(len(stores)) as pool:
            results = list(pool.map(attempt, range(len(stores))))
        assert results.count(True) == 1
        assert stores[0].get("k") == bytes([results.index(True)])


class TestLocalStore(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return LocalStore(tmp_path / "root")

    @pytest.mark.parametrize("key", ["../escape", "a/../../b", "a/..", "..", "/abs", ""])
    def test_rejects_keys_outside_root(self, store: Store, key: str) -> None:
        with pytest.raises(ValueError, match="invalid store key"):
            store.put(key, b"x")
        with pytest.raises(ValueError, match="invalid store key"):
            store.get(key)

    def test_put_leaves_no_temp_files(self, store: LocalStore) -> None:
        store.put("a/b", b"1")
        assert store.put_if_absent("a/b", b"2") is False
        assert store.put_if_absent("a/c", b"3") is True
        assert sorted(p.name for p in (store.root / "a").iterdir()) == ["b", "c"]


@pytest.mark.s3
class TestFsspecStoreS3(StoreTests):
    @pytest.fixture
    def store(self, s3_bucket: tuple[str, dict[str, Any]]) -> Store:
        url, options = s3_bucket
        return FsspecStore(url, options)


class TestCachingStoreMemory(StoreTests):
    @pytest.fixture
    def store(self, mem_name: str) -> Store:
        return CachingStore(MemoryStore(mem_name), max_bytes=1 << 20)


class TestCachingStoreLocalDisk(StoreTests):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        return CachingStore(
            LocalStore(tmp_path / "root"), max_bytes=1 << 20, disk_dir=tmp_path / "cache"
        )


class TestFaultyStorePassThrough(StoreTests):
    """A FaultyStore that injects nothing is a faithful Store."""

    @pytest.fixture
    def store(self, mem_name: str) -> Store:
        return FaultyStore(MemoryStore(mem_name))


class TestReadOnlyStore(StoreReadTests):
    """The read contract through a ReadOnlyStore; objects are written through its inner store."""

    @pytest.fixture
    def store(self, mem_name: str) -> Store:
        return ReadOnlyStore(MemoryStore(mem_name))

    def fill(self, store: Store, items: Mapping[str, bytes]) -> None:
        assert isinstance(store, ReadOnlyStore)
        for key, data in items.items():
            store.inner.put(key, data)

    @pytest.mark.parametrize(
        "write",
        [
            lambda s: s.put("w/key", b"new"),
            lambda s: s.put_if_absent("w/key", b"new"),
            lambda s: s.delete("w/key"),
            lambda s: s.put_many({"w/key": b"new", "w/key2": b"new"}),
            lambda s: s.delete_prefix("w/"),
        ],
        ids=["put", "put_if_absent", "delete", "put_many", "delete_prefix"],
    )
    def test_writes_raise_read_only_error(self, store: ReadOnlyStore, write: Any) -> None:
        store.inner.put("w/key", b"old")
        with pytest.raises(ReadOnlyError) as info:
            write(store)
        msg = str(info.value)
        assert "w/key" in msg
        assert "read-only" in msg
        assert "read_only=False" in msg  # the fix
        assert isinstance(info.value, PermissionError)
        assert store.inner.get("w/key") == b"old"
        assert list(store.inner.list()) == ["w/key"]

    def test_read_only_flag(self, store: ReadOnlyStore) -> None:
        assert store.read_only is True
        assert store.inner.read_only is False


# ---- wrappers: targeted behaviour ---------------------------------------------------------


class TestCachingStoreCounters:
    def test_second_get_is_a_hit(self) -> None:
        inner = MemoryStore()
        inner.put("k", b"v1")
        cache = CachingStore(inner)
        assert cache.get("k") == b"v1"
        assert (cache.hits, cache.misses) == (0, 1)
        assert cache.get("k") == b"v1"
        assert (cache.hits, cache.misses) == (1, 1)
        # A range of a cached object is served from the cache.
        inner.put("k", b"changed behind the cache's back")
        assert cache.get_range("k", -1, 0) == b"1"

    def test_put_and_delete_invalidate(self) -> None:
        cache = CachingStore(MemoryStore())
        cache.put("k", b"v1")
        assert cache.get("k") == b"v1"
        cache.put("k", b"v2")
        assert cache.get("k") == b"v2"
        assert (cache.hits, cache.misses) == (0, 2)
        assert cache.get("k") == b"v2"
        assert cache.hits == 1
        cache.delete("k")
        with pytest.raises(ObjectNotFoundError):
            cache.get("k")
        assert cache.misses == 3

    def test_missing_key_is_not_cached(self) -> None:
        cache = CachingStore(MemoryStore())
        with pytest.raises(ObjectNotFoundError):
            cache.get("k")
        cache.inner.put("k", b"now")
        assert cache.get("k") == b"now"

    def test_cacheable_predicate(self) -> None:
        cache = CachingStore(MemoryStore(), cacheable=lambda k: k.startswith("chunks/"))
        cache.put("chunks/a", b"a")
        cache.put("meta", b"m")
        for _ in range(3):
            assert cache.get("chunks/a") == b"a"
            assert cache.get("meta") == b"m"
        assert (cache.hits, cache.misses) == (2, 1)

    def test_memory_bound_evicts_lru(self) -> None:
        cache = CachingStore(MemoryStore(), max_bytes=10)
        for key in "abc":
            cache.put(key, key.encode() * 4)
            cache.get(key)  # misses; "a" is evicted when "c" comes in
        assert cache.misses == 3
        cache.get("c")
        cache.get("b")
        assert cache.hits == 2
        cache.get("a")
        assert cache.misses == 4

    def test_disk_cache_survives_a_new_instance(self, tmp_path: Path) -> None:
        inner = LocalStore(tmp_path / "root")
        inner.put("x/y", b"payload")
        first = CachingStore(inner, disk_dir=tmp_path / "cache")
        assert first.get("x/y") == b"payload"
        assert first.misses == 1
        second = CachingStore(inner, disk_dir=tmp_path / "cache")
        assert second.get("x/y") == b"payload"
        assert (second.hits, second.misses) == (1, 0)
        second.put("x/y", b"new")  # invalidates memory and disk
        third = CachingStore(inner, disk_dir=tmp_path / "cache")
        assert third.get("x/y") == b"new"
        assert (third.hits, third.misses) == (0, 1)

    def test_disk_cache_bounded(self, tmp_path: Path) -> None:
        cache = CachingStore(
            MemoryStore(), max_bytes=0, disk_dir=tmp_path / "cache", disk_max_bytes=250
        )
        for i in range(5):
            cache.put(f"k{i}", bytes(100))
            cache.get(f"k{i}")
        files = [p for p in (tmp_path / "cache").glob("*/*")]
        assert 0 < len(files) <= 2
        assert sum(p.stat().st_size for p in files) <= 250


class TestFaultyStore:
    def test_fail_keys_raise_store_error_naming_the_key(self) -> None:
        inner = MemoryStore()
        inner.put("bad/one", b"x")
        inner.put("good", b"y")
        faulty = FaultyStore(inner, fail_keys=lambda k: k.startswith("bad/"))
        assert faulty.get("good") == b"y"
        for call in (
            lambda: faulty.get("bad/one"),
            lambda: faulty.get_range("bad/one", 0, 1),
            lambda: faulty.put("bad/one", b"z"),
            lambda: faulty.put_if_absent("bad/two", b"z"),
            lambda: faulty.delete("bad/one"),
        ):
            with pytest.raises(StoreError, match="bad/") as info:
                call()
            assert isinstance(info.value, OSError)
            assert not isinstance(info.value, KeyError)  # not mistaken for 'missing'
        assert inner.get("bad/one") == b"x"
        assert not inner.exists("bad/two")
        with pytest.raises(StoreError, match="bad/one"):
            faulty.get_many(["good", "bad/one"])

    def test_corrupt_flips_bytes(self) -> None:
        inner = MemoryStore()
        data = bytes(range(64))
        inner.put("c/x", data)
        inner.put("fine", data)
        faulty = FaultyStore(inner, corrupt=lambda k: k.startswith("c/"))
        got = faulty.get("c/x")
        assert len(got) == len(data)
        assert sum(a != b for a, b in zip(got, data)) == 1
        assert faulty.get("fine") == data
        assert faulty.get_range("c/x", 0, 8) != data[:8]
        assert inner.get("c/x") == data  # the stored bytes are intact

    def test_fail_rate_is_seeded(self) -> None:
        def outcomes(seed: int) -> list[bool]:
            faulty = FaultyStore(MemoryStore(), fail_rate=0.5, seed=seed)
            out = []
            for i in range(40):
                try:
                    faulty.put(f"k{i}", b"")
                    out.append(True)
                except StoreError:
                    out.append(False)
            return out

        first = outcomes(7)
        assert first == outcomes(7)
        assert 0 < first.count(False) < 40

    def test_latency_and_call_count(self) -> None:
        faulty = FaultyStore(MemoryStore(), latency=0.005)
        t0 = time.perf_counter()
        faulty.put("k", b"v")
        faulty.get("k")
        faulty.get_range("k", 0, 1)
        list(faulty.list())
        elapsed = time.perf_counter() - t0
        assert faulty.calls == 4
        assert elapsed >= 4 * 0.005


# ---- hypothesis state machine ------------------------------------------------------------


def test_state_machine_memory() -> None:
    run_store_state_machine(MemoryStore)


def test_state_machine_local(tmp_path: Path) -> None:
    run_store_state_machine(lambda: LocalStore(tmp_path / uuid.uuid4().hex))


@pytest.mark.s3
def test_state_machine_s3(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    url, options = s3_bucket
    run_store_state_machine(lambda: FsspecStore(f"{url}/{uuid.uuid4().hex}", options))


# ---- S3 specifics --------------------------------------------------------------------------


@pytest.mark.s3
class TestS3ConditionalWrite:
    def test_moto_answers_412_and_s3fs_raises_file_exists(
        self, s3_bucket: tuple[str, dict[str, Any]]
    ) -> None:
        from botocore.exceptions import ClientError

        url, options = s3_bucket
        store = FsspecStore(url, options)
        assert store.put_if_absent("k", b"first") is True
        with pytest.raises(FileExistsError) as info:
            store.fs.pipe_file(f"{store.root}/k", b"second", mode="create")
        cause = info.value.__cause__
        assert isinstance(cause, ClientError)
        assert cause.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        assert cause.response["Error"]["Code"] == "PreconditionFailed"
        assert cause.response["Error"]["Condition"] == "If-None-Match"
        assert store.get("k") == b"first"

    def test_put_if_absent_uses_the_conditional_put(
        self, s3_bucket: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        url, options = s3_bucket
        store = FsspecStore(url, options)

        def no_check_then_write(*args: Any, **kwargs: Any) -> bool:
            raise AssertionError("put_if_absent fell back to exists() + put()")

        monkeypatch.setattr(store.fs, "exists", no_check_then_write)
        assert store.put_if_absent("k", b"first") is True
        assert store.put_if_absent("k", b"second") is False
        assert store._exclusive_ok
        assert store.get("k") == b"first"

    def test_two_clients_race(self, s3_bucket: tuple[str, dict[str, Any]]) -> None:
        url, options = s3_bucket
        clients = [FsspecStore(url, options), FsspecStore(url, options)]
        assert clients[0].fs is not clients[1].fs  # two separate s3fs clients
        n = 8
        barrier = threading.Barrier(n)
        payloads = [f"writer {i}".encode() for i in range(n)]

        def attempt(i: int) -> bool:
            barrier.wait()
            return clients[i % 2].put_if_absent("race", payloads[i])

        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(attempt, range(n)))
        assert results.count(True) == 1, results
        winner = payloads[results.index(True)]
        assert clients[0].get("race") == winner
        assert clients[1].get("race") == winner

    def test_conditional_conflict_409_is_retried(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from plane.storage import _fsspec

        monkeypatch.setattr(_fsspec.time, "sleep", lambda s: None)

        class Conflict(Exception):
            response = {
                "Error": {"Code": "ConditionalRequestConflict"},
                "ResponseMetadata": {"HTTPStatusCode": 409},
            }

        class FakeFs:
            calls = 0

            def pipe_file(self, path: str, data: bytes, mode: str = "overwrite") -> None:
                FakeFs.calls += 1
                if FakeFs.calls < 3:
                    raise OSError(errno.EBUSY, "conflict") from Conflict()

        store = FsspecStore("s3://bucket/root")
        store._fs = FakeFs()
        assert store.put_if_absent("k", b"v") is True
        assert FakeFs.calls == 3

    def test_other_errors_are_store_errors(self) -> None:
        class FakeFs:
            def pipe_file(self, path: str, data: bytes, mode: str = "overwrite") -> None:
                raise OSError(errno.EACCES, "denied")

        store = FsspecStore("s3://bucket/root")
        store._fs = FakeFs()
        with pytest.raises(StoreError, match="root/k"):
            store.put_if_absent("k", b"v")


@pytest.mark.s3
def test_s3_store_pickles_without_its_client(s3_bucket: tuple[str, dict[str, Any]]) -> None:
    import pickle

    url, options = s3_bucket
    store = FsspecStore(url, options)
    store.put("k", b"v")
    clone = pickle.loads(pickle.dumps(store))
    assert clone.fs is not store.fs  # the clone built its own client
    assert clone.get("k") == b"v"
    assert "testing" not in repr(store)  # credentials are never shown


# ---- open_store --------------------------------------------------------------------------


class TestOpenStore:
    def test_mem(self, mem_name: str) -> None:
        store = open_store(f"mem://{mem_name}")
        assert isinstance(store, MemoryStore)
        assert store.url == f"mem://{mem_name}"

    def test_plain_path(self, tmp_path: Path) -> None:
        store = open_store(tmp_path / "p")
        assert isinstance(store, LocalStore)
        assert store.root == tmp_path / "p"
        assert isinstance(open_store(str(tmp_path)), LocalStore)

    def test_file_url(self, tmp_path: Path) -> None:
        store = open_store(f"file://{tmp_path}/p")
        assert isinstance(store, LocalStore)
        assert store.root == tmp_path / "p"
        assert store.url == (tmp_path / "p").as_uri()

    def test_s3_url(self) -> None:
        pytest.importorskip("s3fs")
        store = open_store("s3://bucket/some/path/", {"anon": True})
        assert isinstance(store, FsspecStore)
        assert store.protocol == "s3"
        assert store.url == "s3://bucket/some/path"

    def test_store_passes_through(self) -> None:
        store = MemoryStore()
        assert open_store(store) is store

    def test_unknown_protocol(self) -> None:
        with pytest.raises(PlaneError, match=r"nosuchproto") as info:
            open_store("nosuchproto://x")
        assert "unknown protocol" in str(info.value)
        assert "cannot open nosuchproto://x" in str(info.value)


def test_tmp_store_url_is_fresh(tmp_store_url: tuple[str, Any]) -> None:
    url, options = tmp_store_url
    store = open_store(url, options)
    assert list(store.list()) == []
    store.put("a/b", b"x")
    assert open_store(url, options).get("a/b") == b"x"
