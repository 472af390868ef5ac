"""Hostile names and malformed input get a PlaneError that names the argument and the fix, and
leave the dataset exactly as it was (issue #12, item 9)."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plane
from plane._errors import PlaneError, QueryError, SampleError, SchemaError, StoreError
from plane.format._codecs import MAX_JSON_DEPTH, decode_sample, encode_batch
from plane.format._meta import TensorMeta
from plane.query._indexes import find_index
from plane.query._view import View
from plane.storage import open_store


def _keys(ds: plane.Dataset) -> set[str]:
    return set(ds.store.list(""))


def _committed(path: Path) -> plane.Dataset:
    """A local dataset with a text, a json, a float32, a float64 and an int tensor, 3 rows."""
    ds = plane.create(path)
    ds.create_tensor("t", htype="text")
    ds.create_tensor("j", htype="json")
    ds.create_tensor("f32", dtype="float32")
    ds.create_tensor("f64", dtype="float64")
    ds.create_tensor("n", dtype="int64")
    ds.extend({"t": ["a", "b", "c"], "j": [{"k": 1}, [1, 2], None], "f32": [1.0, 2.0, 3.0],
               "f64": [1.0, 2.0, 3.0], "n": [1, 2, 3]})
    ds.commit("three rows")
    return ds


def _snapshot(ds: plane.Dataset) -> tuple[Any, ...]:
    """Everything a refused call must leave as it was: rows, tensors, values, stored keys."""
    return (len(ds), list(ds.tensors), *(_values(ds, t) for t in ("t", "j", "f32", "f64", "n")),
            ds.has_changes, _keys(ds))


def _values(ds: plane.Dataset, tensor: str) -> list[Any]:
    got = ds[tensor].numpy()
    return got.tolist() if isinstance(got, np.ndarray) else list(got)


@pytest.fixture
def ds(tmp_path: Path) -> plane.Dataset:
    return _committed(tmp_path / "ds")


def _refused(ds: plane.Dataset, call: Callable[[], object], error: type[PlaneError],
             builtin: type[Exception], *words: str) -> str:
    """Run `call`: it must raise `error` (also a `builtin`) whose message has `words`, and the
    dataset must be as it was. Returns the message."""
    before = _snapshot(ds)
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, builtin)
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    assert _snapshot(ds) == before
    return msg


# ---- tensor names ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["..", ".", "a\x00b", "x" * 300, "é" * 128, "a\\b", "a\nb",
                                  "tab\there", "\ud800", "del\x7f"])
def test_hostile_tensor_names_are_refused(ds: plane.Dataset, name: str) -> None:
    msg = _refused(ds, lambda: ds.create_tensor(name), SchemaError, ValueError,
                   "invalid tensor name", "use a non-empty name")
    assert len(msg) < 600  # a 300-character name is shortened, not echoed whole


def test_longest_allowed_tensor_name_works_with_an_index(tmp_path: Path) -> None:
    name = "é" * 127  # 254 UTF-8 bytes: one path component of the index refs
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor(name, dtype="int64")
    ds.extend({name: [5, 7]})
    ds.commit("one")
    ds.create_index(name, kind="minmax")
    again = plane.open(tmp_path / "ds")
    assert again[name].numpy().tolist() == [5, 7]
    assert find_index(again.snapshot(), name, ("minmax",)) is not None
    with pytest.raises(SchemaError, match="256 UTF-8 bytes"):
        again.create_tensor(name + "é")


# ---- view names --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["x" * 300, 5, ["a"], b"abc"])
def test_hostile_view_names_are_refused(ds: plane.Dataset, name: Any) -> None:
    view = View(ds.snapshot(), np.arange(2), None)
    _refused(ds, lambda: view.save(name), QueryError, ValueError, "invalid view name",
             "letters, digits")


@pytest.mark.parametrize("name", ["../dataset", "a\x00b", "x" * 300, "a/b"])
def test_load_view_refuses_names_a_view_cannot_have(ds: plane.Dataset, name: str) -> None:
    _refused(ds, lambda: plane.load_view(ds, name), QueryError, ValueError,
             "invalid view name")


# ---- create_tensor arguments -------------------------------------------------------------

@pytest.mark.parametrize("kwargs, words", [
    ({"shape": "abc"}, ["shape must be a tuple of ints"]),
    ({"shape": "12"}, ["shape must be a tuple of ints"]),  # not (1, 2)
    ({"max_shape": (1.5, 2)}, ["max_shape must be a tuple of ints"]),  # not (1, 2)
    ({"shape": (2**32, 3)}, ["dimension over 4294967295"]),
    ({"max_shape": (2**64,)}, ["dimension over 4294967295"]),
    ({"htype": "class_label", "class_names": 5}, ["class_names must be a list of str"]),
    ({"htype": "class_label", "class_names": "cat"}, ["class_names must be a list of str"]),
    ({"htype": ["image"]}, ["htype must be a str", "choose one of"]),
    ({"chunk_bytes": "4MB"}, ["chunk_bytes must be an int"]),
    ({"chunk_bytes": 2**70}, ["chunk_bytes=", "too large"]),
    ({"htype": "image", "sample_compression": 5}, ["sample_compression must be a str"]),
])
def test_bad_create_tensor_arguments_are_schema_errors(ds: plane.Dataset, kwargs: dict[str, Any],
                                                       words: list[str]) -> None:
    _refused(ds, lambda: ds.create_tensor("new", **kwargs), SchemaError, ValueError,
             "tensor 'new'", *words)


# ---- extend columns ----------------------------------------------------------------------

def _gen() -> Iterator[int]:
    yield from (4, 5, 6)


@pytest.mark.parametrize("column, bad, words", [
    ("t", "abc", ["one str", "ds.append"]),  # not three rows "a", "b", "c"
    ("j", {"k": 1}, ["a dict"]),
    ("n", _gen(), ["generator", "list(values)"]),
    ("n", 5, ["type int"]),
    ("f32", np.float32(1.0), ["float32"]),
    ("f32", np.array(1.0), ["0-d array"]),
    ("n", {1, 2, 3}, ["type set"]),
])
def test_extend_takes_a_list_per_column(ds: plane.Dataset, column: str, bad: Any,
                                        words: list[str]) -> None:
    cols: dict[str, Any] = {"t": ["x"] * 3, "j": [1, 2, 3], "f32": [1.0] * 3,
                            "f64": [1.0] * 3, "n": [1, 2, 3]}
    cols[column] = bad
    _refused(ds, lambda: ds.extend(cols), SampleError, ValueError, f"column {column!r}",
             "extend takes a list of samples per tensor", *words)


def test_a_str_column_is_refused_and_append_keeps_it_one_row(ds: plane.Dataset) -> None:
    cols: dict[str, Any] = {"t": "abc", "j": "abc", "f32": [1.0] * 3, "f64": [1.0] * 3,
                            "n": [1, 2, 3]}
    _refused(ds, lambda: ds.extend(cols), SampleError, ValueError, "column 't'", "one str",
             "ds.append")
    ds.append({"t": "abc", "j": "abc", "f32": 1.0, "f64": 1.0, "n": 1})
    assert len(ds) == 4 and _values(ds, "t")[-1] == "abc"
    assert ds["j"][3].numpy() == "abc"


def test_a_fragment_takes_a_list_per_column_too(ds: plane.Dataset) -> None:
    metas = {n: ds[n].meta for n in ds.tensors}
    cols: dict[str, Any] = {"t": "abc", "j": [1, 2, 3], "f32": [1.0] * 3, "f64": [1.0] * 3,
                            "n": [1, 2, 3]}
    _refused(ds, lambda: plane.write_fragment(ds.store, "frag", metas, cols), SampleError,
             ValueError, "column 't'", "one str")


# ---- json nesting ------------------------------------------------------------------------

def _nested(depth: int) -> list[Any]:
    out: list[Any] = []
    for _ in range(depth - 1):
        out = [out]
    return out


@pytest.mark.parametrize("depth", [100_000, MAX_JSON_DEPTH + 1])
def test_json_nesting_is_bounded(ds: plane.Dataset, depth: int) -> None:
    _refused(ds, lambda: ds.append({"t": "d", "j": _nested(depth), "f32": 1.0, "f64": 1.0,
                                    "n": 1}),
             SampleError, ValueError, "tensor 'j'", f"more than {MAX_JSON_DEPTH} deep",
             "at row 3")
    deep_dict: dict[str, Any] = {}
    for _ in range(depth):
        deep_dict = {"k": deep_dict}
    _refused(ds, lambda: ds["j"].__setitem__(0, deep_dict), SampleError, ValueError,
             "tensor 'j'", "deep")
    value = _nested(MAX_JSON_DEPTH)  # at the bound: stored, and it reads back
    ds.append({"t": "d", "j": value, "f32": 1.0, "f64": 1.0, "n": 1})
    ds.commit("deep")
    assert plane.open(ds.url)["j"][3].numpy() == value


_TRICKY = st.text(alphabet='[]{}"\\a', max_size=6)  # brackets, quotes, escapes in strings


@settings(max_examples=150, deadline=None)
@given(depth=st.integers(MAX_JSON_DEPTH - 8, MAX_JSON_DEPTH + 8),
       strings=st.lists(_TRICKY, min_size=1, max_size=6), data=st.data())
def test_json_depth_counts_containers_not_brackets_in_strings(depth: int, strings: list[str],
                                                              data: st.DataObject) -> None:
    meta = TensorMeta.build("j", "json")
    value: Any = list(strings)
    for i in range(depth - 1):  # each wrap adds one level, strings beside it on some levels
        s = data.draw(st.sampled_from(strings))
        value = {s: value, s + "k": s} if i % 2 else [s, value, s]
    if depth > MAX_JSON_DEPTH:
        with pytest.raises(SampleError, match=f"more than {MAX_JSON_DEPTH} deep at row 7"):
            encode_batch(meta, [value], 7)
    else:
        block, _ = encode_batch(meta, [value], 7)
        assert decode_sample(meta, block.data, block.shapes[0]) == value


# ---- huge dimensions ---------------------------------------------------------------------

@pytest.mark.parametrize("shapes", [[(0, 2**32 + 3)], [(0, 2**32)], [(2, 0), (0, 2**33)]])
def test_a_dimension_over_u32_is_refused_not_wrapped(tmp_path: Path,
                                                     shapes: list[tuple[int, int]]) -> None:
    ds = plane.create(tmp_path / "ds")
    ds.create_tensor("z", dtype="uint8")
    ds.append({"z": np.zeros((1, 1), np.uint8)})
    ds.commit("one")
    before = (len(ds), _keys(ds))
    values = [np.zeros(s, np.uint8) for s in shapes]
    with pytest.raises(SampleError, match=r"tensor 'z'.*dimension over 4294967295") as info:
        ds.extend({"z": values})
    assert isinstance(info.value, ValueError)
    assert (len(ds), _keys(ds)) == before and not ds.has_changes
    ds.append({"z": np.zeros((0, 2**32 - 1), np.uint8)})  # the largest u32 fits
    ds.commit("two")
    assert plane.open(tmp_path / "ds")["z"][1].numpy().shape == (0, 2**32 - 1)


# ---- lossy int -> float casts ------------------------------------------------------------

@pytest.mark.parametrize("tensor, values, bad_row, stored_as", [
    ("f32", [1, 16777217], 4, "16777216"),
    ("f32", [-16777217], 3, "-16777216"),
    ("f32", np.array([3, 2**31 - 1], np.int32), 4, "2147483648"),
    ("f64", [2**53 + 1], 3, "9007199254740992"),
    ("f64", np.array([0, 2**63 - 1], np.int64), 4, "9223372036854775808"),
    ("f64", np.array([2**64 - 1], np.uint64), 3, "18446744073709551616"),
])
def test_lossy_int_to_float_casts_are_refused(ds: plane.Dataset, tensor: str, values: Any,
                                              bad_row: int, stored_as: str) -> None:
    n = len(values)
    cols: dict[str, Any] = {"t": ["x"] * n, "j": [1] * n, "f32": [1.0] * n, "f64": [1.0] * n,
                            "n": [1] * n}
    cols[tensor] = values
    _refused(ds, lambda: ds.extend(cols), SampleError, ValueError, f"tensor {tensor!r}",
             f"at row {bad_row}", f"stored as {stored_as}", "dtype='float64'")
    big = [16777216, 2**30, -(2**40)]  # large, but each exactly a float32: still cast
    ds.extend({"t": ["x"] * 3, "j": [1] * 3, "f32": big, "f64": [2**60, 2**53, -(2**62)],
               "n": [1] * 3})
    assert ds["f32"][3:].numpy().tolist() == [float(v) for v in big]
    assert ds["f64"][3:].numpy().tolist() == [float(2**60), float(2**53), float(-(2**62))]


def test_lossy_update_is_refused(ds: plane.Dataset) -> None:
    _refused(ds, lambda: ds["f32"].__setitem__(1, 16777217), SampleError, ValueError,
             "tensor 'f32'", "at row 1", "16777217")


# ---- dataset URLs ------------------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda p: str(p / "a\x00b"),
    lambda p: str(p / ("x" * 300)),
    lambda p: str(p / "\ud800"),
    lambda p: 5,
    lambda p: "mem://a\x00b",
])
@pytest.mark.parametrize("opener", [plane.create, plane.open])
def test_bad_urls_are_store_errors(tmp_path: Path, make: Callable[[Path], Any],
                                   opener: Callable[[Any], Any]) -> None:
    with pytest.raises(StoreError, match="cannot open") as info:
        opener(make(tmp_path))
    assert isinstance(info.value, OSError)
    assert list(tmp_path.iterdir()) == []


def test_an_os_error_at_create_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(StoreError, match="cannot create a dataset at .*file/ds.*check the path"):
        plane.create(tmp_path / "file" / "ds")
    assert (tmp_path / "file").read_bytes() == b"not a directory"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_SECRET = "SuperSecretValue-0123456789"


@pytest.mark.s3
def test_unreachable_endpoint_is_a_store_error_without_credentials(
        s3_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    monkeypatch.setattr(s3fs.S3FileSystem, "retries", 1)
    options = {"endpoint_url": f"http://127.0.0.1:{_closed_port()}", "key": "AKIAKEYID0000",
               "secret": _SECRET, "skip_instance_cache": True,
               "client_kwargs": {"region_name": "us-east-1"},
               "config_kwargs": {"retries": {"max_attempts": 1}, "connect_timeout": 2}}
    for opener in (plane.create, plane.open):
        with pytest.raises(StoreError) as info:
            opener("s3://bucket/ds", storage_options=options)
        msg = str(info.value)
        assert isinstance(info.value, OSError)
        assert "s3://bucket/ds" in msg and "EndpointConnectionError" in msg
        assert "endpoint_url" in msg and "reachable" in msg
        assert _SECRET not in msg and "AKIAKEYID0000" not in msg


@pytest.mark.s3
def test_missing_credentials_are_a_store_error(s3_bucket: tuple[str, dict[str, Any]],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url, options = s3_bucket
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    options = {k: v for k, v in options.items() if k not in ("key", "secret")}
    with pytest.raises(StoreError, match=r"NoCredentialsError.*storage_options=\{'key'") as info:
        plane.create(url, storage_options=options)
    assert url in str(info.value)


def test_store_errors_blank_out_option_values() -> None:
    from plane.storage._fsspec import FsspecStore

    class FakeFs:
        def cat_file(self, path: str, **kw: Any) -> bytes:
            raise ConnectionError(f"token {_SECRET} rejected at http://example.test")

    store = FsspecStore("s3://bucket/root", {"token": _SECRET,
                                             "endpoint_url": "http://example.test"})
    store._fs = FakeFs()
    with pytest.raises(StoreError) as info:
        store.get("k")
    msg = str(info.value)
    assert _SECRET not in msg and "***" in msg and "http://example.test" in msg
    assert "s3://bucket/root/k" in msg
    assert open_store(store) is store


# ---- properties: any name is refused with a PlaneError or round-trips --------------------

_ODD = st.sampled_from(["\x00", "/", "..", ".", "\\", "_", " ", "é", "\ud800", "\n", "a",
                        "Z", "-", "\u202e", "💥"])
_NAMES = st.one_of(
    st.text(max_size=12),
    st.lists(_ODD, max_size=8).map("".join),
    st.text(alphabet="ab.", min_size=250, max_size=300),
    st.text(alphabet="aé", min_size=120, max_size=140),
)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_NAMES, b=_NAMES)
def test_any_tensor_name_is_refused_or_round_trips(a: str, b: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ds = plane.create(Path(tmp) / "ds")
        ds.create_tensor("base", dtype="int64")
        made: dict[str, int] = {}
        for i, name in enumerate(dict.fromkeys([a, b])):
            before = list(ds.tensors)
            try:
                ds.create_tensor(name, dtype="int64")
            except PlaneError as e:
                assert isinstance(e, ValueError)
                assert list(ds.tensors) == before
                continue
            made[name] = 10 + i
        ds.extend({"base": [0], **{n: [v] for n, v in made.items()}})
        ds.commit("names")
        for name in made:
            ds.create_index(name, kind="minmax")
        again = plane.open(Path(tmp) / "ds")
        assert list(again.tensors) == ["base", *made]
        for name, v in made.items():
            assert again[name].numpy().tolist() == [v]
            info = find_index(again.snapshot(), name, ("minmax",))
            assert info is not None and info.tensor == name


@pytest.fixture(scope="module")
def view_ds(tmp_path_factory: pytest.TempPathFactory) -> plane.Dataset:
    return _committed(tmp_path_factory.mktemp("views") / "ds")


@settings(max_examples=60, deadline=None)
@given(a=_NAMES, b=_NAMES)
def test_any_view_name_is_refused_or_round_trips(view_ds: plane.Dataset, a: str,
                                                 b: str) -> None:
    saved: dict[str, list[int]] = {}
    for rows, name in zip(([0, 2], [1]), dict.fromkeys([a, b])):
        view = View(view_ds.snapshot(), np.asarray(rows), None)
        keys = _keys(view_ds)
        try:
            view.save(name)
        except PlaneError as e:
            assert isinstance(e, ValueError)
            assert _keys(view_ds) == keys
            continue
        saved[name] = view.ids.tolist()
    for name, ids in saved.items():
        assert plane.load_view(view_ds, name).ids.tolist() == ids
