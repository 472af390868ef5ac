"""Sample codecs: user values -> validated raw sample bytes (a Block), and back.

Validation happens here, before anything is written, so a bad sample aborts the whole
append/extend with a SampleError naming the tensor, the row and the fix.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from plane._errors import ChecksumError, MissingDependencyError, SampleError
from plane.format._meta import MAX_DIM, TensorMeta

__all__ = ["Block", "EncodedBytes", "encode_batch", "decode_sample", "empty_value",
           "check_column", "MAX_JSON_DEPTH"]

_MEDIA_PROBED = ("jpeg", "png")
#: json samples nest at most this deep (lists/dicts in lists/dicts): deeper ones would not
#: read back (Python's JSON reader recurses), so they are refused when written
MAX_JSON_DEPTH = 128


class EncodedBytes(Sequence[bytes]):
    """n encoded samples (image, video or audio files) as one buffer and n + 1 offsets: an
    Arrow binary column's own memory, so ingesting it copies no bytes per row. Reads like a
    list of bytes (an int index gives bytes, a slice another EncodedBytes)."""

    def __init__(self, data: memoryview, offsets: np.ndarray) -> None:
        self.data = data if data.format == "B" else data.cast("B")  # bytes compare as bytes
        self.offsets = np.asarray(offsets, np.int64)

    def __len__(self) -> int:
        return int(self.offsets.shape[0]) - 1

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            a, b, step = i.indices(len(self))
            if step != 1:
                return [self[j] for j in range(a, b, step)]
            b = max(a, b)
            o = self.offsets[a:b + 1]
            return EncodedBytes(self.data[int(o[0]):int(o[-1])], o - o[0])
        j = int(i) + len(self) if int(i) < 0 else int(i)
        if not 0 <= j < len(self):
            raise IndexError(i)
        return bytes(self.data[int(self.offsets[j]):int(self.offsets[j + 1])])


@dataclass(frozen=True)
class Block:
    """n encoded samples: concatenated raw bytes, offsets (n+1) and shapes (n, ndim)."""

    data: memoryview
    offsets: np.ndarray
    shapes: np.ndarray

    @property
    def n(self) -> int:
        return int(self.shapes.shape[0])

    @property
    def nbytes(self) -> int:
        return int(self.offsets[-1] - self.offsets[0])

    def slice(self, a: int, b: int) -> Block:
        o = self.offsets[a: b + 1]
        return Block(self.data[int(o[0]): int(o[-1])], o - o[0], self.shapes[a:b])

    @staticmethod
    def concat(blocks: Sequence[Block], ndim: int) -> Block:
        blocks = [b for b in blocks if b.n]
        if not blocks:
            return Block(memoryview(b""), np.zeros(1, np.int64), np.zeros((0, ndim), np.int64))
        if len(blocks) == 1:
            return blocks[0]
        data = b"".join(b.data for b in blocks)
        sizes = np.concatenate([np.diff(b.offsets) for b in blocks])
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return Block(memoryview(data), offsets,
                     np.concatenate([b.shapes.reshape(b.n, -1) for b in blocks]))


def _err(meta: TensorMeta, row: int, what: str, fix: str) -> SampleError:
    return SampleError(f"tensor {meta.name!r}: {what} at row {row}; {fix}")


def _learn_dtype(arr: np.ndarray) -> np.dtype[Any]:
    if arr.dtype.kind in "biuf":
        return arr.dtype
    raise TypeError(arr.dtype)


def _cast(meta: TensorMeta, arr: np.ndarray, first_row: int) -> tuple[np.ndarray, TensorMeta]:
    """Cast a batch (axis 0 = samples) to the tensor dtype, refusing lossy casts: a value
    that does not come back from the cast unchanged (3.5 or nan into an int, 300 into uint8,
    2**40 + 1 into float32) raises. A float narrowed to a smaller float is rounded to the
    nearest one (its precision, not its value, changes); one that overflows raises."""
    if arr.dtype.kind not in "biuf":
        raise _err(meta, first_row, f"expects numeric samples, got {arr.dtype} values",
                   "pass numbers or numpy arrays (text goes in htype='text' tensors)")
    if meta.dtype is None:
        return arr, meta.evolve(dtype=arr.dtype.str)
    target = np.dtype(meta.dtype)
    if arr.dtype == target:
        return arr, meta
    if _always_exact(arr.dtype, target) or not arr.size:
        return arr.astype(target), meta
    with np.errstate(invalid="ignore", over="ignore"):
        out = arr.astype(target)
        if target.kind == "b":  # 0 and 1 only
            lost = out.astype(arr.dtype) != arr
        elif arr.dtype.kind == "f" and target.kind == "f":
            lost = np.isinf(out) & ~np.isinf(arr)  # rounding is fine, overflow is not
        elif arr.dtype.kind == "f":  # to an int: integral, finite and in range
            info = np.iinfo(target)
            lost = ~((arr >= info.min) & (arr <= info.max) & (np.floor(arr) == arr)) | \
                (out.astype(arr.dtype) != arr)
        elif target.kind in "iu":  # int to a smaller int: in range
            info = np.iinfo(target)
            lost = (arr < info.min) | (arr > info.max)
        else:  # int to a float too narrow for every int: exact
            lost = out.astype(arr.dtype) != arr
    if lost.any():
        _lossy(meta, arr, out, lost, target, first_row)
    return out, meta


def _always_exact(src: np.dtype[Any], target: np.dtype[Any]) -> bool:
    """Whether every `src` value is exactly a `target` value (numpy's "safe" casts, except
    int64 -> float64 and the like: 2**53 + 1 is not a float64)."""
    if not np.can_cast(src, target, "safe"):
        return False
    if src.kind in "iu" and target.kind == "f":
        return src.itemsize * 8 - (src.kind == "i") <= np.finfo(target).nmant + 1
    return True


def _lossy(meta: TensorMeta, arr: np.ndarray, out: np.ndarray, lost: np.ndarray,
           target: np.dtype[Any], first_row: int) -> None:
    """Raise the SampleError for the first value that a cast to `target` would change."""
    at = np.argwhere(lost)[0]
    row = first_row + (int(at[0]) if arr.ndim else 0)
    v, got = arr[tuple(at)].item(), out[tuple(at)].item()
    shown = repr(v)
    if target.kind == "b":
        what = f"value {shown} is not a bool (0 or 1)"
        fix = "store booleans as 0/1 (x != 0), or create the tensor with an integer dtype"
    elif target.kind == "f" and math.isinf(got):
        what = f"value {shown} overflows {target.name} (it would be stored as {got})"
        fix = f"create the tensor with dtype='{arr.dtype.name}'" if arr.dtype.kind == "f" \
            else "create the tensor with dtype='float64' or an integer dtype"
    elif target.kind == "f":
        what = f"integer {shown} is not exactly a {target.name} (it would be stored as {int(got)})"
        fix = (f"create the tensor with dtype='float64' or an integer dtype, or round the "
               f"values to {target.name} yourself (np.asarray(x, np.{target.name}))")
    elif (isinstance(v, int) or math.isfinite(v)) and \
            not np.iinfo(target).min <= v <= np.iinfo(target).max:
        info = np.iinfo(target)
        what = f"value {shown} out of range for {target.name}"
        fix = f"use values in [{info.min}, {info.max}] or create the tensor with a wider dtype"
    else:
        what = (f"expects {target.name}, got {arr.dtype.name} value {shown} (not a whole "
                "number)")
        fix = (f"cast with np.rint(x).astype(np.{target.name}) or create the tensor with "
               f"dtype='{arr.dtype.name}'")
    raise _err(meta, row, what, fix)


def _check_width(meta: TensorMeta, width: int, row: int) -> TensorMeta:
    """An embedding vector's width must be the tensor's: declared (shape=(16,)) or fixed by
    the first vector written; the meta learns it from that first vector."""
    have = meta.vector_width
    if have is None:
        return meta if meta.shape is not None else meta.evolve(width=width)
    if width != have:
        how = f"declared shape ({have},)" if meta.shape is not None else "its first vector"
        raise _err(meta, row, f"vector has width {width}, but the tensor's vectors have width "
                   f"{have} (fixed by {how})",
                   f"give {have}-d vectors, or store other widths in a tensor created with "
                   "shape=(None,) (vectors of any width)")
    return meta


def _check_shape(meta: TensorMeta, shape: tuple[int, ...], row: int,
                 empty: bool = False) -> TensorMeta:
    if any(s > MAX_DIM for s in shape):
        raise _err(meta, row, f"shape {shape} has a dimension over {MAX_DIM} (the most a chunk "
                   "records)", "split the sample or reshape it to smaller dimensions")
    if meta.ndim is None:
        meta = meta.evolve(ndim=len(shape))
    if len(shape) != meta.ndim:
        hint = " (add a channel axis: x[..., None])" if meta.htype == "image" and \
            len(shape) == 2 else ""
        raise _err(meta, row, f"samples have {meta.ndim} dims, got shape {shape}",
                   f"reshape the sample to {meta.ndim} dims{hint}")
    if meta.htype == "embedding" and shape and (shape[0] or not empty):
        meta = _check_width(meta, shape[0], row)
    for lim, word in ((meta.shape, "shape"), (meta.max_shape, "max_shape")):
        if lim is None:
            continue
        for d, (s, m) in enumerate(zip(shape, lim)):
            if m is not None and ((word == "shape" and s != m) or (word == "max_shape" and s > m)):
                raise _err(meta, row, f"shape {shape} does not fit {word} {lim} (dim {d})",
                           f"resize the sample or create the tensor with a different {word}")
    return meta


def _as_batch(values: Any) -> np.ndarray | None:
    """Try to view `values` as one numeric array (axis 0 = samples)."""
    if isinstance(values, np.ndarray):
        return values if values.dtype.kind in "biuf" else None
    if not isinstance(values, (list, tuple)) or not values:
        return None
    if any(v is None or isinstance(v, (str, bytes, bytearray, memoryview)) for v in values):
        return None
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError):
        return None
    return arr if arr.dtype.kind in "biuf" else None


def _encode_arrays(meta: TensorMeta, values: Sequence[Any], row0: int
                   ) -> tuple[Block, TensorMeta]:
    if meta.htype == "class_label":
        values, meta = _labels_to_ids(meta, values, row0)
    batch = _as_batch(values)
    if batch is not None and batch.ndim >= 1:
        if meta.ndim is not None and batch.ndim - 1 != meta.ndim:
            batch = None  # fall back to per-sample path for the precise error
        else:
            try:
                arr, meta = _cast(meta, batch, row0)
                _check_ids(meta, arr, row0)
            except SampleError:
                if isinstance(values, np.ndarray):
                    raise
                arr = None  # a list: redo sample by sample to name the exact row
            if arr is not None:
                return _uniform_block(arr, _check_shape(meta, tuple(arr.shape[1:]), row0))
    return _ragged_block(meta, values, row0)


def _uniform_block(arr: np.ndarray, meta: TensorMeta) -> tuple[Block, TensorMeta]:
    arr = np.ascontiguousarray(arr)
    n = arr.shape[0]
    size = arr.itemsize * int(np.prod(arr.shape[1:], dtype=np.int64))
    shapes = np.broadcast_to(np.asarray(arr.shape[1:], np.int64), (n, arr.ndim - 1))
    return Block(memoryview(arr.reshape(-1).data).cast("B"),
                 np.arange(n + 1, dtype=np.int64) * size, shapes), meta


def _ragged_block(meta: TensorMeta, values: Sequence[Any], row0: int
                  ) -> tuple[Block, TensorMeta]:
    parts: list[np.ndarray] = []
    for i, v in enumerate(values):
        row = row0 + i
        if v is None:
            nd = meta.ndim if meta.ndim is not None else 1
            a = np.zeros(meta.fixed_shape or (0,) * nd, meta.np_dtype)
        else:
            if isinstance(v, (str, bytes, bytearray, memoryview)):
                raise _err(meta, row, f"expects a numeric array, got {type(v).__name__}",
                           "use htype='text'/'binary' for strings and bytes, or give "
                           "sample_compression for encoded images")
            try:
                a = np.asarray(v)
            except (ValueError, TypeError):
                raise _err(meta, row, "sample is ragged or not numeric",
                           "give one numpy array per sample") from None
        a, meta = _cast(meta, a[None], row)
        _check_ids(meta, a, row)
        a = a[0]
        meta = _check_shape(meta, tuple(a.shape), row, empty=v is None)
        parts.append(np.ascontiguousarray(a))
    nd = meta.ndim or 0
    sizes = np.array([p.nbytes for p in parts], np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    shapes = np.array([p.shape for p in parts], np.int64).reshape(len(parts), nd)
    return Block(memoryview(b"".join(p.tobytes() for p in parts)), offsets, shapes), meta


def _check_ids(meta: TensorMeta, arr: np.ndarray, first_row: int) -> None:
    """SampleError unless every class id in `arr` (axis 0 = samples) names a class: a
    class_label tensor with class_names takes ids in [0, len(class_names))."""
    n = len(meta.class_names)
    if not n or meta.htype != "class_label" or not arr.size:
        return
    bad = (arr < 0) | (arr >= n)
    if not bad.any():
        return
    at = np.argwhere(bad)[0]
    names = ", ".join(repr(c) for c in meta.class_names[:8]) + (", ..." if n > 8 else "")
    raise _err(meta, first_row + (int(at[0]) if arr.ndim else 0),
               f"class id {arr[tuple(at)].item()} is out of range [0, {n}) (class_names: "
               f"{names})", "give an id below the number of class names, or the class name "
               "itself (a new name is added to class_names)")


def _labels_to_ids(meta: TensorMeta, values: Any, row0: int) -> tuple[Any, TensorMeta]:
    """Map class names to ids; unknown names are added to class_names."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        return values, meta
    names = list(meta.class_names)
    lookup = {n: i for i, n in enumerate(names)}

    def conv(v: Any) -> Any:
        if isinstance(v, str):
            if v not in lookup:
                lookup[v] = len(names)
                names.append(v)
            return lookup[v]
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    if isinstance(values, np.ndarray):
        values = values.tolist()
    out = [conv(v) for v in values]
    return out, (meta.evolve(class_names=tuple(names)) if len(names) != len(meta.class_names)
                 else meta)


