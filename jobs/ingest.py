"""Ray job: ingest Parquet (or an image tree) from the lake into a dataset, fanned out.

    ray job submit --working-dir . -- python -m jobs.ingest \\
        --source s3://lake/images/ --dest s3://bucket/ds [--branch b] [--config configs/ingest.yaml]

The driver lists the input, plans the schema (inferred from the first file, or the dataset's),
and cuts the work into units — runs of row groups of one Parquet file, or runs of image files.
Each unit is a Ray task that converts its rows and writes their chunks straight to the
dataset's store, returning a small `plane.Fragment`. A version-coordinator actor then commits
every fragment once, in source order, with one commit message. Fragment ids are derived from
the unit's source identity (URL, size, etag/mtime, row groups, mapping), so a retried task
rewrites the same objects and a re-run skips units already committed: nothing is duplicated.
Tasks that fail on I/O are retried (`max_retries`); bad data follows `on_error`.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from configs.ingest import IngestConfig

__all__ = ["Unit", "plan", "run", "main"]


@dataclass(frozen=True)
class Unit:
    """One task's share: row groups [a, b) of a Parquet file, or image files [a, b)."""

    fragment_id: str
    url: str  # the Parquet file (parquet) or "" (images: `files`)
    a: int
    b: int
    files: tuple[str, ...] = ()


def _fid(*parts: Any) -> str:
    h = hashlib.blake2b(json.dumps(parts, sort_keys=True, default=str).encode(), digest_size=20)
    return f"ingest-{h.hexdigest()}"


def plan(cfg: IngestConfig, ds_metas: dict[str, Any]) -> tuple[list[Unit], dict[str, str],
                                                              dict[str, Any], list[str]]:
    """(units in source order, column -> tensor, tensor metas, tensors to create)."""
    from plane.ingest import image_files, parquet_schema, plan_images, plan_parquet

    opts = cfg.source_storage_options
    key = (cfg.columns, cfg.htypes, cfg.labels, cfg.batch_rows, cfg.verify)
    units: list[Unit] = []
    if cfg.format == "parquet":
        files, mapping, metas, created = plan_parquet(ds_metas, cfg.source, opts, cfg.columns,
                                                      cfg.htypes)
        for fs, f in files:
            try:
                _, _, groups = parquet_schema(fs, f)
            except Exception as e:  # a bad file: one unit that reports it under on_error
                groups = 1
                if cfg.on_error == "raise":
                    raise SystemExit(f"jobs.ingest: file {f.url} is not readable Parquet ({e})"
                                     ) from None
            step = cfg.row_groups_per_task
            for a in range(0, groups, step):
                b = min(groups, a + step)
                units.append(Unit(_fid(f.identity, a, b, key), f.url, a, b))
        metas = _with_all_class_names(files, mapping, metas)
    else:
        files = image_files(cfg.source, opts)
        mapping, metas, created = plan_images(ds_metas, files, cfg.labels, cfg.columns,
                                              cfg.htypes, str(cfg.source))
        urls = [f.url for _, f in files]
        ident = {f.url: f.identity for _, f in files}
        for a in range(0, len(urls), cfg.files_per_task):
            part = tuple(urls[a:a + cfg.files_per_task])
            units.append(Unit(_fid([ident[u] for u in part], key), "", a, a + len(part), part))
    return units, mapping, metas, created


def _with_all_class_names(files: Sequence[tuple[Any, Any]], mapping: dict[str, str],
                          metas: dict[str, Any]) -> dict[str, Any]:
    """Give every string-valued class_label tensor all its names up front (existing names
    first, then new ones sorted), so tasks agree on the ids without talking to each other."""
    import pyarrow as pa

    from plane.ingest import parquet_pieces, parquet_schema

    cols = [c for c, t in mapping.items() if metas[t].htype == "class_label"]
    if not cols:
        return metas
    seen: dict[str, set[str]] = {c: set() for c in cols}
    for fs, f in files:
        try:
            schema, _, _ = parquet_schema(fs, f)
            for c in cols:
                if c not in schema.names or pa.types.is_integer(schema.field(c).type):
                    continue
                for piece in parquet_pieces(fs, f, [c], 65536):
                    col = piece.batch.column(0)
                    if pa.types.is_dictionary(col.type):
                        col = col.dictionary_decode()
                    seen[c].update(str(x) for x in col.unique().drop_null().to_pylist())
        except Exception:
            continue  # unreadable files are reported by their task
    out = dict(metas)
    for c in cols:
        m = out[mapping[c]]
        have = list(m.class_names)
        out[mapping[c]] = m.evolve(class_names=tuple(have + sorted(seen[c] - set(have))))
    return out


