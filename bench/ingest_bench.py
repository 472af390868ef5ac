# ruff: noqa: RUF001, RUF002, RUF003  (×, –, ≥ in printed tables are intended)
"""Ingestion benchmark (issue #5): Parquet -> tensorplane, vs a pyarrow read+write and Lance.

A synthetic Parquet "lake" is generated once: N rows of img (JPEG bytes, ~10 KB), label
(int64, 1000 classes), emb (fixed_size_list<float32>[128]) and txt (string, 50 chars), in
several files with ~1,000-row row groups (snappy), on local disk and uploaded to a moto S3
server that the benchmark starts itself. Every measurement runs in a FRESH subprocess (peak
RSS per run), repeated `--reps` times (median, min–max), for a local and an S3 source, always
writing to local disk:

  * tensorplane           `plane.create(dest).extend_from(parquet=src, commit="ingest")`
  * tensorplane Ray       `jobs.ingest.run(IngestConfig(...))` on `ray.init(num_cpus=2)`;
                          Ray startup (init + 2 warmed workers) is timed separately
  * pyarrow read+write    `ParquetFile.iter_batches` -> one `ParquetWriter` (the ceiling:
                          just reading and rewriting the bytes)
  * Lance                 `lance.write_dataset(dataset(src).scanner().to_reader(), dest)`
  * Deeplake 4            `deeplake.create(dest)`, typed columns (Image jpeg, Int64,
                          Array float32[128], Text), `ds.append` per pyarrow batch, `commit()`

plus, local source only, tensorplane and pyarrow in a "warm" process (after an untimed run on
the first file: lazy imports and allocator growth paid before the timer), and tensorplane
in-process at N/4 (2 of 8 files) and 2N (every file twice, as hard links) to show that its
peak RSS does not grow with the input. If tensorplane stays under 0.8x the pyarrow rows/s, one
in-process ingest is profiled (cProfile, top 15). Usage:

    .venv/bin/python bench/ingest_bench.py                 # 50,000 rows, 3 reps (~5 min)
    .venv/bin/python bench/ingest_bench.py --quick         # 4,000 rows, 1 rep smoke run
    .venv/bin/python bench/ingest_bench.py --rows 20000 --reps 5 --json out.json
    .venv/bin/python bench/ingest_bench.py --wait-for bench/loader_bench   # shared machine
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from _common import (  # noqa: E402
    command_line,
    encode_jpegs,
    env_line,
    fmt,
    md_table,
    rmtree,
    spread,
    synthetic_images,
    tree_stats,
)

IMG = 96            # image side (px); with the settings below JPEGs are ~10 KB
JPEG_LOW, JPEG_NOISE, JPEG_Q = 16, 14.0, 90
D = 128             # embedding width
TXT = 50            # text length (chars)
BUCKET = "ingest-bench"
BATCH_ROWS = 4096   # tensorplane's default batch_rows; also the pyarrow batch size
SYSTEMS = {"tp": "tensorplane", "ray": "tensorplane Ray (2 workers)",
           "pa": "pyarrow read+write", "lance": "Lance", "dl": "Deeplake",
           "tp_warm": "tensorplane, warm process", "pa_warm": "pyarrow read+write, warm process"}
FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing", "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3")


# ---- data -----------------------------------------------------------------------------------
def make_lake(src: str, rows: int, files: int, rg_rows: int, seed: int) -> dict[str, Any]:
    """Write `files` Parquet files (row groups of `rg_rows`) with `rows` rows in all."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(src, exist_ok=True)
    per = -(-rows // files)
    sizes: list[int] = []
    start = 0
    for f in range(files):
        k = min(per, rows - start)
        if k <= 0:
            break
        rng = np.random.default_rng(seed + f)
        jpegs = encode_jpegs(synthetic_images(k, IMG, IMG, seed=seed + f, low=JPEG_LOW,
                                              noise=JPEG_NOISE), quality=JPEG_Q)
        sizes += [len(j) for j in jpegs]
        letters = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz     ", np.uint8)
        txt = letters[rng.integers(0, len(letters), (k, TXT))].view(f"S{TXT}").ravel()
        tbl = pa.table({
            "img": pa.array(jpegs, pa.binary()),
            "label": pa.array(rng.integers(0, 1000, k), pa.int64()),
            "emb": pa.FixedSizeListArray.from_arrays(
                pa.array(rng.standard_normal(k * D, dtype=np.float32)), D),
            "txt": pa.array([t.decode() for t in txt], pa.string()),
        })
        pq.write_table(tbl, os.path.join(src, f"part-{f:03d}.parquet"), row_group_size=rg_rows)
        start += k
    paths = sorted(os.path.join(src, p) for p in os.listdir(src))
    md = [pq.ParquetFile(p).metadata for p in paths]
    return {"rows": start, "files": len(paths), "paths": paths,
            "bytes": sum(os.path.getsize(p) for p in paths),
            "row_groups": sum(m.num_row_groups for m in md),
            "jpeg_median": float(np.median(sizes)), "jpeg_mean": float(np.mean(sizes)),
            "jpeg_bytes": int(sum(sizes))}


class MotoS3:
    """A moto S3 server on 127.0.0.1 (free port) in this process, with one bucket."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        os.environ.update(FAKE_AWS_ENV)
        for k in UNSET_AWS_ENV:
            os.environ.pop(k, None)
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.options = {"endpoint_url": self.url, "key": "testing", "secret": "testing",
                        "client_kwargs": {"region_name": "us-east-1"}}
        import boto3
        import s3fs

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines
        boto3.client("s3", endpoint_url=self.url, region_name="us-east-1").create_bucket(
            Bucket=BUCKET)
        self.fs = s3fs.S3FileSystem(skip_instance_cache=True, **self.options)

    def upload(self, paths: list[str], prefix: str) -> str:
        for p in paths:
            self.fs.put_file(p, f"{BUCKET}/{prefix}/{os.path.basename(p)}")
        return f"s3://{BUCKET}/{prefix}/"

    def stop(self) -> None:
        self.server.stop()


# ---- one measurement, in a fresh process -----------------------------------------------------
def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _hwm_mb(pid: int) -> float:
    """Peak RSS (VmHWM) of a live process, MB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class TreeSampler(threading.Thread):
    """Samples the summed RSS of this process and all its descendants (Ray: raylet, GCS,
    workers) every `every` s; `peak_mb` is the largest sum seen."""

    def __init__(self, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.every, self.peak_mb = every, 0.0
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._halt.is_set():
            total = 0
            for p in [me, *me.children(recursive=True)]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            self._halt.wait(self.every)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        return self.peak_mb


def _source_files(src: Any, opts: dict[str, Any] | None) -> tuple[Any, list[str]]:
    """(fsspec filesystem or None for local, paths) of the Parquet files of `src`."""
    srcs = src if isinstance(src, list) else [src]
    if str(srcs[0]).startswith("s3://"):
        import s3fs

        fs = s3fs.S3FileSystem(**(opts or {}))
        paths = []
        for s in srcs:
            paths += sorted(p for p in fs.find(s[len("s3://"):]) if p.endswith(".parquet"))
        return fs, paths
    paths = []
    for s in srcs:
        paths += [os.path.join(s, p) for p in sorted(os.listdir(s)) if p.endswith(".parquet")] \
            if os.path.isdir(s) else [s]
    return None, paths


def _run_tp(spec: dict[str, Any]) -> dict[str, Any]:
    import plane

    def go() -> Any:
        ds = plane.create(spec["dest"])
        return ds.extend_from(parquet=spec["source"], progress=False, commit="ingest",
                              batch_rows=spec["batch_rows"],
                              storage_options=spec["options"])

    if spec.get("profile"):
        import cProfile
        import io
        import pstats

        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        go()
        prof.disable()
        secs = time.perf_counter() - t0
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(15)
        return {"seconds": secs, "profile": buf.getvalue()}
    t0 = time.perf_counter()
    rep = go()
    return {"seconds": time.perf_counter() - t0, "rows_written": rep.rows_written}


def _run_ray(spec: dict[str, Any]) -> dict[str, Any]:
    import ray

    from configs.ingest import IngestConfig
    from jobs.ingest import run

    sampler = TreeSampler()
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _temp_dir=spec["ray_tmp"])

    @ray.remote(num_cpus=1)
    def warm() -> int:  # start both workers and import what a task imports
        import jobs.ingest  # noqa: F401
        import plane.ingest._ingest  # noqa: F401

        time.sleep(0.5)
        return os.getpid()

    try:
        ray.get([warm.remote() for _ in range(2)])
        t_init = time.perf_counter() - t0
        rss0 = _rss_mb()
        sampler.start()
        cfg = IngestConfig(source=spec["source"], dest=spec["dest"], message="ingest",
                           row_groups_per_task=spec["rg_per_task"],
                           batch_rows=spec["batch_rows"],
                           source_storage_options=spec["options"] or {})
        t1 = time.perf_counter()
        out = run(cfg)
        secs = time.perf_counter() - t1
        tree_peak = sampler.stop()
        import psutil

        def is_worker(p: Any) -> bool:
            try:
                return bool((p.cmdline() or [""])[0].startswith("ray::"))
            except psutil.Error:  # exited (or a zombie) meanwhile
                return False

        workers = [p for p in psutil.Process().children(recursive=True) if is_worker(p)]
        worker_hwm = max((_hwm_mb(p.pid) for p in workers), default=0.0)
        return {"seconds": secs, "ray_init_s": t_init, "rows_written": out["rows_written"],
                "units": out["units"], "tree_peak_mb": tree_peak, "worker_peak_mb": worker_hwm,
                "rss_start_mb": rss0}
    finally:
        if sampler.is_alive():
            sampler.stop()
        ray.shutdown()


def _source_batches(spec: dict[str, Any]) -> Iterator[tuple[Any, Any]]:
    """(the file's Arrow schema, record batch) for every batch of every source file, read
    with `ParquetFile.iter_batches` (an s3fs file handle for S3 sources)."""
    import pyarrow.parquet as pq

    fs, paths = _source_files(spec["source"], spec["options"])
    for p in paths:
        fh = fs.open(p, "rb") if fs is not None else None
        try:
            pf = pq.ParquetFile(fh if fh is not None else p)
            for b in pf.iter_batches(batch_size=spec["batch_rows"]):
                yield pf.schema_arrow, b
        finally:
            if fh is not None:
                fh.close()


def _run_pa(spec: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    t0 = time.perf_counter()
    os.makedirs(spec["dest"])
    writer = None
    rows = 0
    for schema, b in _source_batches(spec):
        if writer is None:
            writer = pq.ParquetWriter(os.path.join(spec["dest"], "data.parquet"), schema)
        writer.write_batch(b)
        rows += b.num_rows
    assert writer is not None
    writer.close()
    return {"seconds": time.perf_counter() - t0, "rows_written": rows}


def _run_lance(spec: dict[str, Any]) -> dict[str, Any]:
    import lance
    import pyarrow.dataset as pds

    t0 = time.perf_counter()
    fs, paths = _source_files(spec["source"], spec["options"])
    src = pds.dataset(paths, format="parquet", filesystem=fs)
    lance.write_dataset(src.scanner().to_reader(), spec["dest"])
    return {"seconds": time.perf_counter() - t0}


def _run_deeplake(spec: dict[str, Any]) -> dict[str, Any]:
    import deeplake

    t0 = time.perf_counter()
    ds = deeplake.create("file://" + spec["dest"])
    ds.add_column("img", deeplake.types.Image(dtype="uint8", sample_compression="jpeg"))
    ds.add_column("label", deeplake.types.Int64())
    ds.add_column("emb", deeplake.types.Array("float32", shape=[D]))
    ds.add_column("txt", deeplake.types.Text())
    for _, b in _source_batches(spec):
        ds.append({"img": b.column("img").to_pylist(),
                   "label": b.column("label").to_numpy(),
                   "emb": b.column("emb").flatten().to_numpy().reshape(-1, D),
                   "txt": b.column("txt").to_pylist()})
    ds.commit()
    return {"seconds": time.perf_counter() - t0}


def _check(spec: dict[str, Any]) -> int:
    """Untimed: rows at the destination, and the first and last JPEG are the source's bytes."""
    import pyarrow.parquet as pq

    paths = spec["check_paths"]
    first = pq.ParquetFile(paths[0]).read_row_group(0, columns=["img"]).column(0)[0].as_py()
    last_pf = pq.ParquetFile(paths[-1])
    last = last_pf.read_row_group(last_pf.metadata.num_row_groups - 1,
                                  columns=["img"]).column(0)[-1].as_py()
    system = spec["system"].removesuffix("_warm")
    if system in ("tp", "ray"):
        import plane

        ds = plane.open(spec["dest"], read_only=True)
        n = len(ds)
        got = (ds["img"][0].bytes(), ds["img"][n - 1].bytes())
    elif system == "dl":
        import deeplake

        d = deeplake.open_read_only("file://" + spec["dest"])
        n = len(d)
        got = (bytes(d["img"].get_bytes(0)), bytes(d["img"].get_bytes(n - 1)))
    elif system == "lance":
        import lance

        d = lance.dataset(spec["dest"])
        n = d.count_rows()
        col = d.take([0, n - 1], columns=["img"]).column(0).to_pylist()
        got = (col[0], col[1])
    else:
        pf = pq.ParquetFile(os.path.join(spec["dest"], "data.parquet"))
        n = pf.metadata.num_rows
        tbl = pf.read(columns=["img"]).column(0)
        got = (tbl[0].as_py(), tbl[n - 1].as_py())
    if n != spec["rows"] or got != (first, last):
        raise AssertionError(f"{spec['system']}: {n} rows at the destination (expected "
                             f"{spec['rows']}), first/last image bytes equal: "
                             f"{got[0] == first}/{got[1] == last}")
    return n


def child(spec: dict[str, Any]) -> None:
    """Run one measurement; print `RESULT {json}` as the last line."""
    import pyarrow.parquet  # noqa: F401  (imported before the start RSS, for every system)

    if spec["system"] in ("tp", "ray", "tp_warm"):
        import plane  # noqa: F401
    rss0 = _rss_mb()
    base = spec["system"].removesuffix("_warm")
    fn = {"tp": _run_tp, "ray": _run_ray, "pa": _run_pa, "lance": _run_lance,
          "dl": _run_deeplake}[base]
    if base != spec["system"]:  # warm: the same work on the first file first, untimed
        scratch = spec["dest"] + "-warmup"
        fn({**spec, "source": spec["check_paths"][:1], "dest": scratch, "options": None})
        rmtree(scratch)
    out = fn(spec)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork+exec, so a child would report
    # at least the parent's RSS at the time it was spawned
    out["peak_rss_mb"] = _hwm_mb(os.getpid())
    out.setdefault("rss_start_mb", rss0)
    if not spec.get("profile"):
        out["rows_checked"] = _check(spec)
    print("RESULT " + json.dumps(out), flush=True)


def run_child(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    # every system starts with no pending writeback: the 0.5 GB that the previous run (or
    # the lake generation) wrote would otherwise be flushed to disk during the next one
    os.sync()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]),
        RAY_USAGE_STATS_ENABLED="0")
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child",
                           json.dumps(spec)], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"child {spec['system']} failed (rc {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return out


