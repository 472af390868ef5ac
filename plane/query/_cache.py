"""Values derived from one dataset state (row ids, index lookups, snapshots), kept on the
Dataset while its state is unchanged and dropped as soon as it moves."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plane.dataset._dataset import Dataset

__all__ = ["state_cached", "forget"]

_ATTR = "_query_state"


def state_cached(ds: Dataset, name: Hashable, make: Callable[[], Any]) -> Any:
    """`make()` for `ds`'s current state, computed once per state (never cached while the
    working state has unflushed writes)."""
    if ds._unflushed:
        return make()
    held = ds.__dict__.get(_ATTR)
    if held is None or held[0] != ds._base_key:
        held = (ds._base_key, {})
        ds.__dict__[_ATTR] = held
    values: dict[Hashable, Any] = held[1]
    if name not in values:
        values[name] = make()
    return values[name]


def forget(ds: Dataset) -> None:
    """Drop what was derived from the current state (e.g. after a new index is registered)."""
    ds.__dict__.pop(_ATTR, None)
