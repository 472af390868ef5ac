# ruff: noqa: RUF001, RUF002, RUF003  (×, –, µ in printed tables are intended)
"""Side-by-side data loaders: tensorplane vs memmap ceilings, LitData, Mosaic, WebDataset,
Parquet and Lance, on the same data, shuffle on, one epoch per fresh process.

Run: .venv/bin/python bench/loader_bench.py            (3 reps, batch 64 and 256, 0 and 2 workers)
     .venv/bin/python bench/loader_bench.py --quick    (1 rep, batch 64)
     .venv/bin/python bench/loader_bench.py --only tensorplane,litdata,memmap

Data (written once per format into a temp dir before timing): (A) 20k × 64×64×3 uint8 images
(`synthetic_images`, photo-like) + int64 label, (B) the same images as JPEG q90 bytes decoded to
uint8 HWC by each loader (simplejpeg everywhere), (C) 20k int32 token rows of 16..512 tokens.
The label is the row index, so every loader returns row ids (coverage and shuffle quality).
Mosaic Streaming runs with /tmp/mosaic-venv/bin/python and is skipped if that venv is missing.
A full run updates bench/RESULTS.md, bench/loader_bench.json and bench/loader_bench.png; a
partial run (--quick, --only, ...) writes bench/_out/loader_bench.json and .png only.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (
    command_line,
    encode_jpegs,
    env_line,
    fmt,
    md_table,
    rmtree,
    spread,
    synthetic_images,
    timed,
    tree_stats,
)

HERE = os.path.dirname(os.path.abspath(__file__))
MOSAIC_PY = "/tmp/mosaic-venv/bin/python"
MARK = "@@RESULT "
DATASETS = {"A": "raw uint8 64×64×3 images + label",
            "B": "JPEG q90 images, decoded to uint8 HWC by the loader",
            "C": "variable-length int32 token rows (16..512) + label"}
FORMATS = ("tensorplane", "litdata", "mosaic", "wds", "parquet", "lance")
#: name -> (table label, worker counts it runs with, format it reads, python: main|mosaic)
LOADERS: dict[str, tuple[str, tuple[int, ...], str | None, str]] = {
    "tensorplane": ("tensorplane ds.pytorch()", (0, 2), "tensorplane", "main"),
    "tensorplane-numpy": ("tensorplane ds.numpy()", (0,), "tensorplane", "main"),
    "tensorplane-proc": ("tensorplane ds.pytorch(worker_mode=\"process\")", (2,), "tensorplane",
                         "main"),
    "memmap": ("memmap + DataLoader, per sample (ceiling)", (0, 2), None, "main"),
    "gather": ("memmap, one gather per batch (physical ceiling)", (0,), None, "main"),
    "litdata": ("LitData StreamingDataLoader", (0, 2), "litdata", "main"),
    "mosaic": ("Mosaic Streaming + DataLoader", (0, 2), "mosaic", "mosaic"),
    "wds": ("WebDataset WebLoader", (0, 2), "wds", "main"),
    "parquet": ("Parquet: shuffled row groups + buffer", (0, 2), "parquet", "main"),
    "lance-torch": ("Lance LanceDataset, randomized batch sampler", (0, 2), "lance", "main"),
    "lance-take": ("Lance take(B random ids) per batch", (0, 2), "lance", "main"),
}
ORDER = tuple(LOADERS)
ROWS_PER_CHUNK = 320  # = _loader_peers.ROWS_PER_CHUNK (the parent does not import torch)
SECTION = ("<!-- loader_bench:begin -->", "<!-- loader_bench:end -->")
OLD_TAIL = ("the side-by-side benchmark against LitData, WebDataset,\nParquet, Lance and the "
            "memmap ceilings is `bench/loader_bench.py`, still open in issue #4):")
NEW_TAIL = ("the side-by-side benchmark against LitData, Mosaic,\nWebDataset, Parquet, Lance "
            "and the memmap ceilings, `bench/loader_bench.py`, is the next section):")


# ---- child side: one measurement per fresh process -----------------------------------------
def _maxrss_mb() -> float:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (self_kb + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024


def _rss_now_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:"))
    return kb / 1024


def _busy_s() -> float:
    """CPU-seconds every process on the machine has used (from /proc/stat)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _np(v: Any) -> np.ndarray:
    return (v.numpy() if hasattr(v, "numpy") else np.asarray(v)).astype(np.int64)


