"""The `plane` command line: inspect datasets from a shell."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import numpy as np

import plane

__all__ = ["main"]


def _open(args: argparse.Namespace) -> plane.Dataset:
    opts = json.loads(args.storage_options) if args.storage_options else None
    return plane.open(args.url, read_only=True, version=args.branch, storage_options=opts)


def _cmd_summary(args: argparse.Namespace) -> int:
    _open(args).summary()
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, np.ndarray):
        if v.size <= 8:
            return np.array2string(v, separator=",")
        return f"<{v.dtype} array {v.shape}>"
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def _cmd_show(args: argparse.Namespace) -> int:
    ds = _open(args)
    names = args.tensors.split(",") if args.tensors else list(ds.tensors)
    stop = min(len(ds), args.start + args.limit)
    for i in range(args.start, stop):
        cells = [f"{n}={_fmt(ds[n][i].numpy())}" for n in names]
        print(f"[{i}] " + "  ".join(cells))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="plane", description="tensorplane dataset tool")
    p.add_argument("--version", action="version", version=f"tensorplane {plane.__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("url", help="dataset URL: a path, mem://name, s3://bucket/prefix")
        sp.add_argument("--branch", default=None, help="branch to read (default: main)")
        sp.add_argument("--storage-options", default=None,
                        help="JSON dict passed to the storage backend (e.g. endpoint_url)")

    s = sub.add_parser("summary", help="print tensors, shapes, chunks and sizes")
    common(s)
    s.set_defaults(fn=_cmd_summary)
    s = sub.add_parser("show", help="print some rows")
    common(s)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--tensors", default=None, help="comma-separated tensor names")
    s.set_defaults(fn=_cmd_show)
    args = p.parse_args(argv)
    try:
        return int(args.fn(args))
    except plane.PlaneError as e:
        print(f"plane: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
