"""The user's API: Dataset, Tensor and views."""

from plane.dataset._dataset import Dataset
from plane.dataset._open import create, open_dataset
from plane.dataset._tensor import Tensor
from plane.dataset._view import DatasetView

__all__ = ["Dataset", "DatasetView", "Tensor", "create", "open_dataset"]
