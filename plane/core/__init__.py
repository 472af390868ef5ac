"""Core machinery under the Dataset: manifests, refs, chunk reading and writing.

The seams the layers above build on: `Snapshot` (a frozen, picklable read handle on one
version) and `WorkingState` (the write side of a branch).
"""

from plane.core._reader import finish_samples
from plane.core._snapshot import Snapshot
from plane.core._working import WorkingState

__all__ = ["Snapshot", "WorkingState", "finish_samples"]
