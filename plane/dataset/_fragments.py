"""Rows that workers wrote as fragments, added to a dataset (a module function: the Dataset
facade stays thin)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from plane.core._fragment import Fragment

if TYPE_CHECKING:
    from plane.dataset._dataset import Dataset

__all__ = ["apply_fragments"]


def apply_fragments(ds: Dataset, fragments: Sequence[Fragment]) -> int:
    """Append to `ds` the rows that workers already wrote as fragments (see
    `plane.write_fragment`), in the given order; returns the number of rows added. All or
    nothing: a fragment of another schema raises SchemaError before any row is added.
    Commit afterwards."""
    ds._ws.check_writable("apply fragments")
    return ds._ws.apply_fragments(fragments)
