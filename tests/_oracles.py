"""Plain reference implementations the tests check the engine against."""

from __future__ import annotations

from typing import Any

import numpy as np


def like_ref(s: str, p: str) -> bool:
    """SQL LIKE by dynamic programming over (text prefix, pattern prefix): `%` any run, `_`
    one character, anything else itself."""
    prev = [True] + [False] * len(p)
    for j, c in enumerate(p):
        prev[j + 1] = prev[j] and c == "%"
    for ch in s:
        cur = [False] * (len(p) + 1)
        for j, c in enumerate(p):
            cur[j + 1] = (cur[j] or prev[j + 1]) if c == "%" else (
                prev[j] and (c == "_" or c == ch))
        prev = cur
    return prev[-1]


def same_batches(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> None:
    """Two loaders' batches are equal: as many, the same keys, the same values in order."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            np.testing.assert_array_equal(np.asarray(x[k]), np.asarray(y[k]))