def ingest_unit(cfg_json: str, unit: Unit, metas: dict[str, dict[str, Any]],
                mapping: dict[str, str]) -> dict[str, Any]:
    """A Ray task: convert one unit and write its chunks; returns the fragment and report."""
    from plane.core import FragmentWriter
    from plane.format import TensorMeta
    from plane.ingest import (
        FileReadError,
        IngestReport,
        Rejects,
        SourceFile,
        filesystem_for,
        guard_file,
        image_pieces,
        ingest_pieces,
        parquet_pieces,
    )
    from plane.storage import open_store

    cfg = IngestConfig.model_validate_json(cfg_json)
    store = open_store(cfg.dest, cfg.dest_storage_options)
    fw = FragmentWriter(store, unit.fragment_id,
                        {n: TensorMeta.from_dict(d) for n, d in metas.items()})
    report, rejects = IngestReport(), Rejects(cfg.on_error)
    opts = cfg.source_storage_options
    if unit.url:
        fs, _, _ = filesystem_for(unit.url, opts)
        report.files = 1
        pieces = parquet_pieces(fs, SourceFile(unit.url, 0, ""), list(mapping), cfg.batch_rows,
                                range(unit.a, unit.b))
        try:
            ingest_pieces(fw, guard_file(pieces, unit.url), mapping, cfg.on_error, cfg.verify,
                          rejects, report)
        except FileReadError as e:
            if cfg.on_error == "raise":
                raise
            report.files_skipped = 1
            rejects.add(unit.url, None, None, str(e))
            return {"fragment": None, "report": dataclasses.asdict(report),
                    "rejects": rejects.items, "skipped": rejects.count}
    else:
        files = [(filesystem_for(u, opts)[0], SourceFile(u, 0, "")) for u in unit.files]
        report.files = len(files)
        pieces = image_pieces(files, cfg.labels, cfg.batch_rows)
        ingest_pieces(fw, _offset(pieces, unit.a), mapping, cfg.on_error, cfg.verify, rejects,
                      report)
    frag = fw.finish()
    report.bytes_written = fw.bytes_written
    report.rows_written = frag.rows
    return {"fragment": frag, "report": dataclasses.asdict(report), "rejects": rejects.items,
            "skipped": rejects.count}


def _offset(pieces: Any, a: int) -> Any:
    for p in pieces:
        p.row0 += a
        yield p


def run(cfg: IngestConfig, task: Callable[..., dict[str, Any]] = ingest_unit) -> dict[str, Any]:
    """Run the ingest on the Ray cluster this process is connected to (or a local one).
    `task` is what each unit runs (`ingest_unit`, or a wrapper of it with its arguments)."""
    import ray

    import plane
    from actors.coordinator import start_coordinator
    from plane.core import DATASET_KEY, await_created
    from plane.ingest import IngestReport, Rejects, write_quarantine

    t0 = time.perf_counter()
    if not ray.is_initialized():
        ray.init()
    dest_opts = cfg.dest_storage_options or None
    store = plane.open_store(cfg.dest, dest_opts)
    if not store.exists(DATASET_KEY):
        try:
            plane.create(store)
        except plane.DatasetExistsError:
            if not await_created(store):
                raise
            # another process created it meanwhile: ingest into theirs
    ds = plane.open(store, version=cfg.branch)
    units, mapping, metas, created = plan(cfg, {n: t.meta for n, t in ds.tensors.items()})
    coord = start_coordinator(cfg.dest, cfg.branch, dest_opts)
    known = ray.get([coord.known.remote(u.fragment_id) for u in units])
    todo = [u for u, k in zip(units, known) if not k]
    remote = ray.remote(task).options(
        max_retries=cfg.max_retries, retry_exceptions=[OSError],
        num_cpus=cfg.num_cpus_per_task)
    cfg_json = cfg.model_dump_json()
    meta_dicts = {n: m.to_dict() for n, m in metas.items()}
    try:
        results = ray.get([remote.remote(cfg_json, u, meta_dicts, mapping) for u in todo])
    except ray.exceptions.RayTaskError as e:
        cause = e.cause if getattr(e, "cause", None) is not None else e
        raise SystemExit(f"jobs.ingest: a task failed, nothing was committed: {cause}"
                         ) from None
    report = IngestReport(tensors_created=list(created))
    rejects = Rejects(cfg.on_error)
    order = []
    for r in results:
        report.merge(IngestReport(**{k: v for k, v in r["report"].items()
                                     if k not in ("errors", "tensors_created")}))
        rejects.items.extend(r["rejects"])
        rejects.count += r["skipped"]
        frag = r["fragment"]
        if frag is not None and ray.get(coord.submit.remote(frag)):
            order.append(frag.fragment_id)
    if cfg.format == "parquet":  # a file's row groups may be cut into several units
        report.files = len({u.url for u in todo})
        report.files_skipped = len({u.url for u, r in zip(todo, results)
                                    if r["report"]["files_skipped"]})
    message = cfg.message or f"ingest {cfg.source}"
    commit = ray.get(coord.commit.remote(message, order,
                                         {n: meta_dicts[n] for n in created} or None))
    report.quarantine_key = write_quarantine(store, rejects)
    report.seconds = time.perf_counter() - t0
    out = {"commit": commit, "branch": cfg.branch, "units": len(units), "units_run": len(todo),
           "units_already_committed": len(units) - len(todo), "summary": str(report),
           **{k: v for k, v in dataclasses.asdict(report).items() if k != "errors"}}
    ray.kill(coord)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs.ingest",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--config", help="a YAML file of IngestConfig settings")
    p.add_argument("--source", nargs="+", help="file(s), director(ies) or glob(s)")
    p.add_argument("--dest")
    p.add_argument("--format", choices=["parquet", "images"])
    p.add_argument("--branch")
    p.add_argument("--map", nargs="*", metavar="COLUMN=TENSOR")
    p.add_argument("--htype", nargs="*", metavar="TENSOR=HTYPE")
    p.add_argument("--labels", choices=["folder"])
    p.add_argument("--on-error", choices=["raise", "skip", "quarantine"])
    p.add_argument("--verify", action="store_true", default=None)
    p.add_argument("--batch-rows", type=int)
    p.add_argument("--row-groups-per-task", type=int)
    p.add_argument("--files-per-task", type=int)
    p.add_argument("--max-retries", type=int)
    p.add_argument("--num-cpus-per-task", type=float)
    p.add_argument("-m", "--message")
    p.add_argument("--source-storage-options", type=json.loads,
                   help="JSON (or the environment variable PLANE_SOURCE_STORAGE_OPTIONS, "
                   "which keeps credentials off the command line)")
    p.add_argument("--dest-storage-options", type=json.loads,
                   help="JSON (or PLANE_STORAGE_OPTIONS)")
    return p


