"""SQL LIKE matching in time linear in the text (times the length of a segment holding `_`).

``%`` matches any run of characters (also none), ``_`` exactly one character, everything
else itself (case-sensitive, no escape character). A pattern is cut at each ``%`` into
fixed-length segments; the first must match at the start of the text, the last at its end,
and each middle one is found at its leftmost place after the previous one (the greedy
leftmost choice leaves the most room for the segments after it, so it never needs to be
undone). A translated regex (``^a.*b.*c$``) backtracks instead: with many ``%`` on a text that
does not match it runs for minutes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

__all__ = ["like_matcher", "like_mask"]


class _Segment:
    """A run of the pattern between two ``%``: literal characters and ``_`` wildcards."""

    __slots__ = ("literal", "n", "rx")

    def __init__(self, text: str) -> None:
        self.n = len(text)
        self.literal = text if "_" not in text else None
        self.rx = None if self.literal is not None else re.compile(
            "".join("." if c == "_" else re.escape(c) for c in text), re.S)

    def at(self, s: str, pos: int) -> bool:
        """The segment matches `s` at `pos` (the caller checked it fits)."""
        if self.literal is not None:
            return s.startswith(self.literal, pos)
        assert self.rx is not None
        return self.rx.match(s, pos) is not None

    def find(self, s: str, pos: int, end: int) -> int:
        """The end of the leftmost match inside s[pos:end], or -1."""
        if self.literal is not None:
            i = s.find(self.literal, pos, end)
            return -1 if i < 0 else i + self.n
        assert self.rx is not None
        m = self.rx.search(s, pos, end)
        return -1 if m is None else m.end()


def like_matcher(pattern: str) -> Callable[[str], bool]:
    """A function telling whether a string matches the LIKE `pattern` (in full)."""
    segs = [_Segment(p) for p in pattern.split("%")]
    if len(segs) == 1:
        only = segs[0]
        return lambda s: len(s) == only.n and only.at(s, 0)
    head, mid, tail = segs[0], [m for m in segs[1:-1] if m.n], segs[-1]
    least = head.n + tail.n + sum(m.n for m in mid)

    def match(s: str) -> bool:
        n = len(s)
        if n < least or not head.at(s, 0) or not tail.at(s, n - tail.n):
            return False
        pos, end = head.n, n - tail.n
        for m in mid:
            pos = m.find(s, pos, end)
            if pos < 0:
                return False
        return True
    return match


def like_mask(values: Iterable[Any], pattern: str, n: int) -> np.ndarray:
    """Mask over `n` values: the value is a string matching `pattern` (others never match)."""
    match = like_matcher(pattern)
    return np.fromiter((isinstance(v, str) and match(v) for v in values), bool, n)
