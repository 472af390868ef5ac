"""Getting data out: a version (or some rows) of a dataset as Arrow, pandas, Parquet, a
HuggingFace `datasets.Dataset`; the reverse of ingestion (types: plane/export/_types.py).

pyarrow loads on first use, so ``import plane`` stays light.
"""

from typing import Any

__all__ = ["to_arrow", "to_batches", "to_pandas", "to_hf", "export_schema", "select_rows",
           "write_parquet", "arrow_type", "ROW_ID", "hf_to_arrow"]

_LAZY = {"to_arrow": "_arrow", "to_batches": "_arrow", "to_pandas": "_arrow",
         "export_schema": "_arrow", "select_rows": "_arrow", "write_parquet": "_arrow",
         "arrow_type": "_types", "ROW_ID": "_types", "to_hf": "_hf", "hf_to_arrow": "_hf"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"plane.export.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'plane.export' has no attribute {name!r}")