def _read_media_input(meta: TensorMeta, v: Any, row: int) -> bytes | np.ndarray:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    if isinstance(v, os.PathLike):
        try:
            with open(v, "rb") as f:
                return f.read()
        except OSError as e:
            raise _err(meta, row, f"cannot read {os.fspath(v)!r}: {e.strerror}",
                       "check the path") from None
    if isinstance(v, np.ndarray):
        return v
    raise _err(meta, row, f"expects {meta.sample_compression} bytes, a path or an array, "
               f"got {type(v).__name__}", "pass the encoded file's bytes")


def _encode_media(meta: TensorMeta, values: Sequence[Any], row0: int
                  ) -> tuple[Block, TensorMeta]:
    import plane.format._media as _media

    comp = meta.sample_compression
    assert comp is not None
    if isinstance(values, EncodedBytes):
        if comp in _MEDIA_PROBED:
            return _encode_encoded(meta, values, row0)
        values = list(values)
    nd = meta.ndim or 3
    datas: list[bytes] = []
    shapes: list[tuple[int, ...]] = []
    for i, v in enumerate(values):
        row = row0 + i
        if v is None:
            datas.append(b"")
            shapes.append((0,) * nd)
            continue
        x = _read_media_input(meta, v, row)
        if comp in _MEDIA_PROBED:
            if isinstance(x, np.ndarray):
                if x.dtype != np.uint8:
                    raise _err(meta, row, f"expects uint8 pixels, got {x.dtype.name}",
                               "convert with .astype(np.uint8)")
                if x.ndim == 2:
                    x = x[..., None]
                meta = _check_shape(meta, tuple(x.shape), row)
                try:
                    x = _media.encode(x, comp)
                except SampleError as e:
                    raise _err(meta, row, str(e), "give HxW, HxWx1 or HxWx3 uint8") from None
            shape = _image_shape(meta, x, row)
            meta = _check_shape(meta, shape, row)
            datas.append(x)
            shapes.append(shape)
        else:
            if isinstance(x, np.ndarray):
                raise _err(meta, row, f"cannot encode arrays to {comp}",
                           f"give the {comp} file bytes, or create the tensor without "
                           "sample_compression to store raw arrays")
            datas.append(x)
            shapes.append(_probe_av(meta, x, row, nd))
    if meta.dtype is None:
        meta = meta.evolve(dtype=np.dtype("uint8").str)
    sizes = np.array([len(d) for d in datas], np.int64)
    return (Block(memoryview(b"".join(datas)),
                  np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                  np.array(shapes, np.int64).reshape(len(datas), nd)), meta)


