"""Ray actors (chunk-store shards, index partitions, version coordinator).

Imports `plane`; `plane` never imports this package. ``import actors`` does not import ray:
the Ray actor classes are created on first use (`actors.coordinator.start_coordinator`).
`actors.chunk_cache` shards a dataset's chunks over the cluster and `actors.cluster_loader`
streams globally shuffled batches from it to each trainer.
"""

from actors.chunk_cache import ChunkCache, get_chunk_cache, start_chunk_cache
from actors.cluster_loader import ClusterLoader, cluster_loader
from actors.coordinator import (
    VersionCoordinator,
    coordinator_actor_class,
    get_coordinator,
    start_coordinator,
    write_and_submit,
)

__all__ = [
    "ChunkCache",
    "ClusterLoader",
    "cluster_loader",
    "get_chunk_cache",
    "start_chunk_cache",
    "VersionCoordinator",
    "coordinator_actor_class",
    "get_coordinator",
    "start_coordinator",
    "write_and_submit",
]
