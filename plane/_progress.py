"""Progress bars (tqdm, the `progress` extra) for long ingests and index builds."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["progress_bar"]


def progress_bar(total: int | None, desc: str, enabled: bool | None) -> Any:
    """A tqdm bar counting rows, or None: off when `enabled` is False, when tqdm is not
    installed, or (`enabled` None) when stderr is not a terminal."""
    if enabled is False or (enabled is None and not sys.stderr.isatty()):
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, unit="rows", unit_scale=True)