def _image_shape(meta: TensorMeta, x: bytes | memoryview, row: int) -> tuple[int, ...]:
    """The decoded shape of one image file, from its headers; SampleError (naming the row)
    when the bytes are not an image of the tensor's compression or are broken."""
    import plane.format._media as _media

    comp = meta.sample_compression
    assert comp is not None
    kind = _media.sniff(x)
    if kind != comp:
        raise _err(meta, row, f"stores {comp} samples, got "
                   f"{kind + ' bytes' if kind else 'bytes that are not an image'}",
                   f"give {comp} bytes or create the tensor with "
                   f"sample_compression={kind!r}" if kind else
                   "check the file is a valid image")
    try:
        return tuple(int(s) for s in _media.probe(x, comp))
    except SampleError as e:
        raise _err(meta, row, str(e), "re-export the image or skip this row") from None


def _encode_encoded(meta: TensorMeta, values: EncodedBytes, row0: int
                    ) -> tuple[Block, TensorMeta]:
    """JPEG / PNG files held in one buffer: each is checked (magic bytes, headers, shape)
    and the buffer becomes the block as it is."""
    data, offs = values.data, values.offsets.tolist()
    shapes: list[tuple[int, ...]] = []
    seen: set[tuple[int, ...]] = set()
    for i in range(len(offs) - 1):
        shape = _image_shape(meta, data[offs[i]:offs[i + 1]], row0 + i)
        if shape not in seen:
            meta = _check_shape(meta, shape, row0 + i)
            seen.add(shape)
        shapes.append(shape)
    if meta.dtype is None:
        meta = meta.evolve(dtype=np.dtype("uint8").str)
    nd = meta.ndim or 3
    return Block(data, values.offsets - values.offsets[0],
                 np.array(shapes, np.int64).reshape(len(shapes), nd)), meta


