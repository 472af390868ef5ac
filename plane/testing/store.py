"""A contract test suite for `plane.storage.Store` implementations.

Subclass `StoreTests` in a pytest module and provide a ``store`` fixture that returns a fresh,
empty store for every test::

    class TestMyStore(StoreTests):
        @pytest.fixture
        def store(self, tmp_path):
            return MyStore(tmp_path)

A store that refuses writes (a read-only view) subclasses `StoreReadTests` instead, and
overrides `fill` to put the objects the read tests need through a writable handle on the same
data. `store_state_machine` / `run_store_state_machine` check a store against a dict model with
hypothesis' stateful testing.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from plane._errors import ObjectNotFoundError
from plane.storage import Store

__all__ = [
    "StoreReadTests",
    "StoreTests",
    "StoreStateMachine",
    "store_state_machine",
    "run_store_state_machine",
    "expected_range",
]

BINARY = bytes(range(256)) * 4 + b"\x00\xff\x00"
BIG = bytes(range(251)) * 1045  # ~256 KiB, not a multiple of common block sizes

# Keys of the list tests: nested, and a prefix ("a/b") that is not a directory boundary. No key
# is a directory of another one (a file and a directory cannot share a name on local disk).
LIST_KEYS = ["a/b/c", "a/b/x", "a/bc", "a/d", "ab", "z/y/x/w", "zz"]
RANGE_DATA = b"0123456789"


def expected_range(data: bytes, start: int, end: int) -> bytes:
    """What ``get_range(key, start, end)`` returns for an object holding `data`.

    Python slice semantics, except that ``end == 0`` means 'to the end': a negative start or end
    counts from the end of the object, both are clamped to it, and an empty range gives b"".
    """
    return data[start : (None if end == 0 else end)]


class StoreReadTests:
    """The read half of the Store contract; every test gets a fresh, empty ``store`` fixture."""

    def fill(self, store: Store, items: Mapping[str, bytes]) -> None:
        """Put `items` so that `store` sees them. Read-only variants write another way."""
        for key, data in items.items():
            store.put(key, data)

    # ---- get ------------------------------------------------------------------------------
    @pytest.mark.parametrize(
        "data",
        [b"", b"x", b"hello world", BINARY, BIG],
        ids=["empty", "one", "text", "binary", "big"],
    )
    def test_get_roundtrip(self, store: Store, data: bytes) -> None:
        self.fill(store, {"obj": data})
        got = store.get("obj")
        assert isinstance(got, bytes)
        assert got == data

    def test_get_nested_and_unusual_keys(self, store: Store) -> None:
        items = {"a/b/c/d.bin": b"deep", "x y/ünï cödé.bin": b"unicode", "k.v=1,2": b"punct"}
        self.fill(store, items)
        for key, data in items.items():
            assert store.get(key) == data

    def test_get_missing_raises_object_not_found(self, store: Store) -> None:
        with pytest.raises(ObjectNotFoundError) as info:
            store.get("no/such/key")
        assert "no/such/key" in str(info.value)

    def test_get_missing_is_a_key_error(self, store: Store) -> None:
        with pytest.raises(KeyError):
            store.get("missing")

    def test_common_prefix_is_not_an_object(self, store: Store) -> None:
        self.fill(store, {"dir/obj": b"x"})
        with pytest.raises(ObjectNotFoundError):
            store.get("dir")
        with pytest.raises(ObjectNotFoundError):
            store.get_range("dir", -1, 0)
        assert not store.exists("dir")

    # ---- get_range ------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("start", "end"),
        [
            (0, 10),  # whole
            (2, 5),  # middle
            (0, 1),  # first byte
            (9, 10),  # last byte
            (5, 100),  # end clamped to the size
            (0, 1 << 40),  # far past the end
            (3, 0),  # end == 0: to the end
            (0, 0),  # the whole object
            (-3, 0),  # the last 3 bytes
            (-100, 0),  # start clamped to 0
            (-4, -1),  # negative end counts from the end too
            (2, -2),
            (-1, 10),
            (10, 20),  # starts at the end: empty
            (15, 20),  # starts past the end: empty
            (5, 5),  # empty range
            (6, 3),  # end before start: empty
            (-2, -5),  # end before start, both negative: empty
            (0, -20),  # end before the start of the object: empty
        ],
    )
    def test_get_range(self, store: Store, start: int, end: int) -> None:
        self.fill(store, {"r": RANGE_DATA})
        assert store.get_range("r", start, end) == expected_range(RANGE_DATA, start, end)

    @pytest.mark.parametrize(("start", "end"), [(0, 10), (0, 0), (-5, 0), (3, 7), (5, 5)])
    def test_get_range_of_empty_object(self, store: Store, start: int, end: int) -> None:
        self.fill(store, {"empty": b""})
        assert store.get_range("empty", start, end) == b""

    def test_get_range_binary(self, store: Store) -> None:
        self.fill(store, {"big": BIG})
        assert store.get_range("big", 1000, 70_000) == BIG[1000:70_000]
        assert store.get_range("big", -12345, 0) == BIG[-12345:]

    @pytest.mark.parametrize(("start", "end"), [(0, 4), (-4, 0), (0, 0), (3, 3)])
    def test_get_range_missing_raises(self, store: Store, start: int, end: int) -> None:
        with pytest.raises(ObjectNotFoundError) as info:
            store.get_range("gone", start, end)
        assert "gone" in str(info.value)

    # ---- exists ---------------------------------------------------------------------------
    def test_get_buffer_matches_get(self, store: Store) -> None:
        big = bytes(range(256)) * (5 << 12)  # 5 MiB: large enough to be memory-mapped
        self.fill(store, {"small": b"abc", "big/obj": big})
        assert bytes(store.get_buffer("small")) == b"abc"
        assert bytes(store.get_buffer("big/obj")) == big
        with pytest.raises(ObjectNotFoundError):
            store.get_buffer("nope")

    def test_list_info_names_every_key(self, store: Store) -> None:
        self.fill(store, {"a/1": b"x", "a/2": b"yy", "b": b""})
        info = list(store.list_info("a/"))
        assert [k for k, _, _ in info] == ["a/1", "a/2"]
        assert all(size in (None, len(b"x" * int(k[-1]))) for k, size, _ in info)

    def test_exists(self, store: Store) -> None:
        self.fill(store, {"here": b"1", "empty": b""})
        assert store.exists("here")
        assert store.exists("empty")
        assert not store.exists("absent")
        assert not store.exists("here/not")

    # ---- list -----------------------------------------------------------------------------
    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            ("", LIST_KEYS),
            ("a", ["a/b/c", "a/b/x", "a/bc", "a/d", "ab"]),
            ("a/", ["a/b/c", "a/b/x", "a/bc", "a/d"]),
            ("a/b", ["a/b/c", "a/b/x", "a/bc"]),  # not a directory boundary
            ("a/b/", ["a/b/c", "a/b/x"]),
            ("a/b/c", ["a/b/c"]),  # a whole key
            ("z/y/x/", ["z/y/x/w"]),
            ("z", ["z/y/x/w", "zz"]),
            ("q", []),
            ("a/q/", []),
            ("a/b/c/", []),  # under an object: nothing
            ("nope/deeper/still/", []),
        ],
    )
    def test_list_prefix(self, store: Store, prefix: str, expected: list[str]) -> None:
        self.fill(store, dict.fromkeys(LIST_KEYS, b"v"))
        got = list(store.list(prefix))
        assert got == expected

    def test_list_default_prefix_lists_all_sorted(self, store: Store) -> None:
        keys = ["m", "b/2", "b/10", "a", "b/1", "c/x/y"]
        self.fill(store, dict.fromkeys(keys, b""))
        got = list(store.list())
        assert got == sorted(keys)

    def test_list_empty_store(self, store: Store) -> None:
        assert list(store.list()) == []
        assert list(store.list("a/")) == []

    # ---- get_many -------------------------------------------------------------------------
    def test_get_many(self, store: Store) -> None:
        items = {f"many/{i:03d}": bytes([i]) * i for i in range(20)}
        self.fill(store, items)
        got = store.get_many(list(items))
        assert got == items
        assert store.get_many(["many/003", "many/003", "many/005"], max_workers=2) == {
            "many/003": items["many/003"],
            "many/005": items["many/005"],
        }
        assert store.get_many([]) == {}
        assert store.get_many(["many/007"]) == {"many/007": items["many/007"]}

    def test_get_many_missing_raises(self, store: Store) -> None:
        self.fill(store, {"k1": b"1", "k2": b"2"})
        with pytest.raises(ObjectNotFoundError) as info:
            store.get_many(["k1", "k-missing", "k2"])
        assert "k-missing" in str(info.value)
        with pytest.raises(ObjectNotFoundError):
            store.get_many(["k-missing"])

    # ---- pickling -------------------------------------------------------------------------
    def test_pickle_roundtrip_sees_same_data(self, store: Store) -> None:
        if store.url.startswith("mem://_anon_"):
            pytest.skip("an anonymous MemoryStore has no name to reopen by")
        self.fill(store, {"p/1": b"one"})
        clone = pickle.loads(pickle.dumps(store))
        assert type(clone) is type(store)
        assert clone.url == store.url
        assert clone.get("p/1") == b"one"
        # Written after pickling, through the clone: both see it.
        self.fill(clone, {"p/2": b"two"})
        assert store.get("p/2") == b"two"
        assert list(clone.list("p/")) == ["p/1", "p/2"]

    def test_repr_names_the_url(self, store: Store) -> None:
        assert store.url
        assert store.url in repr(store)


class StoreTests(StoreReadTests):
    """The whole Store contract: the read tests plus every write primitive."""

    # ---- put ------------------------------------------------------------------------------
    def test_put_get(self, store: Store) -> None:
        store.put("k", b"v")
        assert store.get("k") == b"v"
        store.put("empty", b"")
        assert store.get("empty") == b""
        assert store.exists("empty")

    def test_put_overwrites(self, store: Store) -> None:
        store.put("k", b"first version, longer")
        store.put("k", b"second")
        assert store.get("k") == b"second"
        assert store.get_range("k", -3, 0) == b"ond"
        assert list(store.list()) == ["k"]

    def test_put_copies_mutable_input(self, store: Store) -> None:
        buf = bytearray(b"abcdef")
        store.put("k", buf)  # type: ignore[arg-type]
        buf[:] = b"XXXXXX"
        assert store.get("k") == b"abcdef"
        store.put("m", memoryview(b"0123456789")[2:5])  # type: ignore[arg-type]
        assert store.get("m") == b"234"

    def test_put_many(self, store: Store) -> None:
        items = {f"pm/{i}": f"value {i}".encode() for i in range(12)}
        store.put_many(items)
        assert store.get_many(list(items)) == items
        store.put_many({"pm/one": b"1"})
        store.put_many({})
        assert store.get("pm/one") == b"1"
        assert list(store.list("pm/")) == sorted([*items, "pm/one"])

    # ---- put_if_absent --------------------------------------------------------------------
    def test_put_if_absent(self, store: Store) -> None:
        assert store.put_if_absent("once", b"first") is True
        assert store.put_if_absent("once", b"second") is False
        assert store.get("once") == b"first"

    def test_put_if_absent_empty_bytes(self, store: Store) -> None:
        assert store.put_if_absent("e", b"") is True
        assert store.put_if_absent("e", b"later") is False
        assert store.get("e") == b""

    def test_put_if_absent_over_put(self, store: Store) -> None:
        store.put("k", b"existing")
        assert store.put_if_absent("k", b"new") is False
        assert store.get("k") == b"existing"

    def test_put_if_absent_after_delete(self, store: Store) -> None:
        assert store.put_if_absent("k", b"1") is True
        store.delete("k")
        assert store.put_if_absent("k", b"2") is True
        assert store.get("k") == b"2"

    def test_put_if_absent_race(self, store: Store) -> None:
        n = 8
        barrier = threading.Barrier(n)
        payloads = [f"writer {i} ".encode() * (i + 1) for i in range(n)]

        def attempt(i: int) -> bool:
            barrier.wait()
            return store.put_if_absent("race/key", payloads[i])

        with ThreadPoolExecutor(n) as pool:
            results = list(pool.map(attempt, range(n)))
        assert results.count(True) == 1, results
        assert store.get("race/key") == payloads[results.index(True)]
        assert list(store.list("race/")) == ["race/key"]

    # ---- delete ---------------------------------------------------------------------------
    def test_delete(self, store: Store) -> None:
        store.put("d/1", b"1")
        store.put("d/2", b"2")
        store.delete("d/1")
        assert not store.exists("d/1")
        with pytest.raises(ObjectNotFoundError):
            store.get("d/1")
        assert store.get("d/2") == b"2"
        assert list(store.list()) == ["d/2"]

    def test_delete_missing_is_not_an_error(self, store: Store) -> None:
        store.delete("never/was")
        store.put("k", b"v")
        store.delete("k")
        store.delete("k")
        assert list(store.list()) == []

    def test_delete_prefix(self, store: Store) -> None:
        for key in LIST_KEYS:
            store.put(key, b"v")
        assert store.delete_prefix("a/b") == 3
        assert list(store.list()) == ["a/d", "ab", "z/y/x/w", "zz"]
        assert store.delete_prefix("nothing/") == 0
        assert store.delete_prefix("") == 4
        assert list(store.list()) == []


# ---- stateful testing ---------------------------------------------------------------------

_KEYS = st.sampled_from(["k0", "k1", "d/k2", "d/k3", "d/e/k4", "dx"])
_PREFIXES = st.sampled_from(["", "k", "k1", "d", "d/", "d/e", "d/e/", "dx", "zz", "d/zz/"])
_DATA = st.binary(max_size=24)
_OFFSETS = st.integers(min_value=-30, max_value=30)


class StoreStateMachine(RuleBasedStateMachine):
    """Drives a store and a dict model with the same operations; they must always agree.

    Subclasses set `store_factory` (a callable returning a fresh, empty store); see
    `store_state_machine`.
    """

    store_factory: Callable[[], Store]

    def __init__(self) -> None:
        super().__init__()
        self.store = type(self).store_factory()
        self.model: dict[str, bytes] = {}

    @rule(key=_KEYS, data=_DATA)
    def put(self, key: str, data: bytes) -> None:
        self.store.put(key, data)
        self.model[key] = data

    @rule(key=_KEYS, data=_DATA)
    def put_if_absent(self, key: str, data: bytes) -> None:
        created = self.store.put_if_absent(key, data)
        assert created is (key not in self.model)
        if created:
            self.model[key] = data

    @rule(key=_KEYS)
    def delete(self, key: str) -> None:
        self.store.delete(key)
        self.model.pop(key, None)

    @rule(key=_KEYS)
    def get(self, key: str) -> None:
        if key in self.model:
            assert self.store.get(key) == self.model[key]
        else:
            with pytest.raises(ObjectNotFoundError):
                self.store.get(key)

    @rule(key=_KEYS, start=_OFFSETS, end=_OFFSETS)
    def get_range(self, key: str, start: int, end: int) -> None:
        if key in self.model:
            want = expected_range(self.model[key], start, end)
            assert self.store.get_range(key, start, end) == want
        else:
            with pytest.raises(ObjectNotFoundError):
                self.store.get_range(key, start, end)

    @rule(key=_KEYS)
    def exists(self, key: str) -> None:
        assert self.store.exists(key) is (key in self.model)

    @rule(prefix=_PREFIXES)
    def list(self, prefix: str) -> None:
        want = sorted(k for k in self.model if k.startswith(prefix))
        assert [*self.store.list(prefix)] == want

    def teardown(self) -> None:
        # A last full comparison, then leave the location empty.
        assert self.store.get_many(self.model) == self.model
        assert self.store.delete_prefix("") == len(self.model)


def _settings(max_examples: int, stateful_step_count: int) -> settings:
    return settings(
        max_examples=max_examples,
        stateful_step_count=stateful_step_count,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )


def store_state_machine(
    store_factory: Callable[[], Store],
    *,
    max_examples: int = 25,
    stateful_step_count: int = 20,
    name: str = "StoreStateMachine",
) -> type[StoreStateMachine]:
    """A `StoreStateMachine` subclass for `store_factory`; its ``.TestCase`` is a unittest case
    that pytest collects (``TestMyStore = store_state_machine(factory).TestCase``).

    `store_factory` is called once per example and must return a fresh, empty store.
    """
    attrs: dict[str, Any] = {
        "store_factory": staticmethod(store_factory),
        "__module__": StoreStateMachine.__module__,
    }
    machine = cast("type[StoreStateMachine]", type(name, (StoreStateMachine,), attrs))
    machine.TestCase.settings = _settings(max_examples, stateful_step_count)
    return machine


def run_store_state_machine(
    store_factory: Callable[[], Store],
    *,
    max_examples: int = 25,
    stateful_step_count: int = 20,
) -> None:
    """Run the state machine now, e.g. inside a pytest test that has fixtures for the store."""
    run_state_machine_as_test(
        store_state_machine(store_factory),
        settings=_settings(max_examples, stateful_step_count),
    )
