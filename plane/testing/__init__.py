"""Reusable test helpers for code built on tensorplane (needs pytest and hypothesis; the
fault-injecting `FaultyStore` alone, in `plane.testing.faults`, needs neither)."""

from plane.testing.faults import FaultyStore
from plane.testing.store import (
    StoreReadTests,
    StoreStateMachine,
    StoreTests,
    run_store_state_machine,
    store_state_machine,
)

__all__ = [
    "FaultyStore",
    "StoreReadTests",
    "StoreTests",
    "StoreStateMachine",
    "store_state_machine",
    "run_store_state_machine",
]
