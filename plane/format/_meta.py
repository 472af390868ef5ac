"""TensorMeta: a tensor's schema, frozen, validated where it is built."""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from plane._errors import SchemaError
from plane.format._htypes import CHUNK_COMPRESSIONS, HTYPES, get_htype

__all__ = ["TensorMeta", "DEFAULT_CHUNK_BYTES", "MAX_DIM", "MAX_NAME_BYTES",
           "check_tensor_name"]

DEFAULT_CHUNK_BYTES = 4 << 20
MAX_CHUNK_BYTES = 1 << 31
#: chunk footers store each dimension as a u32 (FORMAT.md)
MAX_DIM = (1 << 32) - 1
#: a tensor name is one path component of some store keys (index refs): at most this many
#: UTF-8 bytes, the usual file name limit
MAX_NAME_BYTES = 255
_AUTO = "auto"


def check_tensor_name(name: Any) -> str:
    """`name` if it can name a tensor, else SchemaError saying why and what to use."""
    fix = ("use a non-empty name of printable characters, without '/' or '\\', not starting "
           f"with '_', not '.' or '..', at most {MAX_NAME_BYTES} UTF-8 bytes")
    if not isinstance(name, str):
        raise SchemaError(f"invalid tensor name {name!r}: a name is a str, got "
                          f"{type(name).__name__}; {fix}")
    why = ""
    if not name:
        why = "it is empty"
    elif name.startswith("_"):
        why = "names starting with '_' are reserved"
    elif "/" in name or "\\" in name:
        why = "it contains a path separator"
    elif name in (".", ".."):
        why = "'.' and '..' are path components"
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        why = "it contains a control character (NUL, newline, ...)"
    else:
        try:
            size = len(name.encode("utf-8"))
        except UnicodeEncodeError:
            why = "it is not valid Unicode (a lone surrogate)"
        else:
            if size > MAX_NAME_BYTES:
                why = f"it is {size} UTF-8 bytes long"
    if why:
        shown = repr(name) if len(name) <= 80 else repr(name[:77]) + "..."
        raise SchemaError(f"invalid tensor name {shown}: {why}; {fix}")
    return name


def _parse_shape(name: str, what: str, shape: Any) -> tuple[int | None, ...] | None:
    if shape is None:
        return None
    bad = SchemaError(f"tensor {name!r}: {what} must be a tuple of ints/None such as "
                      f"(64, None, 3), got {shape!r}")
    if isinstance(shape, (str, bytes, bytearray)):
        raise bad
    try:
        out = tuple(None if s is None else operator.index(s) for s in shape)
    except TypeError:
        raise bad from None
    if any(s is not None and s < 0 for s in out):
        raise SchemaError(f"tensor {name!r}: {what} {shape!r} has a negative dimension")
    if any(s is not None and s > MAX_DIM for s in out):
        raise SchemaError(f"tensor {name!r}: {what} {shape!r} has a dimension over {MAX_DIM} "
                          "(the most a chunk records); use smaller dimensions")
    return out


def _parse_class_names(name: str, class_names: Any) -> tuple[str, ...]:
    if class_names is None:
        return ()
    if isinstance(class_names, (str, bytes, bytearray)) or not hasattr(class_names, "__iter__"):
        raise SchemaError(f"tensor {name!r}: class_names must be a list of str such as "
                          f"['cat', 'dog'], got {class_names!r}")
    return tuple(str(c) for c in class_names)


def _parse_chunk_bytes(name: str, chunk_bytes: Any) -> int:
    if chunk_bytes is None:
        return DEFAULT_CHUNK_BYTES
    try:
        cb = operator.index(chunk_bytes)
    except TypeError:
        raise SchemaError(f"tensor {name!r}: chunk_bytes must be an int (bytes per chunk), got "
                          f"{chunk_bytes!r}") from None
    if cb < 1024:
        raise SchemaError(f"tensor {name!r}: chunk_bytes={cb} is too small (min 1024)")
    if cb > MAX_CHUNK_BYTES:
        raise SchemaError(f"tensor {name!r}: chunk_bytes={cb} is too large (max "
                          f"{MAX_CHUNK_BYTES}, 2 GiB)")
    return cb


