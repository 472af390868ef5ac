"""Reusable test helpers for code built on tensorplane (needs pytest and hypothesis)."""

from plane.testing.store import (
    StoreReadTests,
    StoreStateMachine,
    StoreTests,
    run_store_state_machine,
    store_state_machine,
)

__all__ = [
    "StoreReadTests",
    "StoreTests",
    "StoreStateMachine",
    "store_state_machine",
    "run_store_state_machine",
]