class Neighbours:
    """`--wait-for PATTERN`: on a shared machine, wait until no other process whose command
    line contains PATTERN runs before each measurement, and say whether one ran during it."""

    def __init__(self, pattern: str | None, max_wait: float) -> None:
        self.pattern, self.deadline = pattern, time.monotonic() + max_wait
        self.waited = 0.0

    def running(self) -> bool:
        if not self.pattern:
            return False
        import psutil

        me = psutil.Process()
        mine = {me.pid, *(p.pid for p in me.parents())}  # whoever started us names it too
        for p in psutil.process_iter(["pid", "cmdline"]):
            if p.info["pid"] not in mine and self.pattern in " ".join(p.info["cmdline"] or ()):
                return True
        return False

    def wait(self) -> None:
        t0 = time.monotonic()
        while self.running() and time.monotonic() < self.deadline:
            time.sleep(15)
        self.waited += time.monotonic() - t0

    def during(self, fn: Any) -> tuple[Any, bool]:
        """(fn(), whether a matching process was seen while it ran)."""
        if not self.pattern:
            return fn(), False
        seen = threading.Event()
        done = threading.Event()

        def poll() -> None:
            while not done.wait(1.0):
                if self.running():
                    seen.set()

        t = threading.Thread(target=poll, daemon=True)
        t.start()
        try:
            return fn(), seen.is_set() or self.running()
        finally:
            done.set()
            t.join()