def _probe_av(meta: TensorMeta, data: bytes, row: int, nd: int) -> tuple[int, ...]:
    """Shape of a video/audio sample from its container (with PyAV); zeros without it (the
    bytes are stored either way and decode once PyAV is installed)."""
    from plane.format import _av

    if not _av.available():
        return (0,) * nd
    try:
        shape = _av.probe_av(data, meta.sample_compression or "")
    except SampleError as e:
        raise _err(meta, row, f"{meta.sample_compression} bytes are broken ({e})",
                   "re-export the file or skip this row") from None
    if len(shape) != nd:
        raise _err(meta, row, f"decodes to {len(shape)} dimensions, the tensor has {nd}",
                   f"create the tensor with htype={'video' if len(shape) == 4 else 'audio'!r}")
    return shape


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _too_deep(meta: TensorMeta, row: int) -> SampleError:
    return _err(meta, row, f"value nests lists/dicts more than {MAX_JSON_DEPTH} deep",
                "flatten it, or store it as text (json.dumps) or binary")


_BRACKETS = np.zeros(256, np.int8)
_BRACKETS[[ord("["), ord("{")]] = 1
_BRACKETS[[ord("]"), ord("}")]] = -1


def _too_deep_json(data: bytes) -> bool:
    """True if the JSON text `data` nests lists/dicts deeper than MAX_JSON_DEPTH: its
    brackets outside strings, counted at C/numpy speed."""
    if data.count(b"[") + data.count(b"{") <= MAX_JSON_DEPTH:  # most values stop here
        return False
    if b"\\" in data:  # blank the escapes (\\\\ first, left to right, as JSON reads them),
        # so that every quote left opens or closes a string
        data = data.replace(b"\\\\", b"__").replace(b'\\"', b"__")
    outside = b"".join(data.split(b'"')[0::2])
    if outside.count(b"[") + outside.count(b"{") <= MAX_JSON_DEPTH:
        return False
    depth = np.cumsum(_BRACKETS[np.frombuffer(outside, np.uint8)], dtype=np.int32)
    return bool(depth.max() > MAX_JSON_DEPTH)


