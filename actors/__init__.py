"""Ray actors: the version coordinator (one writer per branch that commits the fragments
workers wrote, exactly once).

Imports `plane` (its public API only); `plane` never imports this package. ``import actors``
does not import ray: the Ray actor class is created on first use
(`actors.coordinator.start_coordinator`).
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
