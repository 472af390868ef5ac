"""The user's API: Dataset, Tensor and views."""

from plane.dataset._dataset import Dataset
from plane.dataset._fragments import apply_fragments
from plane.dataset._index_list import IndexEntry, Indexes
from plane.dataset._info import DatasetInfo
from plane.dataset._open import create, open_dataset
from plane.dataset._tensor import Tensor
from plane.dataset._view import DatasetView

__all__ = ["Dataset", "DatasetInfo", "DatasetView", "IndexEntry", "Indexes", "Tensor",
           "apply_fragments", "create", "open_dataset"]