@dataclass(frozen=True)
class TensorMeta:
    name: str
    htype: str = "generic"
    dtype: str | None = None
    shape: tuple[int | None, ...] | None = None
    max_shape: tuple[int | None, ...] | None = None
    ndim: int | None = None
    sample_compression: str | None = None
    chunk_compression: str | None = None
    class_names: tuple[str, ...] = ()
    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    #: an embedding tensor's vector width, fixed by the first vector written when `shape` is
    #: not declared (``shape=(None,)`` declares varying widths); stored only once set
    width: int | None = None

    @classmethod
    def build(
        cls,
        name: str,
        htype: str = "generic",
        dtype: Any = None,
        shape: Any = None,
        max_shape: Any = None,
        sample_compression: str | None = None,
        chunk_compression: str | None = _AUTO,
        class_names: Any = (),
        chunk_bytes: int | None = None,
    ) -> TensorMeta:
        """Validate user arguments and fill htype defaults."""
        check_tensor_name(name)
        if not isinstance(htype, str):
            raise SchemaError(f"tensor {name!r}: htype must be a str such as 'image', got "
                              f"{htype!r}; choose one of {', '.join(sorted(HTYPES))}")
        h = get_htype(htype)
        if sample_compression is not None and not isinstance(sample_compression, str):
            raise SchemaError(f"tensor {name!r}: sample_compression must be a str such as "
                              f"'jpeg' or None, got {sample_compression!r}")
        if sample_compression is not None:
            sample_compression = sample_compression.lower().replace("jpg", "jpeg")
        if sample_compression not in h.sample_compressions:
            ok = ", ".join(repr(c) for c in h.sample_compressions)
            raise SchemaError(f"tensor {name!r}: htype {htype!r} takes sample_compression in "
                              f"({ok}), got {sample_compression!r}")
        if chunk_compression == _AUTO:
            chunk_compression = None if sample_compression else h.chunk_compression
        if chunk_compression not in CHUNK_COMPRESSIONS:
            raise SchemaError(f"tensor {name!r}: chunk_compression must be 'zstd' or None, "
                              f"got {chunk_compression!r}")
        dt: str | None
        if h.kind != "array":
            if dtype is not None and str(dtype) not in (h.dtype, "str", "object"):
                raise SchemaError(f"tensor {name!r}: htype {htype!r} has no dtype choice "
                                  f"(got dtype={dtype!r}); drop the dtype argument")
            dt = h.dtype
        else:
            try:
                dt = np.dtype(dtype).str if dtype is not None else (
                    np.dtype(h.dtype).str if h.dtype else None)
            except (TypeError, ValueError):
                raise SchemaError(f"tensor {name!r}: {dtype!r} is not a numpy dtype; use e.g. "
                                  "dtype='float32'") from None
            if dt is not None and np.dtype(dt).kind not in "biuf":
                raise SchemaError(f"tensor {name!r}: dtype {dtype!r} is not numeric; use "
                                  "htype='text', 'json' or 'binary' for other data")
        shp = _parse_shape(name, "shape", shape)
        mx = _parse_shape(name, "max_shape", max_shape)
        ndim = h.ndim
        for s in (shp, mx):
            if s is not None:
                if ndim is not None and len(s) != ndim and h.name != "generic":
                    raise SchemaError(f"tensor {name!r}: htype {htype!r} samples have {ndim} "
                                      f"dims, got {len(s)}-dim shape {s}")
                ndim = len(s)
        if shp is not None and mx is not None and len(shp) != len(mx):
            raise SchemaError(f"tensor {name!r}: shape {shp} and max_shape {mx} differ in ndim")
        if h.kind != "array":
            ndim = 1
        names = _parse_class_names(name, class_names)
        if names and htype != "class_label":
            raise SchemaError(f"tensor {name!r}: class_names only apply to htype='class_label'")
        if len(set(names)) != len(names):
            raise SchemaError(f"tensor {name!r}: class_names has duplicates")
        cb = _parse_chunk_bytes(name, chunk_bytes)
        return cls(name, htype, dt, shp, mx, ndim, sample_compression, chunk_compression,
                   names, cb)

    @property
    def kind(self) -> str:
        return HTYPES[self.htype].kind

    @property
    def link(self) -> str | None:
        """The linked htype of a ``link[...]`` tensor (its samples are URIs), else None."""
        return self.htype[5:-1] if self.htype.startswith("link[") else None

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return np.dtype(self.dtype) if self.kind == "array" and self.dtype else np.dtype("u1")

    @property
    def vector_width(self) -> int | None:
        """The width every vector of an embedding tensor has (declared or learned), else
        None (not an embedding, widths may vary, or nothing written yet)."""
        if self.htype != "embedding":
            return None
        if self.shape is not None:
            return self.shape[0] if self.shape else None
        return self.width

    @property
    def fixed_shape(self) -> tuple[int, ...] | None:
        """The exact sample shape when every dimension is fixed, else None."""
        if self.shape is not None and all(s is not None for s in self.shape):
            return tuple(int(s) for s in self.shape)  # type: ignore[arg-type]
        return None

    def evolve(self, **changes: Any) -> TensorMeta:
        return replace(self, **changes)

    def combine(self, other: TensorMeta, conflict: Callable[[str, Any, Any], Exception],
                same: Sequence[str] = (), one_way: bool = False) -> TensorMeta:
        """This meta after learning what `other` knows about the same tensor: each field in
        `same` must be equal; dtype, ndim and width are taken from `other` where unset here
        and must agree where both are set; class names grow to the longer list when one
        extends the other (with `one_way`, only `other`'s may extend these).
        `conflict(field, ours, theirs)` builds the error raised when they disagree."""
        for f in same:
            if getattr(self, f) != getattr(other, f):
                raise conflict(f, getattr(self, f), getattr(other, f))
        out = self
        for f in ("dtype", "ndim", "width"):
            a, b = getattr(self, f), getattr(other, f)
            if a is None:
                out = out.evolve(**{f: b})
            elif b is not None and a != b:
                raise conflict(f, a, b)
        an, bn = self.class_names, other.class_names
        if bn[: len(an)] == an:
            names = bn
        elif not one_way and an[: len(bn)] == bn:
            names = an
        else:
            raise conflict("class_names", an, bn)
        return out.evolve(class_names=names) if names != out.class_names else out

    def to_dict(self) -> dict[str, Any]:
        cached: dict[str, Any] | None = self.__dict__.get("_dict")
        if cached is None:  # frozen: the encoding never changes (every commit writes it)
            cached = asdict(self)
            for k in ("shape", "max_shape", "class_names"):
                if cached[k] is not None:
                    cached[k] = list(cached[k])
            if cached["width"] is None:  # metas without it read as before (and by older
                del cached["width"]          # readers)
            object.__setattr__(self, "_dict", cached)
        return {k: list(v) if isinstance(v, list) else v for k, v in cached.items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TensorMeta:
        d = dict(d)
        for k in ("shape", "max_shape"):
            if d.get(k) is not None:
                d[k] = tuple(d[k])
        d["class_names"] = tuple(d.get("class_names") or ())
        return cls(**d)
