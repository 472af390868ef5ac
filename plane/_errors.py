"""One error hierarchy; each error also inherits the builtin a caller would catch."""

from __future__ import annotations

__all__ = [
    "PlaneError",
    "ObjectNotFoundError",
    "ChecksumError",
    "ReadOnlyError",
    "SchemaError",
    "SampleError",
    "TensorNotFoundError",
    "DatasetNotFoundError",
    "DatasetExistsError",
    "FormatVersionError",
    "StoreError",
    "CommitConflictError",
    "MergeConflictError",
    "VersionNotFoundError",
    "IngestError",
    "QueryError",
    "RefNameError",
    "InvalidArgumentError",
    "MissingDependencyError",
    "RowNotFoundError",
    "IndexNotFoundError",
]


class PlaneError(Exception):
    """Base class of every error tensorplane raises on purpose."""


class ObjectNotFoundError(PlaneError, KeyError):
    """A key is missing from a store."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class ChecksumError(PlaneError, ValueError):
    """An object's bytes do not match its checksum: it is corrupt."""


class ReadOnlyError(PlaneError, PermissionError):
    """A write was attempted on a read-only store or dataset."""


class StoreError(PlaneError, OSError):
    """A storage backend failed in a way that is not 'not found'."""


class SchemaError(PlaneError, ValueError):
    """A tensor definition or schema change is invalid."""


class SampleError(PlaneError, ValueError):
    """A sample given to append/extend does not fit its tensor."""


class TensorNotFoundError(PlaneError, KeyError):
    """A tensor name does not exist in the dataset."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DatasetNotFoundError(PlaneError, FileNotFoundError):
    """The URL does not hold a tensorplane dataset."""


class DatasetExistsError(PlaneError, FileExistsError):
    """create() was called where a dataset already exists."""


class FormatVersionError(PlaneError, ValueError):
    """The dataset was written by a newer format version than this library reads."""


class CommitConflictError(PlaneError, RuntimeError):
    """A concurrent writer changed the branch in a way that cannot be rebased automatically."""


class MergeConflictError(PlaneError, RuntimeError):
    """A merge found rows changed differently on both sides; nothing was changed.

    `conflicts` maps tensor name -> sorted row ids in conflict.
    """

    def __init__(self, message: str, conflicts: dict[str, list[int]] | None = None) -> None:
        super().__init__(message)
        self.conflicts = conflicts or {}


class VersionNotFoundError(PlaneError, KeyError):
    """A branch, tag or commit id does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IngestError(PlaneError, ValueError):
    """An ingest cannot go on: a bad source file or row (named), the dataset left unchanged."""


class QueryError(PlaneError, ValueError):
    """A query cannot be parsed or planned: says where, what was expected and what exists."""


class RefNameError(PlaneError, ValueError):
    """A branch or tag name cannot be used: says why and what a valid name looks like."""


class InvalidArgumentError(PlaneError, ValueError):
    """An argument has a value the call cannot take: the message names it and the fix."""


class MissingDependencyError(PlaneError, ImportError):
    """An optional extra the call needs is not installed: the message names the pip command."""


class RowNotFoundError(PlaneError, KeyError):
    """Row ids that are not rows of this version (deleted, or never in this dataset)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IndexNotFoundError(PlaneError, KeyError):
    """An index name that names no index of this version: the message lists the indexes."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
