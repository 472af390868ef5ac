"""Ingestion from the lake: Parquet, Arrow and image folders into tensors (`ds.extend_from`).

Only the report type is imported eagerly; the rest (pyarrow, fsspec) loads on first use, so
``import plane`` stays light.
"""

from typing import Any

from plane.ingest._report import IngestReport

__all__ = ["IngestReport", "extend_from", "apply_ingest", "ingest_pieces", "plan_schema",
           "TensorSpec", "infer_spec", "column_values", "Piece", "SourceFile",
           "parquet_pieces", "resolve_files"]

_LAZY = {"extend_from": "_ingest", "apply_ingest": "_ingest", "ingest_pieces": "_ingest",
         "plan_schema": "_ingest", "TensorSpec": "_infer", "infer_spec": "_infer",
         "column_values": "_infer", "Piece": "_sources", "SourceFile": "_sources",
         "parquet_pieces": "_sources", "resolve_files": "_sources"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"plane.ingest.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'plane.ingest' has no attribute {name!r}")
