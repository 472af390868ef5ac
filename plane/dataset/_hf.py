"""`plane.from_hf`: a HuggingFace dataset into a new tensorplane dataset (the Arrow ingest)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from plane.dataset._dataset import Dataset
from plane.dataset._open import create
from plane.storage import Store

__all__ = ["from_hf"]


def from_hf(hf_dataset: Any, url: str | os.PathLike[str] | Store, *,
            commit: str | None = "from HuggingFace",
            storage_options: Mapping[str, Any] | None = None, batch_rows: int = 4096,
            **options: Any) -> Dataset:
    """Create a dataset at `url` from a HuggingFace `datasets.Dataset` or `IterableDataset`
    (one split), streamed through `Dataset.extend_from(arrow=...)`: types as for Arrow
    (README "Ingestion"), `ClassLabel` -> class_label with its names, `Image` -> image (the
    encoded bytes). `options` go to `extend_from` (columns, htypes, on_error, progress ...);
    `commit`: the message of the commit made when done (None: do not commit). Needs
    `tensorplane[hf]`."""
    from plane.export._hf import hf_to_arrow

    reader = hf_to_arrow(hf_dataset, batch_rows)  # a bad argument fails before creating
    ds = create(url, storage_options=storage_options)
    ds.extend_from(arrow=reader, batch_rows=batch_rows, commit=commit, **options)
    return ds
