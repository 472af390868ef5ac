"""The summary every ingest ends with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["IngestReport"]


@dataclass
class IngestReport:
    """What an ingest did. `quarantine_key`: the store key of the JSON-lines report of
    rejected rows (on_error="quarantine")."""

    rows_read: int = 0
    rows_written: int = 0
    rows_skipped: int = 0
    files: int = 0
    files_skipped: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    seconds: float = 0.0
    tensors_created: list[str] = field(default_factory=list)
    quarantine_key: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def merge(self, other: IngestReport) -> None:
        for k in ("rows_read", "rows_written", "rows_skipped", "files", "files_skipped",
                  "bytes_read", "bytes_written"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.errors.extend(other.errors)

    def __str__(self) -> str:
        rate = self.rows_written / self.seconds if self.seconds else 0.0
        out = (f"ingested {self.rows_written:,} of {self.rows_read:,} rows from {self.files:,} "
               f"file(s) in {self.seconds:.2f} s ({rate:,.0f} rows/s; read "
               f"{self.bytes_read / 1e6:,.1f} MB, wrote {self.bytes_written / 1e6:,.1f} MB)")
        if self.rows_skipped or self.files_skipped:
            out += f"; skipped {self.rows_skipped:,} row(s), {self.files_skipped:,} file(s)"
        if self.quarantine_key:
            out += f"; rejected rows listed in {self.quarantine_key}"
        return out
