"""Ray actors (chunk-store shards, index partitions, version coordinator).

Imports `plane`; `plane` never imports this package. ``import actors`` does not import ray:
the Ray actor classes are created on first use (`actors.coordinator.start_coordinator`).
Chunk-store shards and index partitions arrive with the ingestion (#5) and query (#6) issues.
"""

from actors.coordinator import (
    VersionCoordinator,
    coordinator_actor_class,
    get_coordinator,
    start_coordinator,
    write_and_submit,
)

__all__ = [
    "VersionCoordinator",
    "coordinator_actor_class",
    "get_coordinator",
    "start_coordinator",
    "write_and_submit",
]
