"""Version control: commits, branches, tags, row-level diff, three-way merge, gc."""

from plane.version._control import VersionControl, merge_base, merge_bases
from plane.version._diff import Diff, TensorDiff
from plane.version._gc import GcReport, gc
from plane.version._merge import MergeResult

__all__ = ["Diff", "GcReport", "MergeResult", "TensorDiff", "VersionControl", "gc", "merge_base",
           "merge_bases"]
