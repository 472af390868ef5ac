"""tensorplane: a tensor-native AI data plane beside your lakehouse.

``import plane`` never starts Ray or touches the network.
"""

from plane._errors import (
    ChecksumError,
    CommitConflictError,
    DatasetExistsError,
    DatasetNotFoundError,
    FormatVersionError,
    IndexNotFoundError,
    IngestError,
    InvalidArgumentError,
    MergeConflictError,
    MissingDependencyError,
    ObjectNotFoundError,
    PlaneError,
    QueryError,
    ReadOnlyError,
    RefNameError,
    RowNotFoundError,
    SampleError,
    SchemaError,
    StoreError,
    TensorNotFoundError,
    VersionNotFoundError,
)
from plane.core._fragment import Fragment, write_fragment
from plane.dataset import Dataset, DatasetView, Tensor, apply_fragments, create
from plane.dataset import open_dataset as open
from plane.dataset._hf import from_hf
from plane.format._htypes import HTYPES
from plane.ingest import IngestReport
from plane.query import AggregateResult, IndexInfo, Search, View, list_views, load_view
from plane.storage import open_store
from plane.version import Diff, GcReport, MergeResult, gc

__version__ = "0.1.0"

__all__ = [
    "Dataset",
    "DatasetView",
    "Tensor",
    "create",
    "open",
    "open_store",
    "from_hf",
    "gc",
    "Diff",
    "GcReport",
    "MergeResult",
    "Fragment",
    "write_fragment",
    "apply_fragments",
    "HTYPES",
    "PlaneError",
    "ObjectNotFoundError",
    "ChecksumError",
    "CommitConflictError",
    "MergeConflictError",
    "VersionNotFoundError",
    "DatasetExistsError",
    "DatasetNotFoundError",
    "FormatVersionError",
    "IngestError",
    "IngestReport",
    "QueryError",
    "View",
    "AggregateResult",
    "Search",
    "IndexInfo",
    "list_views",
    "load_view",
    "ReadOnlyError",
    "RefNameError",
    "RowNotFoundError",
    "IndexNotFoundError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "SampleError",
    "SchemaError",
    "StoreError",
    "TensorNotFoundError",
]
