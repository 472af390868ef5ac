"""tensorplane: a tensor-native AI data plane beside your lakehouse.

``import plane`` never starts Ray or touches the network.
"""

from plane._errors import (
    ChecksumError,
    CommitConflictError,
    DatasetExistsError,
    DatasetNotFoundError,
    FormatVersionError,
    ObjectNotFoundError,
    PlaneError,
    ReadOnlyError,
    SampleError,
    SchemaError,
    StoreError,
    TensorNotFoundError,
)
from plane.dataset import Dataset, DatasetView, Tensor, create
from plane.dataset import open_dataset as open
from plane.format._htypes import HTYPES
from plane.storage import open_store

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "DatasetView",
    "Tensor",
    "create",
    "open",
    "open_store",
    "HTYPES",
    "PlaneError",
    "ObjectNotFoundError",
    "ChecksumError",
    "CommitConflictError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "FormatVersionError",
    "ReadOnlyError",
    "SampleError",
    "SchemaError",
    "StoreError",
    "TensorNotFoundError",
]
