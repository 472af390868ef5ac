"""Ingestion from the lake: Parquet, Arrow and image folders into tensors (`ds.extend_from`).

Only the report type is imported eagerly; the rest (pyarrow, fsspec) loads on first use, so
``import plane`` stays light.
"""

from typing import Any

from plane.ingest._report import IngestReport

__all__ = ["IngestReport", "extend_from", "apply_ingest", "ingest_pieces", "plan_schema",
           "plan_parquet", "plan_images", "create_like", "Rejects", "write_quarantine",
           "FileReadError", "guard_file", "TensorSpec", "infer_spec", "column_values", "Piece",
           "SourceFile", "filesystem_for", "parquet_pieces", "parquet_schema", "resolve_files",
           "image_files", "image_pieces"]

#: the planning and per-piece functions a fan-out job (jobs/ingest.py) runs in its tasks
_LAZY = {"extend_from": "_ingest", "apply_ingest": "_ingest", "ingest_pieces": "_ingest",
         "plan_schema": "_ingest", "plan_parquet": "_ingest", "plan_images": "_ingest",
         "create_like": "_ingest", "Rejects": "_ingest", "write_quarantine": "_ingest",
         "FileReadError": "_ingest", "guard_file": "_ingest",
         "TensorSpec": "_infer", "infer_spec": "_infer", "column_values": "_infer",
         "Piece": "_sources", "SourceFile": "_sources", "filesystem_for": "_sources",
         "parquet_pieces": "_sources", "parquet_schema": "_sources",
         "resolve_files": "_sources", "image_files": "_sources", "image_pieces": "_sources"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"plane.ingest.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'plane.ingest' has no attribute {name!r}")