# ---- the run ------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    root = tempfile.mkdtemp(prefix="ingest_bench_", dir=args.workdir)
    ray_tmp = tempfile.mkdtemp(prefix="ibray_", dir="/tmp")  # short: Ray's socket paths
    s3: MotoS3 | None = None
    res: dict[str, Any] = {"command": command_line(), "reps": args.reps, "rows": args.rows,
                           "files": args.files, "rg_rows": args.rg_rows,
                           "rg_per_task": args.rg_per_task, "results": {}, "sizes": {},
                           "errors": {}, "notes": [], "repeated": 0, "overlapped": 0}
    neighbours = Neighbours(args.wait_for, args.wait_max)
    try:
        src = os.path.join(root, "src")
        print(f"# generating {args.rows:,} rows in {args.files} files ...", file=sys.stderr)
        t0 = time.perf_counter()
        lake = make_lake(src, args.rows, args.files, args.rg_rows, args.seed)
        res["lake"] = {k: v for k, v in lake.items() if k != "paths"}
        res["gen_s"] = time.perf_counter() - t0
        print(f"# lake: {lake['rows']:,} rows, {lake['files']} files, {lake['row_groups']} row "
              f"groups, {lake['bytes'] / 1e6:,.1f} MB; JPEG median {lake['jpeg_median']:,.0f} B "
              f"(mean {lake['jpeg_mean']:,.0f} B) [{res['gen_s']:.0f} s]", file=sys.stderr)
        sources: dict[str, tuple[Any, dict[str, Any] | None]] = {"local": (src, None)}
        if not args.no_s3:
            s3 = MotoS3()
            t0 = time.perf_counter()
            sources["s3"] = (s3.upload(lake["paths"], "src"), s3.options)
            print(f"# uploaded to moto S3 at {s3.url} [{time.perf_counter() - t0:.0f} s]",
                  file=sys.stderr)
        systems = [s for s in args.systems.split(",") if s]

        def measure(system: str, source: Any, options: dict[str, Any] | None, rows: int,
                    check_paths: list[str], profile: bool = False) -> dict[str, Any]:
            dest = os.path.join(root, f"dest-{system}")
            rmtree(dest)
            spec = {"system": system, "source": source, "options": options, "dest": dest,
                    "rows": rows, "check_paths": check_paths, "batch_rows": BATCH_ROWS,
                    "rg_per_task": args.rg_per_task, "ray_tmp": ray_tmp, "profile": profile}
            for attempt in range(4):
                neighbours.wait()
                try:
                    out, overlapped = neighbours.during(lambda: run_child(spec, args.timeout))
                    out["dest_bytes"], out["dest_objects"] = tree_stats(dest)
                finally:
                    rmtree(dest)
                if not overlapped or attempt == 3:
                    break
                res["repeated"] += 1
                print(f"# {system}: a '{args.wait_for}' process ran meanwhile; repeating",
                      file=sys.stderr)
            if overlapped:
                res["overlapped"] += 1
            return out

        def record(key: str, out: dict[str, Any], nbytes: int, rows: int) -> None:
            o = res["results"].setdefault(key, {})
            for k, v in out.items():
                if isinstance(v, (int, float)):
                    o.setdefault(k, []).append(v)
            o.setdefault("rows_s", []).append(rows / out["seconds"])
            o.setdefault("MB_s", []).append(nbytes / 1e6 / out["seconds"])

        if "pa" in systems and "local" in sources:  # untimed: settle the machine after the
            measure("pa", *sources["local"], lake["rows"], lake["paths"])  # lake was written
        for rep in range(args.reps):
            # each rep starts with a different system: the first run after the lake is
            # written (or after the S3 phase) is slower for whichever system comes first
            order = systems[rep % len(systems):] + systems[:rep % len(systems)]
            for sname, (source, options) in sources.items():
                for system in order:
                    key = f"{sname}/{system}"
                    if key in res["errors"] or (sname != "local" and system.endswith("_warm")):
                        continue
                    try:
                        out = measure(system, source, options, lake["rows"], lake["paths"])
                    except Exception as e:
                        res["errors"][key] = f"{type(e).__name__}: {e}"
                        print(f"# ERROR {key}: {e}", file=sys.stderr)
                        continue
                    record(key, out, lake["bytes"], lake["rows"])
                    print(f"# rep {rep + 1}/{args.reps} {key}: {out['seconds']:.2f} s, peak RSS "
                          f"{out['peak_rss_mb']:.0f} MB [{time.perf_counter() - t_start:.0f} s]",
                          file=sys.stderr)

        # peak RSS vs input size: N/4 (a quarter of the files) and 2N (every file twice)
        if "tp" in systems and not args.no_scaling:
            quarter = lake["paths"][:max(1, len(lake["paths"]) // 4)]
            double = os.path.join(root, "src2x")
            os.makedirs(double)
            for p in lake["paths"]:
                for tag in ("a", "b"):
                    os.link(p, os.path.join(double, f"{tag}-{os.path.basename(p)}"))
            import pyarrow.parquet as pq

            q_rows = sum(pq.ParquetFile(p).metadata.num_rows for p in quarter)
            q_bytes = sum(os.path.getsize(p) for p in quarter)
            for label, source, rows, nbytes, check in (
                    ("N/4", quarter, q_rows, q_bytes, quarter),
                    ("2N", double, 2 * lake["rows"], 2 * lake["bytes"], lake["paths"])):
                try:
                    out = measure("tp", source, None, rows, check)
                except Exception as e:
                    res["errors"][f"scaling/{label}"] = f"{type(e).__name__}: {e}"
                    continue
                record(f"scaling/{label}", out, nbytes, rows)
                res["sizes"][label] = {"rows": rows, "bytes": nbytes}
                print(f"# scaling {label}: {rows:,} rows, peak RSS {out['peak_rss_mb']:.0f} MB",
                      file=sys.stderr)
            rmtree(double)
        res["sizes"]["N"] = {"rows": lake["rows"], "bytes": lake["bytes"]}

        # profile when the throughput target fails (or when asked)
        tp, pa_ = res["results"].get("local/tp"), res["results"].get("local/pa")
        fails = bool(tp and pa_ and spread(tp["rows_s"])["median"]
                     < 0.8 * spread(pa_["rows_s"])["median"])
        if args.profile or fails:
            try:
                out = measure("tp", src, None, lake["rows"], lake["paths"], profile=True)
                res["profile"] = out["profile"]
            except Exception as e:
                res["errors"]["profile"] = f"{type(e).__name__}: {e}"
    finally:
        if s3 is not None:
            s3.stop()
        rmtree(root)
        rmtree(ray_tmp)
    res["total_s"] = time.perf_counter() - t_start
    res["wait_for"], res["waited_s"] = args.wait_for, neighbours.waited
    return res


# ---- report -------------------------------------------------------------------------------
def _cell(o: dict[str, Any], key: str) -> str:
    v = o.get(key) or []
    if not v:
        return "–"
    if all(float(x).is_integer() and abs(x) < 1e6 for x in v) and min(v) == max(v):
        return f"{int(v[0]):,}"
    s = spread(v)
    if len(v) == 1 or s["min"] == s["max"]:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def _med(o: dict[str, Any] | None, key: str) -> float | None:
    v = (o or {}).get(key) or []
    return spread(v)["median"] if v else None


def report(res: dict[str, Any]) -> str:
    import pyarrow

    extra = {"pyarrow": pyarrow.__version__}
    for mod, name in (("lance", "pylance"), ("deeplake", "deeplake"), ("ray", "ray"),
                      ("moto", "moto"), ("s3fs", "s3fs")):
        try:
            extra[name] = __import__(mod).__version__
        except Exception:
            pass
    lake = res["lake"]
    R = res["results"]
    L: list[str] = [f"`{res['command']}`", ""]
    L.append(f"{lake['rows']:,} rows × (img: {IMG}×{IMG} JPEG q{JPEG_Q}, median "
             f"{lake['jpeg_median']:,.0f} B, mean {lake['jpeg_mean']:,.0f} B; label int64; emb "
             f"fixed_size_list<float32>[{D}]; txt string[{TXT}]) in {lake['files']} Parquet files "
             f"/ {lake['row_groups']} row groups of ≤{res['rg_rows']:,} rows (snappy), "
             f"{lake['bytes'] / 1e6:,.1f} MB; destination local disk; {res['reps']} reps, each "
             "in a fresh process (median, min–max in parentheses). "
             f"{env_line(extra)}. Total run {res['total_s']:.0f} s"
             f" ({res.get('waited_s', 0):.0f} s of it waiting for --wait-for).")
    L.append("")
    hdr = ["system", "rows/s", "MB/s", "seconds", "peak RSS MB", "RSS at start MB",
           "objects written", "MB written"]
    for sname, title in (("local", "Source: local Parquet files"),
                         ("s3", "Source: S3 (moto server on loopback, s3fs)")):
        keys = [k for k in R if k.startswith(f"{sname}/")]
        if not keys:
            continue
        L += [f"### {title}", ""]
        rows = []
        for k in keys:
            o = R[k]
            system = k.split("/", 1)[1]
            rss = _cell(o, "peak_rss_mb")
            if system == "ray":
                rss = (f"driver {rss}; largest worker {_cell(o, 'worker_peak_mb')}; "
                       f"tree Σ {_cell(o, 'tree_peak_mb')}")
            rows.append([SYSTEMS[system], _cell(o, "rows_s"), _cell(o, "MB_s"),
                         _cell(o, "seconds"), rss, _cell(o, "rss_start_mb"),
                         _cell(o, "dest_objects"), fmt(_med(o, "dest_bytes") / 1e6)])
        L += [md_table(hdr, rows), ""]
        ray_o = R.get(f"{sname}/ray")
        if ray_o:
            L.append(f"Ray startup (not in the times above): `ray.init(num_cpus=2)` + 2 warmed "
                     f"workers {_cell(ray_o, 'ray_init_s')} s; {int(_med(ray_o, 'units') or 0)} "
                     f"tasks of ≤{res['rg_per_task']} row groups.")
            L.append("")
    # scaling
    sc = [(lab, R.get(k)) for lab, k in (("N/4", "scaling/N/4"), ("N", "local/tp"),
                                         ("2N", "scaling/2N"))]
    sc = [(lab, o) for lab, o in sc if o]
    if sc:
        L += ["### tensorplane in-process peak RSS vs input size (local source)", ""]
        srow = []
        for lab, o in sc:
            size = res["sizes"].get(lab, {})
            srow.append([lab, f"{size.get('rows', 0):,}", fmt(size.get("bytes", 0) / 1e6),
                         _cell(o, "rows_s"), _cell(o, "peak_rss_mb"), _cell(o, "rss_start_mb"),
                         fmt(_med(o, "peak_rss_mb") - _med(o, "rss_start_mb"))])
        L += [md_table(["input", "rows", "input MB", "rows/s", "peak RSS MB",
                        "RSS at start MB", "peak − start MB"], srow), ""]
    # targets
    L += ["### Targets", ""]
    trows = []
    tp, pa_ = R.get("local/tp"), R.get("local/pa")
    a, b = _med(tp, "rows_s"), _med(pa_, "rows_s")
    if a and b:
        trows.append(["tensorplane in-process ≥ 0.8× pyarrow read+write rows/s (local)",
                      f"{a / b:.2f}×", "PASS" if a >= 0.8 * b else "FAIL"])
    peaks = [_med(o, "peak_rss_mb") or 0.0 for _, o in sc]
    if len(peaks) >= 2:
        ratio = max(peaks) / min(peaks)
        big = max(res["sizes"][lab]["bytes"] for lab, _ in sc if lab in res["sizes"]) / 2**20
        trows.append([f"peak RSS within 1.5× across input sizes ({', '.join(l_ for l_, _ in sc)})",
                      f"{ratio:.2f}× ({' / '.join(fmt(p) for p in peaks)} MB)",
                      "PASS" if ratio <= 1.5 else "FAIL"])
        trows.append(["peak RSS far below the input size (≤ 0.5× the largest input)",
                      f"{max(peaks):,.0f} MB vs {big:,.0f} MB input",
                      "PASS" if max(peaks) <= 0.5 * big else "FAIL"])
    a, b = _med(R.get("local/tp_warm"), "rows_s"), _med(R.get("local/pa_warm"), "rows_s")
    if a and b:
        trows.append(["(info) the same, both in a warm process (after an untimed first file)",
                      f"{a / b:.2f}×", "met" if a >= 0.8 * b else "not met"])
    L += [md_table(["target", "measured", ""], trows), ""]
    for t in trows:
        if t[2] in ("PASS", "FAIL"):
            L.append(f"{t[2]}: {t[0]} — {t[1]}")
    L.append("")
    L += ["Notes:", ""]
    L.append("* Times cover everything the user waits for: tensorplane `plane.create` + "
             "`extend_from(..., commit=\"ingest\")` (progress off, batch_rows "
             f"{BATCH_ROWS}); the Ray job's `jobs.ingest.run` (plan, tasks, coordinator commit; "
             "Ray startup excluded, reported separately); pyarrow open + `iter_batches("
             f"batch_size={BATCH_ROWS})` + `ParquetWriter.write_batch` into one file "
             "(snappy); Lance dataset discovery + `write_dataset` of the scanner's reader "
             "(default settings); Deeplake `create` + typed columns + `append` per pyarrow "
             "batch + `commit`. Before every measurement the parent calls `os.sync()`, so no "
             "system pays for flushing the previous one's output; one untimed pyarrow run "
             "follows the lake's generation, and each rep starts with a different system (the "
             "first run after a heavy write phase was ~1 s slower for whichever system came "
             "first). The untimed check "
             "afterwards compares row counts and the first and last JPEG with the source.")
    L.append("* MB/s = source Parquet bytes / seconds. Peak RSS = VmHWM of the fresh process "
             "(`ru_maxrss` is not used: Linux carries it over fork+exec from the parent), "
             "imports included; \"RSS at start\" is after importing pyarrow (and plane), "
             "before the run, so modules imported lazily during the run count in the peak. "
             "Ray: the driver's VmHWM (its start RSS is after `ray.init`), the largest Ray "
             "worker's VmHWM, and the sampled (every 0.2 s) sum of RSS over the driver's whole "
             "process tree (GCS, raylet, workers, coordinator actor).")
    L.append("* Local sources are read from a warm page cache (caches can't be dropped without "
             "root); pyarrow and Lance read local files natively, tensorplane through fsspec. "
             "S3 sources are read by every system through s3fs (pyarrow: `ParquetFile` on an "
             "s3fs file; Lance: `pyarrow.dataset` on the s3fs filesystem); the moto server runs "
             "in the benchmark's parent process and shares the 2 cores.")
    L.append("* \"warm process\": the child first runs the same system on the first file "
             "(untimed, output deleted), so imports done lazily during a run (pandas via "
             "`Array.to_numpy`, fsspec), allocator growth and first-touch page faults are "
             "paid before the timer starts; the peak RSS includes that first run.")
    L.append("* N/4 = the first quarter of the files; 2N = every file twice (hard links), one "
             "run each; N = the median of the table above.")
    if res.get("wait_for"):
        L.append(f"* `--wait-for {res['wait_for']}`: every measurement waited for such "
                 f"processes to end ({res['waited_s']:.0f} s waited in all); "
                 f"{res['repeated']} measurement(s) overlapped one and were repeated, "
                 f"{res['overlapped']} still overlapped after 3 repeats.")
    for msg in res["notes"]:
        L.append(f"* {msg}")
    for where, msg in res["errors"].items():
        L.append(f"* ERROR {where}: {msg.splitlines()[0] if msg else ''}")
    if res.get("profile"):
        L += ["", "Profile of one in-process local ingest (cProfile, top 15 by cumulative time):",
              "", "```", _trim_profile(res["profile"]), "```"]
    return "\n".join(L)


def _trim_profile(text: str) -> str:
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    start = next((i for i, ln in enumerate(lines) if "ncalls" in ln), 0)
    head = [ln for ln in lines[:start] if "function calls" in ln]
    return "\n".join(head + [ln.replace(REPO + "/", "") for ln in lines[start:]])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=50_000, help="rows (default 50,000)")
    ap.add_argument("--files", type=int, default=8, help="Parquet files (default 8)")
    ap.add_argument("--rg-rows", type=int, default=1000, help="rows per row group (1000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--rg-per-task", type=int, default=8,
                    help="Ray job row_groups_per_task (default 8, the job's default)")
    ap.add_argument("--systems", default="tp,ray,pa,lance,dl,tp_warm,pa_warm",
                    help="comma list of tp, ray, pa, lance, dl, tp_warm, pa_warm (default all; "
                         "*_warm: local source only, after an untimed run on the first file "
                         "in the same process)")
    ap.add_argument("--no-s3", action="store_true", help="local source only")
    ap.add_argument("--no-scaling", action="store_true", help="skip the N/4 and 2N runs")
    ap.add_argument("--profile", action="store_true",
                    help="always profile one in-process ingest (otherwise only if the "
                         "throughput target fails)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 4,000 rows, 1 rep")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600, help="seconds per child run")
    ap.add_argument("--workdir", default=None, help="parent of the temp dir (default $TMPDIR)")
    ap.add_argument("--wait-for", default=None, metavar="PATTERN",
                    help="shared machine: before each measurement wait while a process whose "
                         "command line contains PATTERN runs (repeat one that overlapped it)")
    ap.add_argument("--wait-max", type=float, default=2400,
                    help="give up waiting after this many seconds in all (default 2400)")
    ap.add_argument("--json", default=None, help="write all measurements to this JSON file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        try:
            child(json.loads(args.child))
        except Exception:
            traceback.print_exc()
            return 1
        return 0
    if args.quick:
        args.rows, args.reps = min(args.rows, 4000), 1
    # a kill (SIGTERM) unwinds like Ctrl-C, so the temp dirs and the S3 server are cleaned up
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    res = run(args)
    text = report(res)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
