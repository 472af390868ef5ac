"""Ray actors: the version coordinator (one writer per branch that commits the fragments
workers wrote, exactly once), and the chunk cache (`actors.chunk_cache`: shard actors that
own a dataset's chunks across the cluster) with its loader (`actors.cluster_loader`:
globally shuffled batches to each trainer).

Imports `plane` (its public API only); `plane` never imports this package. ``import actors``
does not import ray: the Ray actor classes are created on first use
(`actors.coordinator.start_coordinator`).
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
