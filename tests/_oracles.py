"""Plain reference implementations the tests check the engine against."""

from __future__ import annotations


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
