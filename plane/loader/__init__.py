"""Streaming loaders: chunk-aware shuffled batches for PyTorch, NumPy and JAX."""

from plane.loader._loader import (
           DEFAULT_WINDOW_BYTES,
           BatchSource,
           Loader,
           LoaderConfig,
           detect_rank,
           make_loader,
)
from plane.loader._loader import _to_torch as to_torch
from plane.loader._plan import (
           EpochPlan,
           epoch_order,
           global_batches,
           plan_epoch,
           rank_batches,
           units_of,
)

__all__ = ["BatchSource", "DEFAULT_WINDOW_BYTES", "EpochPlan", "Loader", "LoaderConfig",
           "detect_rank", "make_loader", "epoch_order", "global_batches", "plan_epoch",
           "rank_batches", "to_torch", "units_of"]
