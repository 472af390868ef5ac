"""TensorMeta: a tensor's schema, frozen, validated where it is built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from plane._errors import SchemaError
from plane.format._htypes import CHUNK_COMPRESSIONS, HTYPES, get_htype

__all__ = ["TensorMeta", "DEFAULT_CHUNK_BYTES"]

DEFAULT_CHUNK_BYTES = 4 << 20
_AUTO = "auto"


def _parse_shape(name: str, what: str, shape: Any) -> tuple[int | None, ...] | None:
    if shape is None:
        return None
    try:
        out = tuple(None if s is None else int(s) for s in shape)
    except TypeError:
        raise SchemaError(f"tensor {name!r}: {what} must be a tuple of ints/None, "
                          f"got {shape!r}") from None
    if any(s is not None and s < 0 for s in out):
        raise SchemaError(f"tensor {name!r}: {what} {shape!r} has a negative dimension")
    return out


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
        if not isinstance(name, str) or not name or name.startswith("_") or "/" in name:
            raise SchemaError(f"invalid tensor name {name!r}: use a non-empty name without '/' "
                              "that does not start with '_'")
        h = get_htype(htype)
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
            except TypeError:
                raise SchemaError(f"tensor {name!r}: {dtype!r} is not a numpy dtype") from None
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
        names = tuple(str(c) for c in (class_names or ()))
        if names and htype != "class_label":
            raise SchemaError(f"tensor {name!r}: class_names only apply to htype='class_label'")
        if len(set(names)) != len(names):
            raise SchemaError(f"tensor {name!r}: class_names has duplicates")
        cb = int(chunk_bytes) if chunk_bytes is not None else DEFAULT_CHUNK_BYTES
        if cb < 1024:
            raise SchemaError(f"tensor {name!r}: chunk_bytes={cb} is too small (min 1024)")
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
    def fixed_shape(self) -> tuple[int, ...] | None:
        """The exact sample shape when every dimension is fixed, else None."""
        if self.shape is not None and all(s is not None for s in self.shape):
            return tuple(int(s) for s in self.shape)  # type: ignore[arg-type]
        return None

    def evolve(self, **changes: Any) -> TensorMeta:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        cached: dict[str, Any] | None = self.__dict__.get("_dict")
        if cached is None:  # frozen: the encoding never changes (every commit writes it)
            cached = asdict(self)
            for k in ("shape", "max_shape", "class_names"):
                if cached[k] is not None:
                    cached[k] = list(cached[k])
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
