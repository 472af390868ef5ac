"""Core machinery under the Dataset: manifests, refs, chunk reading and writing.

The seams the layers above build on: `Snapshot` (a frozen, picklable read handle on one
version) and `WorkingState` (the write side of a branch). Exported too, for code built on
plane (actors/, jobs/): the store's key names (only `_layout` spells them), dataset headers,
and fragments (chunks written outside a Dataset).
"""

from plane.core._fragment import Fragment, FragmentWriter, write_fragment
from plane.core._layout import (
    DATASET_KEY,
    await_created,
    chunk_key,
    coordinator_prefix,
    is_chunk_key,
    read_dataset_info,
)
from plane.core._nulls import cells, with_nulls
from plane.core._reader import finish_samples
from plane.core._snapshot import Snapshot
from plane.core._working import WorkingState

__all__ = [
    "DATASET_KEY",
    "Fragment",
    "FragmentWriter",
    "Snapshot",
    "WorkingState",
    "await_created",
    "cells",
    "chunk_key",
    "coordinator_prefix",
    "finish_samples",
    "is_chunk_key",
    "read_dataset_info",
    "with_nulls",
    "write_fragment",
]