def _encode_opaque(meta: TensorMeta, values: Sequence[Any], row0: int) -> Block:
    datas: list[bytes] = []
    for i, v in enumerate(values):
        row = row0 + i
        if meta.kind == "text":
            if v is None:
                v = ""
            if isinstance(v, os.PathLike) and meta.link:
                v = os.path.abspath(os.fspath(v))
            if isinstance(v, (bytes, bytearray)):
                try:
                    v = bytes(v).decode("utf-8")
                except UnicodeDecodeError:
                    raise _err(meta, row, "bytes are not valid UTF-8",
                               "decode the text first or use htype='binary'") from None
            if not isinstance(v, str):
                raise _err(meta, row, f"expects str, got {type(v).__name__}",
                           "convert with str(value) or use htype='json'")
            datas.append(v.encode("utf-8", "surrogatepass"))
        elif meta.kind == "json":
            try:
                data = json.dumps(v, default=_json_default, allow_nan=False,
                                  ensure_ascii=False).encode()
            except RecursionError:
                raise _too_deep(meta, row) from None
            except (TypeError, ValueError) as e:
                raise _err(meta, row, f"value is not JSON: {e}",
                           "give dicts/lists/str/numbers/bool/None (no NaN)") from None
            if _too_deep_json(data):  # it would not read back: the JSON reader recurses
                raise _too_deep(meta, row)
            datas.append(data)
        else:
            if v is None:
                v = b""
            if not isinstance(v, (bytes, bytearray, memoryview)):
                raise _err(meta, row, f"expects bytes, got {type(v).__name__}",
                           "encode the value to bytes first")
            datas.append(bytes(v))
    sizes = np.array([len(d) for d in datas], np.int64)
    return Block(memoryview(b"".join(datas)),
                 np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), sizes[:, None])


