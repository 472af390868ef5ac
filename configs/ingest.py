"""Configuration of the Ray ingestion job (`python -m jobs.ingest`): a pydantic model,
loadable from YAML (`configs/ingest.yaml` is an example) and overridable from CLI flags."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["IngestConfig"]


class IngestConfig(BaseModel):
    """What to ingest, where to, and how to fan it out."""

    model_config = ConfigDict(extra="forbid")

    source: str | list[str] = Field(description="Parquet file/dir/glob (or image tree), or a "
                                                "list of them; local or s3://...")
    dest: str = Field(description="the dataset URL; created if it does not exist")
    format: Literal["parquet", "images"] = "parquet"
    branch: str = "main"
    columns: dict[str, str] | None = Field(None, description="source column -> tensor")
    htypes: dict[str, str | dict[str, Any]] | None = Field(
        None, description="tensor -> htype (or create_tensor arguments), overriding inference")
    labels: Literal["folder"] | None = Field(None, description="images: class per folder")
    on_error: Literal["raise", "skip", "quarantine"] = "raise"
    verify: bool = Field(False, description="fully decode media while ingesting")
    batch_rows: int = Field(4096, ge=1, description="rows encoded at a time in a task")
    row_groups_per_task: int = Field(8, ge=1, description="Parquet row groups per Ray task")
    files_per_task: int = Field(2000, ge=1, description="images per Ray task")
    max_retries: int = Field(3, ge=0, description="retries of a task that fails on I/O")
    num_cpus_per_task: float = Field(1.0, gt=0)
    message: str | None = Field(None, description="the commit message")
    source_storage_options: dict[str, Any] = Field(default_factory=dict)
    dest_storage_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("source")
    @classmethod
    def _non_empty(cls, v: str | list[str]) -> str | list[str]:
        if not v:
            raise ValueError("source is empty: give a file, a directory, a glob or a list")
        return v

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **overrides: Any) -> IngestConfig:
        """Load `path`; keyword overrides (e.g. from CLI flags) win where not None."""
        import yaml

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.model_validate(data)