def _verify(root: str, data: str, x: Any, ids: np.ndarray) -> bool:
    """Check one delivered batch against the source rows."""
    import _loader_peers as P

    if data == "A":
        return bool(np.array_equal(np.asarray(x), P.npy(root, "images")[ids]))
    name = "jpeg" if data == "B" else "tok"
    flat, offs = P.npy(root, name + "_data"), P.npy(root, name + "_offs")
    rows = [flat[offs[i]:offs[i + 1]] for i in ids]
    if data == "B":
        return bool(np.array_equal(np.asarray(x), np.stack([P.decode_jpeg(r) for r in rows])))
    return all(np.array_equal(np.asarray(t), r) for t, r in zip(x, rows))


def run_one(spec: dict[str, Any]) -> dict[str, Any]:
    """One epoch of one loader; every metric of the protocol."""
    import warnings

    warnings.filterwarnings("ignore")
    import _loader_peers as P

    op = spec.get("op", "run")
    root, data = spec["root"], spec.get("data", "A")
    if op == "source":
        return write_source(root, int(spec["n"]))
    if op == "write":
        t, _ = timed(lambda: P.WRITERS[spec["fmt"]](root, data))
        return {"write_s": t}
    if op == "decode":
        return _decode_rate(root, int(spec["threads"]), bool(spec["keep"]))
    busy0, own0, w0 = _busy_s(), _cpu(), time.perf_counter()  # for `others_cpu`
    fn = P.ITERS[spec["loader"]]
    P.preimport(spec["loader"])
    batch, workers, seed = int(spec["batch"]), int(spec["workers"]), int(spec.get("seed", 0))
    n_rows = int(P.npy(root, "labels").shape[0])
    gc.collect()
    rss0 = _rss_now_mb()
    cpu0, t0 = _cpu(), time.perf_counter()
    ids: list[np.ndarray] = []
    ttfb = None
    ntok = 0
    first: Any = None
    last: Any = None
    for x, rid in fn(root, data, batch, workers, seed):
        if ttfb is None:
            ttfb = time.perf_counter() - t0
            first = (x, rid)
        ids.append(_np(rid))
        if data == "C":
            ntok += sum(int(t.shape[0]) for t in x)
        last = (x, rid)
    elapsed = time.perf_counter() - t0
    gc.collect()
    cpu = _cpu() - cpu0
    peak = _maxrss_mb()
    allids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    n = int(allids.shape[0])
    chunk = allids // P.ROWS_PER_CHUNK
    full = [b for b in ids if b.shape[0] == batch] or ids
    ok = first is not None and all(_verify(root, data, b[0], _np(b[1])) for b in (first, last))
    window = time.perf_counter() - w0  # import + epoch + checks: long enough for 10 ms ticks
    others = min(1.0, max(0.0, _busy_s() - busy0 - (_cpu() - own0)) /
                 (window * (os.cpu_count() or 1)))
    return {"samples": n, "seconds": elapsed, "sps": n / elapsed if elapsed else 0.0,
            "tokens_per_s": ntok / elapsed if data == "C" else None,
            "ttfb": ttfb, "rss_mb": peak, "rss_base_mb": rss0,
            "cpu_per_1k": cpu / max(n, 1) * 1000, "batches": len(ids), "others_cpu": others,
            "adj_same_chunk": float(np.mean(chunk[1:] == chunk[:-1])) if n > 1 else None,
            "distinct_per_batch": float(np.mean([len(np.unique(b // P.ROWS_PER_CHUNK))
                                                 for b in full])) if full else None,
            "coverage": float(np.unique(allids).shape[0] / n_rows),
            "duplicates": n - int(np.unique(allids).shape[0]), "verified": ok}


def _decode_rate(root: str, threads: int, keep: bool) -> dict[str, Any]:
    """simplejpeg decode of every JPEG (bytes already in memory) in `threads` threads. `keep`
    False: each output dropped as it comes (pure decode; the output buffer stays hot in cache).
    True: outputs kept and stacked per batch of 64, as a loader must hand them on."""
    from concurrent.futures import ThreadPoolExecutor

    import _loader_peers as P

    jpegs = P.jpeg_list(root)
    step = 64 if keep else 250

    def part(a: int) -> int:
        if keep:
            return len(np.stack([P.decode_jpeg(b) for b in jpegs[a:a + step]]))
        for b in jpegs[a:a + step]:
            P.decode_jpeg(b)
        return len(jpegs[a:a + step])

    cpu0, t0 = _cpu(), time.perf_counter()
    if threads == 1:
        done = sum(part(a) for a in range(0, len(jpegs), step))
    else:
        with ThreadPoolExecutor(threads) as pool:
            done = sum(pool.map(part, range(0, len(jpegs), step)))
    t = time.perf_counter() - t0
    assert done == len(jpegs)
    return {"sps": done / t, "seconds": t, "cpu_per_1k": (_cpu() - cpu0) / done * 1000}


# ---- parent side -----------------------------------------------------------------------------
def _child(spec: dict[str, Any], conn: Any, log: str) -> None:
    """Forkserver child: run one spec, send the result (stdout/stderr go to a log file)."""
    import multiprocessing as mp

    mp.set_start_method("fork", force=True)  # the platform default, as in a fresh interpreter
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        res = run_one(spec)
    except BaseException as e:  # report any failure as a row of the table
        res = {"error": re.sub(r"\s+", " ", f"{type(e).__name__}: {e}")[:160]}
    conn.send(res)
    conn.close()


_CTX: Any = None


def warm(root: str, loader: str, data: str) -> None:
    """Read every file a run will read, untimed, just before it: each run starts with its data
    in the page cache (on this VM, pages read minutes ago were often gone, which penalised
    whichever loader ran first after another dataset's runs)."""
    fmt = LOADERS[loader][2]
    sub = os.path.join(root, "npy") if fmt is None else os.path.join(root, fmt, data)
    for path in (sub, sub + ".parquet", sub + ".lance"):
        files = [path] if os.path.isfile(path) else \
            [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
        for f in files:
            with open(f, "rb", buffering=0) as fh:
                while fh.read(8 << 20):
                    pass


def spawn(spec: dict[str, Any], python: str = sys.executable, timeout: float = 300
          ) -> dict[str, Any]:
    """Run one spec in a fresh process; {'error': why} instead of raising.

    With this interpreter: a child of a multiprocessing forkserver that has only imported
    numpy and torch (saves ~1 s of torch import per run). Another interpreter (Mosaic's venv):
    a subprocess running `loader_bench.py --one SPEC`."""
    global _CTX
    log = os.path.join(spec["root"], "runs.log")
    if spec.get("op", "run") == "run":
        warm(spec["root"], spec["loader"], spec.get("data", "A"))
    if python != sys.executable:
        cmd = [python, os.path.abspath(__file__), "--one", json.dumps(spec)]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f} s"}
        with open(log, "a") as f:
            f.write(p.stdout + p.stderr)
        for line in p.stdout.splitlines():
            if line.startswith(MARK):
                return json.loads(line[len(MARK):])  # type: ignore[no-any-return]
        tail = [ln for ln in (p.stderr or p.stdout).strip().splitlines() if ln.strip()]
        return {"error": re.sub(r"\s+", " ", tail[-1] if tail else f"exit {p.returncode}")[:160]}
    if _CTX is None:
        import multiprocessing as mp

        _CTX = mp.get_context("forkserver")
        _CTX.set_forkserver_preload(["numpy", "torch", "_common"])
    r, w = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(target=_child, args=(spec, w, log))
    proc.start()
    w.close()
    try:
        if not r.poll(timeout):
            proc.kill()
            return {"error": f"timed out after {timeout:.0f} s"}
        return r.recv()  # type: ignore[no-any-return]
    except EOFError:
        return {"error": f"process died (exit {proc.join(5) or proc.exitcode})"}
    finally:
        proc.join(30)
        r.close()


def write_source(root: str, n: int) -> dict[str, Any]:
    """The source rows as .npy files (child side): images, labels, JPEG and token arrays."""
    os.makedirs(os.path.join(root, "npy"), exist_ok=True)
    t0 = time.perf_counter()
    imgs = synthetic_images(n)
    jpegs = encode_jpegs(imgs, 90)
    rng = np.random.default_rng(0)
    lens = rng.integers(16, 513, n)
    toks = rng.integers(0, 50_000, int(lens.sum()), dtype=np.int32)
    arrays = {"images": imgs, "labels": np.arange(n, dtype=np.int64),
              "jpeg_data": np.frombuffer(b"".join(jpegs), np.uint8),
              "jpeg_offs": np.concatenate([[0], np.cumsum([len(j) for j in jpegs])]),
              "tok_data": toks, "tok_offs": np.concatenate([[0], np.cumsum(lens)])}
    for k, v in arrays.items():
        np.save(os.path.join(root, "npy", k + ".npy"), v)
    return {"source_s": time.perf_counter() - t0,
            "jpeg_mean_bytes": float(np.mean([len(j) for j in jpegs])),
            "tokens_total": int(lens.sum())}


def prepare(root: str, n: int, formats: set[str]) -> dict[str, Any]:
    """Source .npy files, then every format, each written by a fresh process."""
    info = spawn({"op": "source", "root": root, "n": n}, timeout=600)
    if "error" in info:
        raise SystemExit(f"writing the source data failed: {info['error']}")
    info["formats"] = {}
    for fmt_ in FORMATS:
        if fmt_ not in formats:
            continue
        py = MOSAIC_PY if fmt_ == "mosaic" else sys.executable
        for data in DATASETS:
            if fmt_ == "mosaic" and not os.path.exists(py):
                r: dict[str, Any] = {"error": f"{MOSAIC_PY} missing (see module docstring)"}
            else:
                r = spawn({"op": "write", "fmt": fmt_, "root": root, "data": data}, py, 600)
            if "error" not in r:
                sub = os.path.join(root, fmt_, data)
                path = next(p for p in (sub, sub + ".parquet", sub + ".lance")
                            if os.path.exists(p))
                r["bytes"], r["files"] = tree_stats(path)
            info["formats"][f"{fmt_}/{data}"] = r
            print(f"  write {fmt_:12s} {data}: " + (r.get("error") or
                  f"{r['write_s']:.1f} s, {r['bytes'] / 1e6:.1f} MB, {r['files']} files"),
                  flush=True)
    return info


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    if not good:
        return {"error": runs[0]["error"] if runs else "not run"}
    out: dict[str, Any] = {"reps": len(good)}
    for k in ("sps", "ttfb", "rss_mb", "cpu_per_1k", "tokens_per_s"):
        vals = [r[k] for r in good if r.get(k) is not None]
        out[k] = spread(vals) if vals else None
    for k in ("adj_same_chunk", "distinct_per_batch", "coverage", "duplicates", "others_cpu"):
        vals = [r[k] for r in good if r.get(k) is not None]
        out[k] = statistics.median(vals) if vals else None
    out["verified"] = all(r["verified"] for r in good)
    if len(good) < len(runs):
        out["failed_reps"] = len(runs) - len(good)
    return out


def _rng(s: dict[str, Any] | None, digits: int = 3) -> str:
    if not s:
        return "–"
    if s["n"] == 1:
        return fmt(s["median"], digits)
    return f"{fmt(s['median'], digits)} ({fmt(s['min'], digits)}–{fmt(s['max'], digits)})"


def _med(s: dict[str, Any] | None) -> float | None:
    return s["median"] if s else None


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def tables(summ: dict[tuple[str, str, int, int], dict[str, Any]], decode: dict[str, Any],
           labels: dict[str, str]) -> tuple[str, list[tuple[str, bool | None, str]]]:
    """Markdown per dataset + the target lines (text, passed, measured)."""
    out: list[str] = []
    targets: list[tuple[str, bool | None, str]] = []
    ref_decode = max([_med(d.get("sps")) or 0.0 for k, d in decode.items() if "pure" in k] or [0])
    ref_kept = max([_med(d.get("sps")) or 0.0 for k, d in decode.items() if "kept" in k] or [0])
    for data, desc in DATASETS.items():
        keys = sorted({(b, w) for (_, d, b, w) in summ if d == data})
        if not keys:
            continue
        extra = {"A": [], "B": ["% of pure decode"], "C": ["tokens/s"]}[data]
        head = ["loader", "batch", "workers", "samples/s", "first batch s", "peak RSS MB",
                "CPU s/1k", "adj. same chunk", "chunks/batch", "coverage (dups)",
                "vs LitData", "vs memmap+DL", "others' CPU", *extra]
        rows = []
        for b, w in keys:
            lit = _med(summ.get(("litdata", data, b, w), {}).get("sps"))
            mm = _med(summ.get(("memmap", data, b, w), {}).get("sps"))
            for name in ORDER:
                s = summ.get((name, data, b, w))
                if s is None:
                    continue
                if "error" in s:
                    rows.append([labels[name], b, w, f"failed: {s['error']}",
                                 *["–"] * (len(head) - 4)])
                    continue
                sps = _med(s["sps"])
                cov = f"{s['coverage']:.3f} ({s['duplicates']})" + \
                    ("" if s["verified"] else " UNVERIFIED")
                row = [labels[name], b, w, _rng(s["sps"]), _rng(s["ttfb"]),
                       fmt(_med(s["rss_mb"])), fmt(_med(s["cpu_per_1k"])),
                       f"{s['adj_same_chunk']:.3f}", f"{s['distinct_per_batch']:.1f}", cov,
                       _ratio(sps, lit), _ratio(sps, mm),
                       f"{100 * s['others_cpu']:.0f}%" if s.get("others_cpu") is not None
                       else "–"]
                if data == "B":
                    row.append(f"{100 * sps / ref_decode:.0f}%" if ref_decode else "–")
                if data == "C":
                    row.append(_rng(s["tokens_per_s"]))
                rows.append(row)
        out.append(f"### ({data}) {desc}\n\n" + md_table(head, rows))
        tp = {k[2:]: v for k, v in summ.items() if k[0] == "tensorplane" and k[1] == data
              and "error" not in v}
        if data == "A":
            s, lit_s = tp.get((64, 0)), summ.get(("litdata", "A", 64, 0), {})
            if s and lit_s.get("sps"):
                r = _med(s["sps"]) / _med(lit_s["sps"])  # type: ignore[operator]
                adj = s["adj_same_chunk"]
                targets.append(("(A) tensorplane ≥ 2× LitData samples/s (batch 64, 0 workers) "
                                "with adjacent-same-chunk ≤ 0.15", r >= 2 and adj <= 0.15,
                                f"{r:.3f}×, adjacent-same-chunk {adj:.3f}"))
            for (b, w), s in sorted(tp.items()):
                mm_s = summ.get(("memmap", "A", b, w), {})
                if mm_s.get("sps"):
                    r = _med(s["sps"]) / _med(mm_s["sps"])  # type: ignore[operator]
                    targets.append((f"(A) tensorplane ≥ 0.5× memmap+DataLoader ceiling "
                                    f"(batch {b}, {w} workers)", r >= 0.5, f"{r:.3f}×"))
        if data == "B" and ref_decode:
            for (b, w), s in sorted(tp.items()):
                r = _med(s["sps"]) / ref_decode  # type: ignore[operator]
                kept = f" (of the kept-batches decode: {100 * r * ref_decode / ref_kept:.0f}%)" \
                    if ref_kept else ""
                targets.append((f"(B) tensorplane ≥ 90% of simplejpeg pure decode "
                                f"(batch {b}, {w} workers)", r >= 0.9, f"{100 * r:.1f}%{kept}"))
    return "\n\n".join(out), targets


def plot(summ: dict[tuple[str, str, int, int], dict[str, Any]], labels: dict[str, str],
         path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datas = [d for d in DATASETS if any(k[1] == d for k in summ)]
    names = [n for n in ORDER if any(k[0] == n for k in summ)]
    fig, axes = plt.subplots(len(datas), 1, figsize=(13, 4.2 * len(datas)), squeeze=False)
    colors = plt.get_cmap("tab20")
    for ax, data in zip(axes[:, 0], datas):
        keys = sorted({(b, w) for (_, d, b, w) in summ if d == data})
        width = 0.85 / len(names)
        for j, name in enumerate(names):
            xs, hs, lo, hi = [], [], [], []
            for i, (b, w) in enumerate(keys):
                s = summ.get((name, data, b, w))
                if s and "error" not in s:
                    m = s["sps"]
                    xs.append(i + (j - (len(names) - 1) / 2) * width)
                    hs.append(m["median"])
                    lo.append(m["median"] - m["min"])
                    hi.append(m["max"] - m["median"])
            if xs:
                ax.bar(xs, hs, width, yerr=[lo, hi], capsize=2, color=colors(j % 20),
                       label=labels[name])
        ax.set_xticks(range(len(keys)), [f"batch {b}, {w} workers" for b, w in keys])
        ax.set_yscale("log")
        ax.set_ylabel("samples/s (median, min–max)")
        ax.set_title(f"({data}) {DATASETS[data]}")
        ax.grid(axis="y", alpha=0.3)
    handles: dict[str, Any] = {}
    for ax in axes[:, 0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=4, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(path: str, section: str) -> None:
    with open(path) as f:
        text = f.read()
    text = text.replace(OLD_TAIL, NEW_TAIL)
    block = f"{SECTION[0]}\n{section.strip()}\n{SECTION[1]}"
    if SECTION[0] in text:
        text = re.sub(re.escape(SECTION[0]) + ".*?" + re.escape(SECTION[1]),
                      lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


def uniform_quality(n: int, batches: list[int], rows: int = ROWS_PER_CHUNK) -> str:
    """The shuffle-quality metrics of a perfectly uniform shuffle, for reference."""
    sizes = np.diff(np.append(np.arange(0, n, rows), n)).astype(np.float64)
    adj = float((sizes * (sizes - 1)).sum() / (n * (n - 1)))
    dist = [float(sum(1 - np.prod((n - s - np.arange(bs)) / (n - np.arange(bs))) for s in sizes))
            for bs in batches]
    per = ", ".join(f"{d:.1f} at batch {bs}" for d, bs in zip(dist, batches))
    return f"adjacent-same-chunk {adj:.3f}, chunks/batch {per}"


NOTES = """\
* Protocol: one epoch per run, every run in a fresh process: a child of a multiprocessing
  forkserver that has imported only numpy and torch (Mosaic: a `--one` subprocess of its own
  venv's python), with bytecode caching on (a module first imported during the epoch is not
  compiled from source in every run). The loader's library is imported before the timer
  starts; the timer starts before the loader (or dataset handle) is built, so samples/s
  includes the time to the first batch, and torch workers are started and joined inside it.
  Warm page cache: the files of each run are read (untimed) just before it. Shuffle on
  everywhere, seed 0 where the loader takes one. Medians over reps,
  interleaved (rep 1 of everything, then rep 2, ...). This 2-core VM was shared with other
  jobs during the run (load average above), so single figures move by up to ~2×: compare
  within a rep block and read the min–max ranges.
* Peak RSS = ru_maxrss of the process + ru_maxrss of its largest waited-for child (a
  DataLoader worker; forked workers' shared pages count twice), so it includes the
  ~{base:.0f} MB of Python + torch + the loader's library. CPU s/1k = user + system seconds of
  the process and its workers per 1,000 samples delivered (less sensitive to other jobs than
  samples/s). "others' CPU" = share of the machine's 2 cores used by other processes while
  the run's process was measuring (library import + epoch + checks; /proc/stat, 10 ms ticks;
  median over reps): how contended that figure was.
* Shuffle quality uses one chunk definition for every format: chunk = row id // 320 (a 320-row,
  3.9 MB chunk of A; 63 chunks). "adj. same chunk" = fraction of consecutive delivered samples
  from the same chunk; "chunks/batch" = mean distinct chunks per full batch. A uniform shuffle
  gives {uniform}. Coverage = distinct row ids / {n:,}; dups = rows delivered more than once.
  Every run checks its first and last batch against the source rows (UNVERIFIED marks a
  mismatch).
* tensorplane: A with `chunk_bytes=320*12288`, B `sample_compression="jpeg"` and C int32 ragged
  with the default 4 MiB chunks; labels are `class_label` (uint32); `ds.pytorch(batch_size=B,
  shuffle=True, num_workers=W, seed=0)`. With no transform its W workers are reader threads
  (batches of plain arrays are gathered inline; JPEG batches are read and decoded whole by one
  reader thread per CPU at 0 workers, W at W); the `worker_mode="process"` row makes them
  forked torch DataLoader processes, as a transform would. B is decoded by simplejpeg into one
  array per batch.
* memmap + DataLoader: map-style Dataset over .npy memmaps (B: a flat JPEG byte array +
  offsets, decoded in `__getitem__`), `DataLoader(shuffle=True, batch_size=B, num_workers=W)`.
  "one gather per batch" fancy-indexes the memmap with a permutation slice (B, C: a per-row
  slice loop), 0 workers only.
* LitData: `litdata.optimize(chunk_bytes="4MB")` (default workers), `StreamingDataset(shuffle=
  True, seed=0)` (+ `transform=` simplejpeg decode for B) and `StreamingDataLoader`.
* Mosaic Streaming 0.13: `MDSWriter(size_limit=4 MiB)`, `StreamingDataset(local=..., shuffle=True,
  batch_size=B)` (default py1e shuffle), torch DataLoader; decode in collate for B. Runs in
  /tmp/mosaic-venv (torch 2.13.0+cpu + mosaicml-streaming): PyPI's torchvision wheels are
  CUDA-linked and do not load next to CPU torch, and `import streaming` imports torchvision for
  its vision datasets only, so that subprocess puts a stub torchvision module in sys.modules.
* WebDataset: `ShardWriter(maxsize=4 MiB)` tar shards (.npy / .jpg + .cls),
  `WebDataset(urls, shardshuffle=100, seed=0).shuffle(1000).decode(...).to_tuple().batched(B)`
  through `WebLoader(batch_size=None)`; B decoded by a simplejpeg `handle_extension` decoder.
* Parquet (hand-written): `pq.write_table(row_group_size=320)`; a torch IterableDataset reads
  its share of the row groups in a seeded random order into a 3,200-row buffer (10 row groups)
  and draws random batches from it (swap-with-tail), then drains it shuffled.
* Lance 14: `lance.write_dataset` defaults (A: fixed-size-list<uint8> column so `lance.torch`
  makes tensors itself). "LanceDataset" = `lance.torch.data.LanceDataset(sampler=
  ShardedBatchSampler(0, 1, randomize=True))`: it shuffles the order of contiguous batches,
  not samples. "take" = `ds.take(ids)` of a permutation slice per batch. Lance is not fork-safe,
  so its 2-worker runs use `multiprocessing_context="spawn"` (worker start-up included; run at
  batch 64 only unless `--all-lance-workers`); with workers, LanceDataset yields every row once
  per worker (see dups).
* Pure decode: simplejpeg `decode_jpeg(colorspace="RGB")` of all JPEGs already in memory, in
  one thread and in a 2-thread pool (simplejpeg releases the GIL), a fresh process per rep,
  each output dropped as it comes; the "% of pure decode" column and the (B) targets use the
  faster of the two. Dropping each output reuses one cache-hot buffer, which no loader can do:
  the same decode with the outputs kept and stacked per batch of 64 (what a loader hands on)
  is shown for reference, and in parentheses in the (B) target lines.
"""


def main() -> None:
    # Runs cache bytecode, as an installed package does: where the environment turns that off
    # (PYTHONDONTWRITEBYTECODE), a module first imported inside an epoch would be compiled
    # from source in the timed region of every fresh process.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 rep, batch 64 only")
    ap.add_argument("--only", help="comma-separated loaders: " + ",".join(ORDER))
    ap.add_argument("--data", default="A,B,C", help="datasets, e.g. A,C")
    ap.add_argument("--reps", type=int, default=None)
    ap.add_argument("--batches", default=None, help="default 64,256 (--quick: 64)")
    ap.add_argument("--workers", default="0,2")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--workdir", help="keep the written data here (default: a temp dir)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per run")
    ap.add_argument("--all-lance-workers", action="store_true",
                    help="also run 2-worker Lance (spawn) at batch sizes other than 64")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(MARK + json.dumps(run_one(json.loads(a.one))), flush=True)
        return
    labels = {k: v[0] for k, v in LOADERS.items()}
    reps = a.reps or (1 if a.quick else 3)
    batches = [int(x) for x in (a.batches or ("64" if a.quick else "64,256")).split(",")]
    workers = [int(x) for x in a.workers.split(",")]
    loaders = [x for x in ORDER if not a.only or x in a.only.split(",")]
    datas = [d for d in DATASETS if d in a.data.split(",")]
    full = not (a.quick or a.only or a.reps or a.batches or a.data != "A,B,C"
                or a.workers != "0,2" or a.n != 20_000)
    out_dir = HERE if full else os.path.join(HERE, "_out")
    os.makedirs(out_dir, exist_ok=True)
    root = os.path.abspath(a.workdir or tempfile.mkdtemp(prefix="plane-loader-bench-"))
    os.makedirs(root, exist_ok=True)
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    try:
        print(f"writing {a.n:,} rows per dataset into {root}", flush=True)
        formats = {str(LOADERS[x][2]) for x in loaders}
        info = prepare(root, a.n, formats)
        decode: dict[str, Any] = {}
        if "B" in datas:
            for keep, th in ((False, 1), (False, 2), (True, 1), (True, 2)):
                rs = [spawn({"op": "decode", "root": root, "threads": th, "keep": keep})
                      for _ in range(reps)]
                good = [r for r in rs if "error" not in r]
                what = "kept, stacked per batch of 64" if keep else "dropped (pure decode)"
                decode[f"{th} thread{'s' if th > 1 else ''}, outputs {what}"] = {
                    "sps": spread([r["sps"] for r in good]) if good else None,
                    "cpu_per_1k": spread([r["cpu_per_1k"] for r in good]) if good else None}
            print("  pure decode: " + ", ".join(f"{k} {_rng(v['sps'])}/s"
                                                for k, v in decode.items()), flush=True)
        runs: dict[tuple[str, str, int, int], list[dict[str, Any]]] = defaultdict(list)
        for rep in range(reps):
            for data in datas:
                for b in batches:
                    for w in workers:
                        for name in loaders:
                            _, allowed, fmt_, py = LOADERS[name]
                            if w not in allowed:
                                continue
                            if name.startswith("lance") and w and b != 64 and \
                                    not a.all_lance_workers:
                                if rep == 0 and data == datas[0]:
                                    print(f"  skip {name} with {w} workers at batch {b}: spawn "
                                          "workers, measured at batch 64 only to keep the "
                                          "default run near 15 min (--all-lance-workers)")
                                continue
                            werr = info["formats"].get(f"{fmt_}/{data}", {}).get("error")
                            if werr:
                                r: dict[str, Any] = {"error": f"write failed: {werr}"}
                            else:
                                spec = {"loader": name, "root": root, "data": data,
                                        "batch": b, "workers": w, "seed": 0}
                                r = spawn(spec, MOSAIC_PY if py == "mosaic" else
                                          sys.executable, a.timeout)
                            runs[(name, data, b, w)].append(r)
                            print(f"  rep {rep + 1}/{reps} {data} b{b:<3} w{w} {name:18s} " +
                                  (f"ERROR {r['error']}" if "error" in r else
                                   f"{r['sps']:>10,.0f}/s  first {r['ttfb']:.2f}s  "
                                   f"rss {r['rss_mb']:.0f} MB  adj {r['adj_same_chunk']:.3f}  "
                                   f"cov {r['coverage']:.2f}  others {r['others_cpu']:.0%}"),
                                  flush=True)
    finally:
        if not a.workdir:
            rmtree(root)
    total = time.perf_counter() - t_start
    load = f"load average {load0[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    summ = {k: _summary(v) for k, v in runs.items()}
    md, targets = tables(summ, decode, labels)
    base = statistics.median([r["rss_base_mb"] for v in runs.values() for r in v
                              if "rss_base_mb" in r] or [0.0])
    dec_rows = [[k, _rng(v["sps"]), _rng(v["cpu_per_1k"])] for k, v in decode.items()]
    tgt = "\n".join(f"* {t} — {m} — {'PASS' if ok else 'FAIL'}" for t, ok, m in targets)
    wr = [[k, fmt(v.get("write_s")), fmt(v["bytes"] / 1e6) if "bytes" in v else "–",
           v.get("files", "–")] if "error" not in v else [k, f"failed: {v['error']}", "–", "–"]
          for k, v in info["formats"].items()]
    env = env_line(_versions())
    section = "\n\n".join(filter(None, [
        "## Loaders side by side (issue #4)",
        f"`{command_line()}`",
        f"{a.n:,} rows per dataset, shuffle on, {reps} rep(s) per setting (median, min–max in "
        f"parentheses), one epoch per fresh process. JPEG mean {info['jpeg_mean_bytes']:,.0f} "
        f"B/image; {info['tokens_total']:,} tokens in C. {env}. Total run {total:.0f} s, "
        f"{load} (2 cores, shared with other jobs). "
        "Plot: `bench/loader_bench.png`; every run: `bench/loader_bench.json`.",
        md,
        ("### simplejpeg pure decode (B's reference, same 2 cores)\n\n" +
         md_table(["decoder", "images/s", "CPU s/1k"], dec_rows)) if dec_rows else "",
        "### Targets\n\n" + tgt if tgt else "",
        "### Write (not timed in the loader figures)\n\n" +
        md_table(["format/dataset", "write s", "MB on disk", "files"], wr),
        "Notes:\n\n" + NOTES.format(base=base, n=a.n,
                                      uniform=uniform_quality(a.n, batches))]))
    print("\n" + section)
    js = {"command": command_line(), "env": env, "n": a.n, "reps": reps, "total_s": total,
          "loadavg": [load0[0], os.getloadavg()[0]],
          "rows_per_chunk_metric": ROWS_PER_CHUNK, "prepare": info, "decode": decode,
          "targets": [{"target": t, "pass": ok, "measured": m} for t, ok, m in targets],
          "results": [{"loader": k[0], "label": labels[k[0]], "data": k[1], "batch": k[2],
                       "workers": k[3], "summary": summ[k], "runs": v}
                      for k, v in runs.items()]}
    with open(os.path.join(out_dir, "loader_bench.json"), "w") as f:
        json.dump(js, f, indent=1)
    try:
        plot(summ, labels, os.path.join(out_dir, "loader_bench.png"))
    except ImportError as e:
        print(f"no plot: {e} (pip install matplotlib -c /tmp/torchpin.txt)")
    if full:
        write_results(os.path.join(HERE, "RESULTS.md"), section)
    print(f"\nwrote {out_dir}/loader_bench.json, .png" +
          (" and the RESULTS.md section" if full else ""))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("torch", "litdata", "webdataset", "pyarrow", "pylance", "simplejpeg"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


if __name__ == "__main__":
    main()
