"""The dataset's info dict (description, license, citation, ...): checks and three-way merge.

It is stored in the state (`State.info`), so it is versioned with the rows."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from plane._errors import SchemaError

__all__ = ["MAX_INFO_BYTES", "check_info", "merge_info"]

#: the info dict is stored inside every state object: kept small
MAX_INFO_BYTES = 64 * 1024
_ABSENT = object()


def check_info(info: Mapping[str, Any], url: str) -> dict[str, Any]:
    """A copy of `info` if it can be stored (str keys, JSON values, at most MAX_INFO_BYTES
    as JSON), else SchemaError naming the key and the fix."""
    for k, v in info.items():
        if not isinstance(k, str):
            raise SchemaError(f"ds.info keys are str, got {k!r} ({type(k).__name__}); use a "
                              "string key such as 'license'")
        try:
            json.dumps(v, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise SchemaError(f"ds.info[{k!r}] = {_short(v)} is not JSON ({e}); store str, "
                              "int, float, bool, None, or lists/dicts of them (e.g. str(x) "
                              "or x.tolist())") from None
        if isinstance(v, float) and not math.isfinite(v):  # pragma: no cover (allow_nan)
            raise SchemaError(f"ds.info[{k!r}]: {v} is not a JSON number")
    out = json.loads(json.dumps(dict(info)))  # a deep copy, exactly as stored
    size = len(json.dumps(out, sort_keys=True).encode())
    if size > MAX_INFO_BYTES:
        raise SchemaError(f"ds.info of {url} would be {size:,} bytes as JSON, more than "
                          f"{MAX_INFO_BYTES:,}: it is stored in every version's state; keep "
                          "long texts or files in a tensor (or a link) and name them here")
    return dict(out)


def merge_info(base: Mapping[str, Any], ours: Mapping[str, Any], theirs: Mapping[str, Any]
               ) -> tuple[dict[str, Any], list[str]]:
    """Three-way merge of info dicts: (merged, keys both sides changed differently, where
    `merged` keeps ours)."""
    out: dict[str, Any] = {}
    clash = []
    for k in list(dict.fromkeys([*ours, *theirs, *base])):
        b, o, t = base.get(k, _ABSENT), ours.get(k, _ABSENT), theirs.get(k, _ABSENT)
        if o == b:
            v = t
        elif t == b or o == t:
            v = o
        else:
            clash.append(k)
            v = o
        if v is not _ABSENT:
            out[k] = v
    return out, clash


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."
