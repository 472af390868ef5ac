"""Tensor: one named column, optionally restricted to some rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from plane.core._nulls import with_nulls
from plane.dataset._indexing import normalize_index
from plane.format._meta import TensorMeta

if TYPE_CHECKING:
    from plane.dataset._dataset import Dataset

__all__ = ["Tensor"]


class Tensor:
    """A tensor of a dataset (all rows, or the rows a view selected)."""

    def __init__(self, ds: Dataset, name: str, positions: np.ndarray | None = None,
                 scalar: bool = False) -> None:
        self._ds = ds
        self.name = name
        self._positions = positions
        self._scalar = scalar

    # ---- schema ---------------------------------------------------------------------------
    @property
    def meta(self) -> TensorMeta:
        return self._ds._ws.writer(self.name).meta

    @property
    def htype(self) -> str:
        return self.meta.htype

    @property
    def dtype(self) -> np.dtype[Any] | str | None:
        m = self.meta
        return np.dtype(m.dtype) if m.kind == "array" and m.dtype else m.dtype

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.meta.class_names

    @property
    def num_chunks(self) -> int:
        w = self._ds._ws.writer(self.name)
        return w.index.num_chunks + (1 if w.buffer is not None else 0)

    def materialize(self, batch_rows: int = 256) -> None:
        """Copy the objects a ``link[...]`` tensor points to into chunks: the tensor becomes
        a stored tensor of the linked htype (same rows, same name), its bytes kept as they
        are (JPEG stays JPEG). All or nothing: a missing or undecodable object raises, naming
        its row and URI, and the tensor is left as it was. Commit afterwards."""
        from plane.core._materialize import materialize

        ws = self._ds._ws
        ws.check_writable(f"materialize {self.name!r}")
        materialize(ws, self.name, batch_rows)

    def astype(self, dtype: Any) -> Tensor:
        """Change the tensor's dtype by rewriting its chunks (in place, on this branch; older
        commits keep the old ones): every value must survive the cast, as on a write (ints
        must fit, floats may round to a narrower float but not overflow), else SampleError
        names the row and nothing changes. Returns the tensor. Commit afterwards."""
        from plane._errors import SchemaError
        from plane.core._retype import retype

        if self._positions is not None:
            raise SchemaError(f"astype rewrites a whole tensor: call ds[{self.name!r}]"
                              ".astype(...), not on some of its rows")
        ws = self._ds._ws
        ws.check_writable(f"change the dtype of tensor {self.name!r}")
        retype(ws, self.name, dtype)
        return Tensor(self._ds, self.name)

    def positions(self) -> np.ndarray:
        if self._positions is None:
            return np.arange(len(self._ds), dtype=np.int64)
        return self._positions

    def __len__(self) -> int:
        return len(self._ds) if self._positions is None else int(self._positions.shape[0])

    def __getitem__(self, key: Any) -> Tensor:
        if self._scalar:
            raise IndexError(f"tensor {self.name!r} is already indexed to one sample; index the "
                             "numpy() result instead")
        pos, scalar = normalize_index(key, len(self))
        if self._positions is not None:
            pos = self._positions[pos]
        return Tensor(self._ds, self.name, pos, scalar)

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    # ---- reading --------------------------------------------------------------------------
    def _read(self, decode: bool, aslist: bool, links: bool = True) -> Any:
        """The values; null rows read as None (a list) or masked (`numpy.ma.MaskedArray`)."""
        ws = self._ds._ws
        pos = self.positions()
        out = ws.read(self.name, pos, decode, aslist, links=links)
        null = ws.null_mask(self.name, pos)
        if self._scalar:
            return None if null is not None else out[0]
        return with_nulls(out, null)

    def __setitem__(self, key: Any, value: Any) -> None:
        """Update samples in place: ``ds["labels"][3] = 1``, ``ds["labels"][idx] = values``.

        Writes one small patch object with the new values (not a copy of the chunk)."""
        if self._scalar:
            raise IndexError(f"tensor {self.name!r} is indexed to one sample; assign through "
                             "the parent: ds[name][i] = value")
        pos, scalar = normalize_index(key, len(self))
        if self._positions is not None:
            pos = self._positions[pos]
        self._ds._update(self.name, pos, [value] if scalar else _as_rows(value, pos.shape[0]))

    def numpy(self, aslist: bool = False) -> Any:
        """Samples as one ndarray (same-shaped numeric data) or a list (ragged, text, json).

        Images decode to HxWxC uint8; text gives str; json gives Python objects. A single-row
        tensor (``ds[i]["x"]``) gives the sample itself. Null rows read as None in a list;
        an array with null rows is a `numpy.ma.MaskedArray` masked on them.
        """
        return self._read(True, aslist)

    def bytes(self) -> Any:
        """Samples as stored bytes (e.g. the original JPEG) without decoding."""
        w = self._ds._ws.writer(self.name)
        if w.meta.kind == "array" and not w.meta.sample_compression:
            arr = self._read(True, True)
            if self._scalar:
                return None if arr is None else arr.tobytes()
            return [None if a is None else a.tobytes() for a in arr]
        return self._read(False, True)

    def text(self) -> Any:
        """Alias of numpy() for text tensors; the URIs of a ``link[...]`` tensor."""
        if self._ds._ws.writer(self.name).meta.link:
            return self._read(True, True, links=False)
        return self.numpy()

    def tolist(self) -> Any:
        out = self.numpy(aslist=True)
        if isinstance(out, np.ndarray):
            return out.tolist()
        return [o.tolist() if isinstance(o, np.ndarray) else o for o in out] \
            if isinstance(out, list) else out

    @property
    def shape(self) -> tuple[int | None, ...]:
        """(rows, *sample dims); a dimension that varies between samples is None."""
        w = self._ds._ws.writer(self.name)
        if w.meta.kind != "array":
            return () if self._scalar else (len(self),)
        shapes = self._ds._ws.shapes(self.name, self.positions())
        if shapes.shape[0] == 0:
            dims: tuple[int | None, ...] = tuple(w.meta.fixed_shape or ())
        else:
            same = (shapes == shapes[0]).all(axis=0)
            dims = tuple(int(d) if s else None for d, s in zip(shapes[0], same))
        return dims if self._scalar else (len(self), *dims)

    def __repr__(self) -> str:
        return f"Tensor({self.name!r}, htype={self.htype!r}, rows={len(self)})"


def _as_rows(value: Any, n: int) -> Any:
    """Values for n selected rows: a sequence of n items, or one scalar broadcast to all."""
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) == n:
        return value
    if value is None or isinstance(value, (int, float, str, bytes, np.generic)):
        return [value] * n
    from plane._errors import SampleError

    got = len(value) if hasattr(value, "__len__") else 1
    raise SampleError(f"{n} rows selected but {got} values given; give one value per row")