def _env_options(name: str) -> dict[str, Any] | None:
    """Storage options handed over in environment variable `name` (JSON), removed from the
    environment once read, so that processes this job starts do not inherit them."""
    text = os.environ.pop(name, None)
    if not text:
        return None
    try:
        out = json.loads(text)
    except json.JSONDecodeError as e:
        raise SystemExit(f"jobs.ingest: {name} is not valid JSON ({e})") from None
    if not isinstance(out, dict):
        raise SystemExit(f"jobs.ingest: {name} must be a JSON object")
    return out


def _pairs(items: list[str] | None, what: str) -> dict[str, str] | None:
    """NAME=VALUE flags as a dict (the same parsing as `plane ingest`)."""
    import plane
    from plane.cli import parse_pairs

    try:
        return parse_pairs(items, what)
    except plane.PlaneError as e:
        raise SystemExit(f"jobs.ingest: {e}") from None


def config_from_args(argv: Sequence[str] | None = None) -> IngestConfig:
    from plane.cli import DEST_OPTIONS_ENV, SOURCE_OPTIONS_ENV

    args = _parser().parse_args(argv)
    src = args.source[0] if args.source and len(args.source) == 1 else args.source
    env_src, env_dest = _env_options(SOURCE_OPTIONS_ENV), _env_options(DEST_OPTIONS_ENV)
    if args.source_storage_options is None:
        args.source_storage_options = env_src
    if args.dest_storage_options is None:
        args.dest_storage_options = env_dest
    over: dict[str, Any] = {
        "source": src, "dest": args.dest, "format": args.format, "branch": args.branch,
        "columns": _pairs(args.map, "--map"), "htypes": _pairs(args.htype, "--htype"),
        "labels": args.labels, "on_error": args.on_error, "verify": args.verify,
        "batch_rows": args.batch_rows, "row_groups_per_task": args.row_groups_per_task,
        "files_per_task": args.files_per_task, "max_retries": args.max_retries,
        "num_cpus_per_task": args.num_cpus_per_task, "message": args.message,
        "source_storage_options": args.source_storage_options,
        "dest_storage_options": args.dest_storage_options}
    if args.config:
        return IngestConfig.from_yaml(args.config, **over)
    return IngestConfig.model_validate({k: v for k, v in over.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> None:
    from pydantic import ValidationError

    try:
        cfg = config_from_args(argv)
    except ValidationError as e:
        raise SystemExit(f"jobs.ingest: bad configuration:\n{e}") from None
    import plane

    try:
        out = run(cfg)
    except plane.PlaneError as e:
        raise SystemExit(f"jobs.ingest: {e}") from None
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
