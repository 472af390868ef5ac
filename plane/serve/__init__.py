"""`plane serve`: a local web viewer of a dataset (needs the `serve` extra: aiohttp).

Pages: overview, grid of samples with thumbnails, query, versions (diff and merge preview),
edits (relabel, delete, commit) unless read-only. Loopback by default; any other host needs
the token printed at start. Not imported by ``import plane``.
"""

from __future__ import annotations

from plane.serve._app import Server, make_app, start

__all__ = ["Server", "make_app", "start"]
