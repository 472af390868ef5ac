"""DatasetView: some rows of a dataset, readable like the dataset."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from plane._errors import TensorNotFoundError
from plane.dataset._indexing import normalize_index
from plane.dataset._tensor import Tensor

if TYPE_CHECKING:
    from plane.dataset._dataset import Dataset

__all__ = ["DatasetView"]


class DatasetView:
    """Rows `positions` of `ds`; ``view["t"]`` is a Tensor over those rows."""

    def __init__(self, ds: Dataset, positions: np.ndarray, scalar: bool = False) -> None:
        self._ds = ds
        self._positions = positions
        self._scalar = scalar

    @property
    def positions(self) -> np.ndarray:
        return self._positions

    @property
    def tensors(self) -> dict[str, Tensor]:
        return {n: self[n] for n in self._ds.tensors}

    def __len__(self) -> int:
        return 1 if self._scalar else int(self._positions.shape[0])

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            if key not in self._ds.tensors:
                raise TensorNotFoundError(self._ds._ws.no_tensor(key))
            return Tensor(self._ds, key, self._positions, self._scalar)
        if self._scalar:
            raise IndexError("this view is one row; index a tensor of it instead")
        pos, scalar = normalize_index(key, len(self))
        return DatasetView(self._ds, self._positions[pos], scalar)

    def __iter__(self) -> Iterator[DatasetView]:
        for p in self._positions:
            yield DatasetView(self._ds, np.array([p]), True)

    def arrays(self, tensors: list[str] | None = None, aslist: bool = False) -> dict[str, Any]:
        """Every (or the named) tensor's values for these rows, as a dict (as a query
        result's ``view.arrays()``)."""
        names = tensors or list(self._ds.tensors)
        return {n: self[n].numpy(aslist=aslist) for n in names}

    def numpy(self, tensors: list[str] | None = None, aslist: bool = False) -> dict[str, Any]:
        """The same dict as `arrays()` (a row slice is small; ``ds.numpy()`` and a query
        result's ``view.numpy()`` are loaders)."""
        return self.arrays(tensors, aslist)

    def to_arrow(self, tensors: list[str] | None = None, **options: Any) -> Any:
        """These rows as a `pyarrow.Table` (as `Dataset.to_arrow`)."""
        from plane.export._arrow import to_arrow

        return to_arrow(self._ds.snapshot(), tensors, self._positions, **options)

    def to_pandas(self, tensors: list[str] | None = None, **options: Any) -> Any:
        """These rows as a pandas DataFrame (as `Dataset.to_pandas`)."""
        from plane.export._arrow import to_pandas

        return to_pandas(self._ds.snapshot(), tensors, self._positions, **options)

    def __repr__(self) -> str:
        return f"DatasetView({self._ds.url!r}, rows={len(self)})"
