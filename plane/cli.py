"""The `plane` command line: inspect datasets from a shell."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import threading
import time
from typing import Any

import numpy as np

import plane
from plane._progress import activity
from plane.core._layout import DATASET_KEY, REFS, await_created
from plane.storage import RecordingStore, Store

__all__ = ["main", "parse_pairs"]


#: environment variables with storage options (JSON), read when the flags are not given, and
#: how `plane ingest --ray` hands them to `python -m jobs.ingest`: a command line is visible
#: to every user (ps), a process's environment only to its owner
DEST_OPTIONS_ENV = "PLANE_STORAGE_OPTIONS"
SOURCE_OPTIONS_ENV = "PLANE_SOURCE_STORAGE_OPTIONS"


class UsageError(plane.PlaneError, ValueError):
    """A flag's value is malformed: exit status 2, as argparse's usage errors; every other
    PlaneError is a runtime error (status 1)."""


def _json_opts(text: str | None, flag: str) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        out = json.loads(text)
    except json.JSONDecodeError as e:
        example = ('\'{"q": [0.1, 0.2]}\'' if flag == "--params"
                   else '\'{"endpoint_url": "http://..."}\'')
        raise UsageError(f"{flag} is not valid JSON ({e}): give an object such as "
                               f"{example}") from None
    if not isinstance(out, dict):
        raise UsageError(f"{flag} must be a JSON object, got {type(out).__name__}")
    return out


def _opts(args: argparse.Namespace) -> dict[str, Any] | None:
    return _json_opts(args.storage_options, "--storage-options")


def _open(args: argparse.Namespace, write: bool = False) -> plane.Dataset:
    return plane.open(args.url, read_only=not write, version=args.branch,
                      storage_options=_opts(args))


def _when(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _cmd_log(args: argparse.Namespace) -> int:
    ds = _open(args)
    entries = ds.versions.log(limit=args.limit)
    tags: dict[str, list[str]] = {}
    for name, cid in ds.versions.tags().items():
        tags.setdefault(cid, []).append(name)
    if not entries:
        print("(no commits)")
    for e in entries:
        deco = f" (tag: {', '.join(tags[e['id']])})" if e["id"] in tags else ""
        merge = f"\nMerge:  {' '.join(p[:12] for p in e['parents'])}" \
            if len(e["parents"]) > 1 else ""
        print(f"commit {e['id']}{deco}{merge}\nAuthor: {e['author']}\nDate:   "
              f"{_when(e['time'])}\n\n    {e['message']}\n")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    ds = _open(args)
    d = ds.versions.diff(args.a, args.b)
    print(json.dumps(d.to_dict(), indent=1) if args.json else d)
    return 1 if args.exit_code and d else 0  # as `git diff --exit-code`


def _cmd_branch(args: argparse.Namespace) -> int:
    if args.delete:
        _open(args, write=True).versions.delete_branch(args.delete)
        print(f"deleted branch {args.delete}")
        return 0
    ds = _open(args, write=bool(args.name))
    if args.name:
        ds.versions.create_branch(args.name, args.at)
        print(f"created branch {args.name} at {args.at or ds.commit_id}")
        return 0
    for b in ds.versions.branches():
        head = ds.versions.resolve(b)[1]
        print(f"{'*' if b == ds.current_branch else ' '} {b:20s} {head or '(no commits)'}")
    return 0


def _cmd_checkout(args: argparse.Namespace) -> int:
    ds = plane.open(args.url, read_only=True, version=args.version,
                    storage_options=_opts(args))
    if args.create:
        plane.open(args.url, storage_options=_opts(args)).versions.create_branch(
            args.create, args.version)
        print(f"created branch {args.create} at {args.version}")
    print(ds.summary())
    print(f"\nopen it with plane.open({args.url!r}, version={args.version!r})")
    return 0


def _cmd_merge(args: argparse.Namespace) -> int:
    ds = _open(args, write=True)
    try:
        res = ds.merge(args.other, conflicts=args.conflicts, message=args.message)
    except plane.MergeConflictError as e:
        print(f"plane: merge conflict: {e}", file=sys.stderr)
        for t, ids in e.conflicts.items():
            print(f"  {t}: {len(ids)} rows: {ids[:20]}", file=sys.stderr)
        return 1
    print(res)
    return 0


def _cmd_tag(args: argparse.Namespace) -> int:
    if args.delete:
        _open(args, write=True).versions.delete_tag(args.delete)
        print(f"deleted tag {args.delete}")
        return 0
    ds = _open(args, write=bool(args.name))
    if args.name:
        ds.tag(args.name, args.commit, args.message or "")
        print(f"tagged {ds.versions.tags()[args.name]} as {args.name}")
        return 0
    for name, cid in sorted(ds.versions.tags().items()):
        print(f"{name:20s} {cid}")
    return 0


def _cmd_gc(args: argparse.Namespace) -> int:
    report = plane.gc(args.url, older_than=args.older_than, dry_run=not args.apply,
                      storage_options=_opts(args))
    print(report)
    if not args.apply and (report.unreachable or report.temporary):
        print("(dry run: add --apply to delete)")
    return 0


def _empty_batch(schema: Any) -> Any:
    import pyarrow as pa

    return pa.RecordBatch.from_pylist([], schema=schema)


def _cmd_export(args: argparse.Namespace) -> int:
    from plane.export._arrow import to_batches, write_parquet

    if args.version and args.branch:
        raise UsageError("give --version or --branch, not both")
    out = os.path.abspath(args.out)
    if not os.path.isdir(os.path.dirname(out)):
        raise plane.InvalidArgumentError(f"cannot write {args.out}: directory "
                                         f"{os.path.dirname(out)} does not exist; create it")
    ds = plane.open(args.url, read_only=True, version=args.version or args.branch,
                    storage_options=_opts(args))
    tensors = [t.strip() for t in args.tensors.split(",")] if args.tensors else None
    sql = args.query or (f"SELECT * WHERE {args.where}" if args.where else None)
    opts: dict[str, Any] = {"with_row_ids": args.with_row_ids}
    if sql is not None:  # a query's rows, in result order (with the score, if any)
        res = ds.query(sql, _json_opts(args.params, "--params"))
        if isinstance(res, plane.AggregateResult):  # groups: one small table
            table = res.to_arrow()
            batches = iter(table.to_batches() or [_empty_batch(table.schema)])
        else:
            batches = res.to_batches(tensors, **opts)
    else:
        batches = to_batches(ds.snapshot(), tensors, **opts)
    first = next(batches)  # unknown tensors raise here, before anything is written
    schema = first.schema
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        rows = write_parquet(itertools.chain([first], batches), schema, tmp)
        os.replace(tmp, out)
    except OSError as e:
        raise plane.StoreError(f"cannot write {args.out} ({e})") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"exported {rows} rows ({', '.join(schema.names)}) to {args.out}")
    return 0


def _cmd_summary(args: argparse.Namespace) -> int:
    print(_open(args).summary())
    return 0


def _fmt(v: Any) -> str:
    if isinstance(v, np.generic):
        v = v.item()
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
        cells = [f"{n}={_fmt(ds[n][i].numpy())}{_class_name(ds[n].class_names, ds[n][i])}"
                 for n in names]
        print(f"[{i}] " + "  ".join(cells))
    return 0


def _class_name(names: tuple[str, ...], t: Any) -> str:
    """` (dog)` after a class id shown to a person (the id stays the value; README)."""
    if not names:
        return ""
    value = t.numpy()
    if value is None:  # a null row: shown as None, without a name
        return ""
    v = np.asarray(value).reshape(-1)
    return " (" + ", ".join(names[int(x)] if 0 <= int(x) < len(names) else "?" for x in v) + ")"


def parse_pairs(items: list[str] | None, flag: str) -> dict[str, str] | None:
    """NAME=VALUE command-line flags (`flag` names them in errors) as a dict; None if none."""
    if not items:
        return None
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k or not v:
            raise UsageError(f"{flag} takes NAME=VALUE pairs, got {it!r}")
        out[k] = v
    return out




def _ray_ingest(args: argparse.Namespace) -> int:
    """Run the fan-out job (a program of its own: plane/ never imports jobs/)."""
    import subprocess

    cmd = [sys.executable, "-m", "jobs.ingest", "--source", *args.src, "--dest", args.url,
           "--format", args.kind, "--on-error", args.on_error]
    for flag, val in (("--map", args.map), ("--htype", args.htype)):
        if val:
            cmd += [flag, *val]
    for flag, val in (("--branch", args.branch), ("-m", args.message),
                      ("--labels", args.labels), ("--batch-rows", args.batch_rows)):
        if val is not None:
            cmd += [flag, str(val)]
    env = dict(os.environ)
    for name, text, flag in ((DEST_OPTIONS_ENV, args.storage_options, "--storage-options"),
                             (SOURCE_OPTIONS_ENV, args.source_storage_options,
                              "--source-storage-options")):
        env.pop(name, None)
        if text:
            _json_opts(text, flag)  # a typo fails here, naming the flag
            env[name] = text
    return subprocess.call(cmd, env=env)


def _cmd_ingest(args: argparse.Namespace) -> int:
    src = args.src if len(args.src) > 1 else args.src[0]
    cols, hts = parse_pairs(args.map, "--map"), parse_pairs(args.htype, "--htype")
    if args.ray:
        return _ray_ingest(args)
    opts = _opts(args)
    src_opts = _json_opts(args.source_storage_options, "--source-storage-options")
    from plane.ingest._sources import PARQUET_EXTS, image_files, resolve_files

    if args.kind == "parquet":  # a missing source fails before anything is created
        files = resolve_files(src, PARQUET_EXTS, src_opts)
        if cols is not None and files:  # --map renames; unmapped columns keep their names
            from plane.ingest._sources import parquet_schema

            names = parquet_schema(*files[0])[0].names
            cols = {**{c: cols.get(c, c) for c in names}, **cols}  # in the source's order
    else:
        image_files(src, src_opts)
    store = plane.open_store(args.url, opts)
    ds, made = _open_or_create(store, args.branch)
    try:
        return _ingest_into(ds, args, src, cols, hts, src_opts)
    except BaseException:
        if made is not None:  # leave no half-made dataset behind
            _undo_create(made)
        raise


def _open_or_create(store: Store, branch: str | None
                    ) -> tuple[plane.Dataset, RecordingStore | None]:
    """Open the dataset, or create it: then also the store that recorded what was written.
    A location that holds other files is refused (DatasetExistsError) and left alone; a
    dataset another process created meanwhile is opened."""
    if store.exists(DATASET_KEY):
        return plane.open(store, version=branch), None
    rec = RecordingStore(store)
    try:
        ds = plane.create(rec)
    except plane.DatasetExistsError:
        if not await_created(store):
            raise  # not a dataset, nor one being created: nothing here is ours
        return plane.open(store, version=branch), None
    except BaseException:
        _undo_create(rec)
        raise
    try:
        if branch and branch != "main":
            ds.versions.create_branch(branch)
            ds = plane.open(rec, version=branch)
    except BaseException:
        _undo_create(rec)
        raise
    return ds, rec


def _undo_create(rec: RecordingStore) -> None:
    """Remove what this call wrote to the dataset it created: the header first (from then on
    it is no dataset), refs last. If a ref record is not ours, another process uses the
    dataset too: then nothing is removed (its objects are left to gc)."""
    store = rec.inner
    if any(k not in rec.written for k in store.list(REFS)):
        return
    order = sorted(rec.written, key=lambda k: (k != DATASET_KEY, k.startswith(REFS), k))
    for key in order:
        store.delete(key)


def _ingest_into(ds: plane.Dataset, args: argparse.Namespace, src: Any,
                 cols: dict[str, str] | None, hts: dict[str, str] | None,
                 src_opts: dict[str, Any] | None) -> int:
    kw: dict[str, Any] = {"columns": cols, "htypes": hts, "on_error": args.on_error,
                          "storage_options": src_opts, "progress": None,
                          "print_report": False,  # printed below, once
                          "commit": args.message or f"ingest {src}"}
    if args.batch_rows:
        kw["batch_rows"] = args.batch_rows
    if args.kind == "parquet":
        report = ds.extend_from(parquet=src, **kw)
    else:
        report = ds.extend_from(images=src, labels=args.labels, **kw)
    print(report)
    return 0


def _cmd_query(args: argparse.Namespace) -> int:
    ds = _open(args)
    params = _json_opts(args.params, "--params")
    if args.explain:
        print(ds.explain(args.sql, params))
        return 0
    print(ds.query(args.sql, params))
    return 0


def _cmd_index(args: argparse.Namespace) -> int:
    from plane.query import list_indexes

    if args.action == "list":
        infos = list_indexes(_open(args))
        for info in infos:
            print(info)
        if not infos:
            print("(no indexes)")
        return 0
    ds = _open(args, write=True)
    if args.tensor:
        ds[args.tensor]  # an unknown tensor: TensorNotFoundError, listing the tensors
    if args.action == "optimize":  # progress: a bar per index rebuilt
        rebuilt = ds.indexes.optimize(args.tensor, progress=None)
        for info in rebuilt:
            print(info)
        if not rebuilt:
            print("(every index is built on the current commit)")
        return 0
    if not args.tensor:
        raise UsageError("plane index create URL TENSOR: name the tensor to index")
    info = ds.create_index(args.tensor, kind=args.kind, metric=args.metric, progress=None)
    print(info)
    return 0


def _run(args: argparse.Namespace) -> int:
    """Run the command; on a terminal, one that counts rows (ingest, index builds) shows a
    bar and any other its elapsed time, once it has run a second (plane._progress)."""
    counts = args.cmd == "ingest" or (args.cmd == "index" and args.action != "list")
    if counts or args.cmd == "serve":
        return int(args.fn(args))
    with activity(f"plane {args.cmd}"):
        return int(args.fn(args))


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        from plane.serve import start
    except ImportError as e:
        raise plane.PlaneError(f"plane serve needs the serve extra ({e}): "
                               "pip install 'tensorplane[serve]'") from None
    server = start(args.url, args.host, args.port, args.read_only, _opts(args),
                   version=args.branch)
    print(f"plane serve: {args.url} at {server.url}"
          + (" (read-only)" if args.read_only else ""), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="plane", description="tensorplane dataset tool")
    p.add_argument("--version", action="version", version=f"tensorplane {plane.__version__}")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("url", help="dataset URL: a path, mem://name, s3://bucket/prefix")
        sp.add_argument("--branch", default=None, help="branch to read (default: main)")
        sp.add_argument("--storage-options", default=os.environ.get(DEST_OPTIONS_ENV),
                        help="JSON dict passed to the storage backend (e.g. endpoint_url); "
                        f"default ${DEST_OPTIONS_ENV} (keeps secrets off the command line)")

    s = sub.add_parser("summary", help="print tensors, shapes, chunks and sizes")
    common(s)
    s.set_defaults(fn=_cmd_summary)
    s = sub.add_parser("show", help="print some rows")
    common(s)
    s.add_argument("--start", type=int, default=0)
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--tensors", default=None, help="comma-separated tensor names")
    s.set_defaults(fn=_cmd_show)

    s = sub.add_parser("log", help="commit history of a branch")
    common(s)
    s.add_argument("--limit", type=int, default=None)
    s.set_defaults(fn=_cmd_log)
    s = sub.add_parser("diff", help="row-level diff between two versions")
    common(s)
    s.add_argument("a", nargs="?", default=None, help="old version (default: head commit)")
    s.add_argument("b", nargs="?", default=None, help="new version (default: working state)")
    s.add_argument("--json", action="store_true", help="print the full diff as JSON")
    s.add_argument("--exit-code", action="store_true",
                   help="exit 1 if the versions differ, 0 if not (as git diff --exit-code)")
    s.set_defaults(fn=_cmd_diff)
    s = sub.add_parser("branch", help="list, create (NAME [--at V]) or --delete branches")
    common(s)
    s.add_argument("name", nargs="?", default=None)
    s.add_argument("--at", default=None, help="version to branch from (default: head)")
    s.add_argument("--delete", default=None, metavar="NAME")
    s.set_defaults(fn=_cmd_branch)
    s = sub.add_parser("checkout", help="show a version (and optionally branch from it)")
    common(s)
    s.add_argument("version")
    s.add_argument("-b", "--create", default=None, metavar="NAME",
                   help="create branch NAME at VERSION")
    s.set_defaults(fn=_cmd_checkout)
    s = sub.add_parser("merge", help="three-way merge OTHER into --branch (default main)")
    common(s)
    s.add_argument("other")
    s.add_argument("--conflicts", choices=["fail", "ours", "theirs"], default="fail")
    s.add_argument("-m", "--message", default=None)
    s.set_defaults(fn=_cmd_merge)
    s = sub.add_parser("tag", help="list, create (NAME [--commit C]) or --delete tags")
    common(s)
    s.add_argument("name", nargs="?", default=None)
    s.add_argument("--commit", default=None)
    s.add_argument("-m", "--message", default=None)
    s.add_argument("--delete", default=None, metavar="NAME")
    s.set_defaults(fn=_cmd_tag)
    s = sub.add_parser("gc", help="delete objects no version reaches (dry run by default)")
    common(s)
    s.add_argument("--older-than", type=float, default=7 * 24 * 3600.0,
                   help="grace period in seconds (default 7 days)")
    s.add_argument("--apply", action="store_true", help="really delete")
    s.set_defaults(fn=_cmd_gc)
    s = sub.add_parser("export", help="write a version (or a query's rows) to Parquet")
    common(s)
    s.add_argument("out", help="the Parquet file to write (replaced if it exists)")
    s.add_argument("--version", default=None, help="branch, tag or commit (default: main)")
    s.add_argument("--tensors", default=None, help="comma-separated tensor names (default all)")
    which = s.add_mutually_exclusive_group()
    which.add_argument("--where", default=None, help="only rows matching a SQL predicate, "
                       "e.g. \"labels = 'dog' AND score > 0.5\"")
    which.add_argument("--query", default=None, help="the rows of a query, in its order, "
                       "e.g. \"SELECT caption, score ORDER BY ... LIMIT 100\"")
    s.add_argument("--params", default=None, help="JSON object of $parameters")
    s.add_argument("--with-row-ids", action="store_true",
                   help="add the stable row id of each row as column _row_id (int64)")
    s.set_defaults(fn=_cmd_export)
    s = sub.add_parser("ingest", help="append Parquet files or an image tree (commits)")
    s.add_argument("kind", choices=["parquet", "images"])
    s.add_argument("src", nargs="+", help="file(s), director(ies) or glob(s); local or s3://")
    s.add_argument("url", help="the dataset (created if missing)")
    s.add_argument("--branch", default=None)
    s.add_argument("--storage-options", default=os.environ.get(DEST_OPTIONS_ENV),
                   help=f"JSON, for the dataset's store (default ${DEST_OPTIONS_ENV})")
    s.add_argument("--source-storage-options", default=os.environ.get(SOURCE_OPTIONS_ENV),
                   help=f"JSON, for the source (default ${SOURCE_OPTIONS_ENV})")
    s.add_argument("--map", nargs="*", action="extend", metavar="COLUMN=TENSOR",
                   help="column to tensor names (repeatable; unmapped columns keep their names)")
    s.add_argument("--htype", nargs="*", action="extend", metavar="TENSOR=HTYPE",
                   help="override inference (repeatable)")
    s.add_argument("--labels", choices=["folder"], default=None, help="images: class per dir")
    s.add_argument("--on-error", choices=["raise", "skip", "quarantine"], default="raise")
    s.add_argument("--batch-rows", type=int, default=None)
    s.add_argument("-m", "--message", default=None, help="commit message")
    s.add_argument("--ray", action="store_true",
                   help="fan out on Ray (python -m jobs.ingest; RAY_ADDRESS or a local Ray)")
    s.set_defaults(fn=_cmd_ingest)
    s = sub.add_parser("query", help="run a query and print the result rows (or groups)")
    common(s)
    s.add_argument("sql", help="e.g. \"SELECT id, caption WHERE labels = 'dog' LIMIT 10\"")
    s.add_argument("--params", default=None, help="JSON object of $parameters")
    s.add_argument("--explain", action="store_true", help="print the plan instead")
    s.set_defaults(fn=_cmd_query)
    s = sub.add_parser("index", help="create, list or optimize (rebuild on the current "
                       "commit) vector / full-text / scalar indexes")
    s.add_argument("action", choices=["create", "list", "optimize"])
    common(s)
    s.add_argument("tensor", nargs="?", default=None,
                   help="create: the tensor to index; optimize: only its indexes")
    s.add_argument("--kind", default="hnsw",
                   help="flat, ivf_flat, ivf_pq, hnsw, bm25, minmax or btree")
    s.add_argument("--metric", default="cosine", help="cosine, l2 or ip")
    s.set_defaults(fn=_cmd_index)
    s = sub.add_parser("serve", help="a local web page to look at (and edit) the dataset")
    common(s)
    s.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default loopback; any other prints a token)")
    s.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    s.add_argument("--read-only", action="store_true", help="no edits, no saved views")
    s.set_defaults(fn=_cmd_serve)
    args = p.parse_args(argv)
    try:
        return _run(args)
    except plane.PlaneError as e:
        print(f"plane: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