def check_column(name: str, values: Any) -> None:
    """SampleError unless `values` is a column: a sized sequence of samples (a list, tuple or
    array with a row axis) -- not one sample, a generator, a str or a dict."""
    what = None
    if isinstance(values, (str, bytes, bytearray, memoryview)):
        what = f"one {type(values).__name__} (it would be split into characters/bytes)"
    elif isinstance(values, Mapping):
        what = "a dict"
    elif isinstance(values, np.ndarray) and values.ndim == 0:
        what = "a 0-d array (one sample)"
    elif isinstance(values, np.generic) or not hasattr(values, "__len__") or \
            not hasattr(values, "__getitem__"):  # a generator, a number, a set ...
        what = f"a value of type {type(values).__name__}"
    if what is not None:
        raise SampleError(f"column {name!r}: extend takes a list of samples per tensor, got "
                          f"{what}; pass a list (list(values) for a generator, [value] for "
                          "one row) or use ds.append({tensor: value}) for one row")


def encode_batch(meta: TensorMeta, values: Any, first_row: int) -> tuple[Block, TensorMeta]:
    """Validate and encode samples; returns the block and the (possibly learned) meta."""
    if meta.kind == "array":
        if meta.sample_compression:
            if isinstance(values, np.ndarray) and values.dtype != object:
                values = list(values)
            return _encode_media(meta, values, first_row)
        return _encode_arrays(meta, values, first_row)
    if isinstance(values, np.ndarray):
        values = values.tolist()
    return _encode_opaque(meta, values, first_row), meta


def empty_value(meta: TensorMeta) -> Any:
    """What an empty (fill) sample reads as."""
    if meta.kind == "text":
        return ""
    if meta.kind == "json":
        return None
    if meta.kind == "bytes":
        return b""
    nd = meta.ndim if meta.ndim is not None else 1
    return np.zeros(meta.fixed_shape or (0,) * nd, meta.np_dtype)


def decode_sample(meta: TensorMeta, raw: memoryview | bytes, shape: Sequence[int] | np.ndarray,
                  decode: bool = True) -> Any:
    """Turn one sample's raw bytes back into its value (decode=False keeps media bytes)."""
    kind = meta.kind
    if kind == "text":
        return bytes(raw).decode("utf-8", "surrogatepass")
    if kind == "json":
        return json.loads(bytes(raw)) if len(raw) else None
    if kind == "bytes":
        return bytes(raw)
    if meta.sample_compression:
        if not decode:
            return bytes(raw)
        if not len(raw):
            return np.zeros(tuple(shape), np.uint8)
        if meta.sample_compression in _MEDIA_PROBED:
            import plane.format._media as _media

            return _media.decode(bytes(raw), meta.sample_compression)
        from plane.format import _av

        if meta.sample_compression in _av.VIDEO:
            return _av.decode_video(raw)
        if meta.sample_compression in _av.AUDIO:
            return _av.decode_audio(raw)
        raise MissingDependencyError(
            f"tensor {meta.name!r}: decoding {meta.sample_compression} samples needs the media "
            "extra (pip install 'tensorplane[media]'); read the raw bytes with .bytes()")
    shp = tuple(int(s) for s in shape)
    count = int(np.prod(shp, dtype=np.int64))
    if count * meta.np_dtype.itemsize != memoryview(raw).nbytes:  # a damaged (v2) footer shape
        raise ChecksumError(f"tensor {meta.name!r}: a sample of {memoryview(raw).nbytes} bytes "
                            f"does not fit its recorded shape {shp}: its chunk is corrupt")
    return np.frombuffer(raw, meta.np_dtype, count).reshape(shp)
