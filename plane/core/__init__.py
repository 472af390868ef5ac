"""Core machinery under the Dataset: manifests, refs, chunk reading and writing.

Exported here, for code built on plane (actors/, jobs/): the store's key names (only
`_layout` spells them), dataset headers, and fragments (chunks written outside a Dataset).
"""

from plane.core._fragment import Fragment, FragmentWriter, write_fragment
from plane.core._layout import (
    DATASET_KEY,
    await_created,
    chunk_key,
    coordinator_prefix,
    read_dataset_info,
)

__all__ = [
    "DATASET_KEY",
    "Fragment",
    "FragmentWriter",
    "await_created",
    "chunk_key",
    "coordinator_prefix",
    "read_dataset_info",
    "write_fragment",
]
