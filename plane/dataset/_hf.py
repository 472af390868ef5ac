"""`plane.from_hf`: a HuggingFace dataset into a new tensorplane dataset (the Arrow ingest)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from plane.core._layout import DATASET_KEY, REFS
from plane.dataset._dataset import Dataset
from plane.dataset._open import create, open_dataset
from plane.storage import RecordingStore, Store, open_store

__all__ = ["from_hf"]


def from_hf(hf_dataset: Any, url: str | os.PathLike[str] | Store, *,
            commit: str | None = "from HuggingFace",
            storage_options: Mapping[str, Any] | None = None, batch_rows: int = 4096,
            **options: Any) -> Dataset:
    """Create a dataset at `url` from a HuggingFace `datasets.Dataset` or `IterableDataset`
    (one split), streamed through `Dataset.extend_from(arrow=...)`: types as for Arrow
    (README "Ingestion"), `ClassLabel` -> class_label with its names, `Image` -> image (the
    encoded bytes). `options` go to `extend_from` (columns, htypes, on_error, progress ...);
    `commit`: the message of the commit made when done (None: flush, no commit). All or
    nothing: if the ingest fails, what this call wrote is removed. Needs `tensorplane[hf]`."""
    from plane.export._hf import hf_to_arrow

    reader = hf_to_arrow(hf_dataset, batch_rows)  # a bad argument fails before creating
    store = url if isinstance(url, Store) else open_store(url, storage_options)
    rec = RecordingStore(store)
    ds = create(rec)  # a dataset already there: DatasetExistsError, nothing written
    try:
        ds.extend_from(arrow=reader, batch_rows=batch_rows, commit=commit, **options)
        ds.flush()
    except BaseException:
        _remove_written(rec)
        raise
    return open_dataset(store)


def _remove_written(rec: RecordingStore) -> None:
    """Remove what this call wrote: the header first (from then on it is no dataset), refs
    last; nothing if another process has written a ref meanwhile (gc reclaims the rest)."""
    store = rec.inner
    if any(k not in rec.written for k in store.list(REFS)):
        return
    for key in sorted(rec.written, key=lambda k: (k != DATASET_KEY, k.startswith(REFS), k)):
        store.delete(key)
