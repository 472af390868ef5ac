"""Streaming loaders: chunk-aware shuffled batches for PyTorch, NumPy and JAX."""

from plane.loader._loader import BatchSource, Loader, LoaderConfig, detect_rank, make_loader
from plane.loader._plan import epoch_order, global_batches, rank_batches, units_of

__all__ = ["BatchSource", "Loader", "LoaderConfig", "detect_rank", "make_loader",
           "epoch_order", "global_batches", "rank_batches", "units_of"]
