"""Values derived from one version (row ids, index lookups, prepared queries), kept in the
Snapshot's `cache`: a Dataset hands out the same Snapshot while its state is unchanged, so
they live exactly as long as that state."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from plane.core._snapshot import Snapshot

__all__ = ["state_cached", "forget"]

_KEY = "query"


def state_cached(snap: Snapshot, name: Hashable, make: Callable[[], Any]) -> Any:
    """`make()` for the version `snap` reads, computed once per Snapshot."""
    values: dict[Hashable, Any] = snap.cache.setdefault(_KEY, {})
    if name not in values:
        values[name] = make()
    return values[name]


def forget(snap: Snapshot) -> None:
    """Drop what the query derived from `snap` (e.g. after a new index is registered)."""
    snap.cache.pop(_KEY, None)
