# ruff: noqa: RUF001, RUF003  (×, –, µ in printed tables are intended)
"""Format benchmark: tensorplane vs pyarrow Parquet (default and ~1000-row row groups) vs Lance.

Same synthetic data for every system, generated once with a fixed seed:
N samples of a 64x64x3 uint8 image + a uint32 label + a 128-d float32 embedding ("raw"
variant), and a "jpeg" variant where every image is JPEG-encoded once (simplejpeg, quality 90)
and every system stores those exact bytes.

Measured side by side in one process run:
  * write MB/s          raw input bytes / seconds (create + write + flush/close, no fsync)
  * sequential read     samples/s for all columns of all rows, as numpy
                        (jpeg: raw bytes, and separately decoded with simplejpeg)
  * random read         p50/p99 latency of one sample (image + label) from a freshly
                        opened handle
  * bytes on disk, object (file) count; for tensorplane also chunk objects per chunk

Reads are warm-OS-page-cache reads (no root to drop caches): each system's data is read right
after it was written, and every read repetition opens a fresh handle (no in-process caches
carried over). Usage:

    .venv/bin/python bench/format_bench.py               # 20k samples, 3 reps
    .venv/bin/python bench/format_bench.py --quick       # 2k samples smoke run
    .venv/bin/python bench/format_bench.py --json out.json --dir /tmp/fb
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (
    command_line,
    encode_jpegs,
    env_line,
    fmt,
    md_table,
    pct,
    rmtree,
    spread,
    synthetic_images,
    timed,
    tree_stats,
)

H, W, C, D = 64, 64, 3, 128
IMG_BYTES = H * W * C
SEQ_BATCH = 1024      # tensorplane sequential read batch (rows)
WRITE_BATCH = 1000    # tensorplane extend batch (rows)
TUNED_RG = 1000       # Parquet "tuned" row-group size (rows)


# ---- data ---------------------------------------------------------------------------------
def make_data(n: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    images = synthetic_images(n, H, W, C, seed=seed)
    labels = rng.integers(0, 1000, n).astype(np.uint32)
    emb = rng.standard_normal((n, D), dtype=np.float32)
    jpegs = encode_jpegs(images, quality=90)
    jpeg_bytes = sum(len(j) for j in jpegs)
    return {"n": n, "images": images, "labels": labels, "emb": emb, "jpegs": jpegs,
            "raw_bytes": {"raw": images.nbytes + labels.nbytes + emb.nbytes,
                          "jpeg": jpeg_bytes + labels.nbytes + emb.nbytes},
            "jpeg_mean_bytes": jpeg_bytes / n}


def decode_all(jpegs: list[bytes]) -> np.ndarray:
    import simplejpeg

    out = np.empty((len(jpegs), H, W, C), np.uint8)
    for k, b in enumerate(jpegs):
        out[k] = simplejpeg.decode_jpeg(b, colorspace="RGB")
    return out


# ---- Arrow helpers (shared by Parquet and Lance) ----------------------------------------
def arrow_table(data: dict[str, Any], variant: str) -> Any:
    import pyarrow as pa

    n = data["n"]
    if variant == "raw":
        img = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(IMG_BYTES), n, [None, pa.py_buffer(data["images"])])
        first = ("image", img)
    else:
        first = ("jpeg", pa.array(data["jpegs"], pa.binary()))
    emb = pa.FixedSizeListArray.from_arrays(pa.array(data["emb"].reshape(-1)), D)
    return pa.table({first[0]: first[1], "label": pa.array(data["labels"], pa.uint32()),
                     "embedding": emb})


def _one_chunk(col: Any) -> Any:
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def arrow_images(col: Any) -> np.ndarray:
    """fixed_size_binary column -> (N, H, W, C) uint8 (zero-copy when one chunk)."""
    arr = _one_chunk(col)
    n = len(arr)
    return np.frombuffer(arr.buffers()[1], np.uint8, n * IMG_BYTES,
                         arr.offset * IMG_BYTES).reshape(n, H, W, C)


def arrow_image_row(col: Any, j: int) -> np.ndarray:
    arr = _one_chunk(col)
    return np.frombuffer(arr.buffers()[1], np.uint8, IMG_BYTES,
                         (arr.offset + j) * IMG_BYTES).reshape(H, W, C).copy()


def arrow_embedding(col: Any) -> np.ndarray:
    out: np.ndarray = _one_chunk(col).flatten().to_numpy().reshape(-1, D)
    return out


def arrow_columns(tbl: Any, variant: str) -> tuple[Any, Any, Any]:
    first = arrow_images(tbl.column("image")) if variant == "raw" \
        else tbl.column("jpeg").to_pylist()
    return first, tbl.column("label").to_numpy(), arrow_embedding(tbl.column("embedding"))


# ---- systems --------------------------------------------------------------------------------
class System:
    name = "?"
    label = "?"
    note = ""

    def path(self, root: str, variant: str) -> str:
        return os.path.join(root, variant, self.name)

    def write(self, data: dict[str, Any], path: str, variant: str) -> None:
        raise NotImplementedError

    def read_seq(self, path: str, variant: str) -> tuple[Any, Any, Any]:
        """All rows, all columns: (images ndarray | list of jpeg bytes, labels, embeddings)."""
        raise NotImplementedError

    def opener(self, path: str, variant: str) -> Callable[[int], tuple[Any, int]]:
        """Open a fresh handle; return f(i) -> (image ndarray | jpeg bytes, label)."""
        raise NotImplementedError

    def extra(self, path: str, variant: str) -> dict[str, Any]:
        return {}


class Tensorplane(System):
    name, label = "tensorplane", "tensorplane"
    note = "extend in batches of 1000 rows + flush; 4 MiB chunks (default)"

    def __init__(self) -> None:
        #: how the JPEG tensor is created; probe_jpeg() falls back to htype="binary" (the same
        #: bytes, stored as-is, no decode on read) when sample_compression="jpeg" can't be used
        self.jpeg_kwargs: dict[str, Any] = {"htype": "image", "sample_compression": "jpeg"}

    def probe_jpeg(self, jpeg: bytes) -> str | None:
        """Check jpeg tensors work in this build (untimed, in memory); else fall back."""
        import plane

        try:
            ds = plane.create(f"mem://format-bench-probe-{os.getpid()}", overwrite=True)
            ds.create_tensor("jpegs", **self.jpeg_kwargs)
            ds.extend({"jpegs": [jpeg]})
            ds.flush()
            assert ds["jpegs"][0].bytes() == jpeg
            return None
        except Exception as e:
            self.jpeg_kwargs = {"htype": "binary"}
            return (f"tensorplane JPEG variant stored with htype=\"binary\" (same bytes, "
                    f"as-is): `create_tensor(..., htype='image', sample_compression='jpeg')` "
                    f"failed in this build: {type(e).__name__}: {e}")

    def write(self, data: dict[str, Any], path: str, variant: str) -> None:
        import plane

        ds = plane.create(path, overwrite=True)
        img = "images" if variant == "raw" else "jpegs"
        if variant == "raw":
            ds.create_tensor("images", htype="image")
        else:
            ds.create_tensor("jpegs", **self.jpeg_kwargs)
        ds.create_tensor("labels", htype="class_label")
        ds.create_tensor("embedding", htype="embedding")
        src = data["images"] if variant == "raw" else data["jpegs"]
        for a in range(0, data["n"], WRITE_BATCH):
            b = min(data["n"], a + WRITE_BATCH)
            ds.extend({img: src[a:b], "labels": data["labels"][a:b],
                       "embedding": data["emb"][a:b]})
        ds.flush()

    def read_seq(self, path: str, variant: str) -> tuple[Any, Any, Any]:
        import plane

        ds = plane.open(path, read_only=True)
        n = len(ds)
        t_img = ds["images"] if variant == "raw" else ds["jpegs"]
        t_lab, t_emb = ds["labels"], ds["embedding"]
        imgs: list[Any] = []
        labs, embs = [], []
        for a in range(0, n, SEQ_BATCH):
            b = min(n, a + SEQ_BATCH)
            if variant == "raw":
                imgs.append(t_img[a:b].numpy())
            else:
                imgs.extend(t_img[a:b].bytes())
            labs.append(t_lab[a:b].numpy())
            embs.append(t_emb[a:b].numpy())
        # batches are what a loader consumes; joining them is only for verification, untimed
        return _Batches(imgs, variant), _Batches(labs), _Batches(embs)

    def read_seq_native(self, path: str) -> np.ndarray:
        """JPEG images decoded by tensorplane itself: ``ds["jpegs"][a:b].numpy()``."""
        import plane

        ds = plane.open(path, read_only=True)
        n = len(ds)
        t = ds["jpegs"]
        return np.concatenate([t[a:min(n, a + SEQ_BATCH)].numpy()
                               for a in range(0, n, SEQ_BATCH)])

    def opener(self, path: str, variant: str) -> Callable[[int], tuple[Any, int]]:
        import plane

        ds = plane.open(path, read_only=True)
        t_img = ds["images"] if variant == "raw" else ds["jpegs"]
        t_lab = ds["labels"]
        if variant == "raw":
            return lambda i: (t_img[i].numpy(), int(t_lab[i].numpy()))
        return lambda i: (t_img[i].bytes(), int(t_lab[i].numpy()))

    def extra(self, path: str, variant: str) -> dict[str, Any]:
        import plane

        ds = plane.open(path, read_only=True)
        logical = {k: int(t.num_chunks) for k, t in ds.tensors.items()}
        _, chunk_files = tree_stats(path, "chunks")
        _, total_files = tree_stats(path)
        nchunks = sum(logical.values())
        return {"chunks_per_tensor": logical, "chunks": nchunks, "chunk_objects": chunk_files,
                "other_objects": total_files - chunk_files,
                "chunk_objects_per_chunk": chunk_files / max(1, nchunks),
                "objects_per_chunk": total_files / max(1, nchunks),
                "chunk_share": chunk_files / max(1, total_files)}


class _Batches:
    """Marker for a list of per-batch results (verification joins them, outside timing)."""

    def __init__(self, parts: list[Any], variant: str = "raw") -> None:
        self.parts, self.variant = parts, variant

    def join(self) -> Any:
        if self.parts and isinstance(self.parts[0], (bytes, bytearray)):
            return list(self.parts)
        return np.concatenate(self.parts) if self.parts else np.zeros(0)


class Parquet(System):
    def __init__(self, row_group_size: int | None) -> None:
        self.rgs = row_group_size
        self.name = "parquet" if row_group_size is None else f"parquet_rg{row_group_size}"
        self.label = "Parquet (default)" if row_group_size is None \
            else f"Parquet ({row_group_size}-row groups)"
        self.note = ("pq.write_table defaults (snappy, row_group_size=None)"
                     if row_group_size is None else
                     f"pq.write_table(row_group_size={row_group_size}), otherwise defaults")

    def path(self, root: str, variant: str) -> str:
        return os.path.join(root, variant, self.name + ".parquet")

    def write(self, data: dict[str, Any], path: str, variant: str) -> None:
        import pyarrow.parquet as pq

        pq.write_table(arrow_table(data, variant), path, row_group_size=self.rgs)

    def read_seq(self, path: str, variant: str) -> tuple[Any, Any, Any]:
        import pyarrow.parquet as pq

        return arrow_columns(pq.read_table(path), variant)

    def opener(self, path: str, variant: str) -> Callable[[int], tuple[Any, int]]:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        md = pf.metadata
        starts = np.cumsum([0] + [md.row_group(g).num_rows for g in range(md.num_row_groups)])
        col = "image" if variant == "raw" else "jpeg"

        def get(i: int) -> tuple[Any, int]:
            g = int(np.searchsorted(starts, i, side="right")) - 1
            t = pf.read_row_group(g, columns=[col, "label"])
            j = i - int(starts[g])
            img = arrow_image_row(t.column(col), j) if variant == "raw" \
                else t.column(col)[j].as_py()
            return img, int(t.column("label")[j].as_py())
        return get

    def extra(self, path: str, variant: str) -> dict[str, Any]:
        import pyarrow.parquet as pq

        md = pq.ParquetFile(path).metadata
        rg = md.row_group(0)
        return {"row_groups": md.num_row_groups,
                "compression": rg.column(0).compression if rg.num_columns else None}


class Lance(System):
    name, label = "lance", "Lance"

    def __init__(self) -> None:
        import lance

        self.lance = lance
        self.note = (f"pylance {lance.__version__}: lance.write_dataset defaults "
                     "(max_rows_per_file=1Mi, max_rows_per_group=1024, default storage version)")

    def path(self, root: str, variant: str) -> str:
        return os.path.join(root, variant, "lance.lance")

    def write(self, data: dict[str, Any], path: str, variant: str) -> None:
        self.lance.write_dataset(arrow_table(data, variant), path)

    def read_seq(self, path: str, variant: str) -> tuple[Any, Any, Any]:
        return arrow_columns(self.lance.dataset(path).to_table(), variant)

    def opener(self, path: str, variant: str) -> Callable[[int], tuple[Any, int]]:
        ds = self.lance.dataset(path)
        col = "image" if variant == "raw" else "jpeg"

        def get(i: int) -> tuple[Any, int]:
            t = ds.take([i], columns=[col, "label"])
            img = arrow_image_row(t.column(col), 0) if variant == "raw" \
                else t.column(col)[0].as_py()
            return img, int(t.column("label")[0].as_py())
        return get

    def extra(self, path: str, variant: str) -> dict[str, Any]:
        ds = self.lance.dataset(path)
        out: dict[str, Any] = {"fragments": len(ds.get_fragments())}
        try:
            out["storage_version"] = str(ds.data_storage_version)
        except Exception:  # older/newer pylance
            pass
        return out


# ---- measurement ----------------------------------------------------------------------------
def verify_seq(got: tuple[Any, Any, Any], data: dict[str, Any], variant: str) -> None:
    imgs, labs, embs = (g.join() if isinstance(g, _Batches) else g for g in got)
    want = data["images"] if variant == "raw" else data["jpegs"]
    if variant == "raw":
        assert np.array_equal(np.asarray(imgs), want), "images differ"
    else:
        assert len(imgs) == len(want) and all(a == b for a, b in zip(imgs, want)), \
            "jpeg bytes differ"
    assert np.array_equal(np.asarray(labs).reshape(-1), data["labels"]), "labels differ"
    assert np.array_equal(np.asarray(embs), data["emb"]), "embeddings differ"


def verify_sample(got: tuple[Any, int], data: dict[str, Any], variant: str, i: int) -> None:
    img, lab = got
    if variant == "raw":
        assert np.array_equal(img, data["images"][i]), f"image {i} differs"
    else:
        assert bytes(img) == data["jpegs"][i], f"jpeg {i} differs"
    assert lab == int(data["labels"][i]), f"label {i} differs"


def decode_seq(got: tuple[Any, Any, Any]) -> np.ndarray:
    imgs = got[0].join() if isinstance(got[0], _Batches) else got[0]
    return decode_all(imgs)


def _run_variant(variant: str, systems: list[System], data: dict[str, Any], root: str,
                 rand_idx: np.ndarray, args: argparse.Namespace, res: dict[str, Any],
                 guard: Callable[[str, str, str, Callable[[], Any]], Any],
                 t_start: float) -> None:
    """Write, stat, sequential-read and random-read every system on one data variant."""
    out = res["results"].setdefault(variant, {})
    for s in systems:
        out[s.name] = {"write_s": [], "seq_s": [], "seq_dec_s": [], "rand_p50_us": [],
                       "rand_p99_us": [], "rand_n": [], "open_ms": []}
        os.makedirs(os.path.dirname(s.path(root, variant)), exist_ok=True)

    # writes: reps interleaved across systems; the last write is the one read below
    for rep in range(args.reps):
        for s in systems:
            p = s.path(root, variant)

            def w(s: System = s, p: str = p) -> None:
                rmtree(p)
                gc.collect()
                t, _ = timed(lambda: s.write(data, p, variant))
                out[s.name]["write_s"].append(t)
            guard(s.name, variant, "write", w)
        print(f"# {variant} write rep {rep + 1}/{args.reps} done "
              f"({time.perf_counter() - t_start:.0f}s)", file=sys.stderr)
    for s in systems:
        p = s.path(root, variant)

        def st(s: System = s, p: str = p) -> None:
            b, f = tree_stats(p)
            out[s.name].update(bytes=b, objects=f, **s.extra(p, variant))
        guard(s.name, variant, "stats", st)

    # one untimed warm-up read per system (pages hot, heap grown; also verifies the data),
    # then timed sequential reads, a fresh handle each rep
    for s in systems:
        p = s.path(root, variant)

        def warm(s: System = s, p: str = p) -> None:
            verify_seq(s.read_seq(p, variant), data, variant)
        guard(s.name, variant, "seq", warm)
    for rep in range(args.reps):
        for s in systems:
            p = s.path(root, variant)

            def r(s: System = s, p: str = p, rep: int = rep) -> None:
                gc.collect()
                t, got = timed(lambda: s.read_seq(p, variant))
                out[s.name]["seq_s"].append(t)
                del got
                if variant == "jpeg":
                    gc.collect()
                    t, dec = timed(lambda: decode_seq(s.read_seq(p, variant)))
                    out[s.name]["seq_dec_s"].append(t)
                    if rep == 0:
                        assert np.array_equal(dec[:50], decode_all(data["jpegs"][:50]))
                    if isinstance(s, Tensorplane) and s.jpeg_kwargs.get("htype") == "image":
                        del dec
                        gc.collect()
                        t, dec = timed(lambda: s.read_seq_native(p))
                        out[s.name].setdefault("seq_native_s", []).append(t)
                        if rep == 0:
                            assert np.array_equal(dec[:50], decode_all(data["jpegs"][:50]))
            guard(s.name, variant, "seq", r)
        print(f"# {variant} seq rep {rep + 1}/{args.reps} done "
              f"({time.perf_counter() - t_start:.0f}s)", file=sys.stderr)

    # random single-sample reads from a fresh handle, same indices for every system
    for rep in range(args.reps):
        for s in systems:
            p = s.path(root, variant)

            def rr(s: System = s, p: str = p, rep: int = rep) -> None:
                gc.collect()
                t_open, get = timed(lambda: s.opener(p, variant))
                lat: list[float] = []
                deadline = time.perf_counter() + args.random_budget
                for k, i in enumerate(rand_idx):
                    t0 = time.perf_counter()
                    got = get(int(i))
                    lat.append(time.perf_counter() - t0)
                    if rep == 0 and k < 20:
                        verify_sample(got, data, variant, int(i))
                    if time.perf_counter() > deadline and k >= 9:
                        break
                o = out[s.name]
                o["open_ms"].append(t_open * 1e3)
                o["rand_n"].append(len(lat))
                o["rand_p50_us"].append(pct(lat, 50) * 1e6)
                o["rand_p99_us"].append(pct(lat, 99) * 1e6)
            guard(s.name, variant, "random", rr)
        print(f"# {variant} random rep {rep + 1}/{args.reps} done "
              f"({time.perf_counter() - t_start:.0f}s)", file=sys.stderr)
    if not args.keep:
        for s in systems:
            rmtree(s.path(root, variant))


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    print(f"# generating {args.n} samples (seed {args.seed}) ...", file=sys.stderr)
    data = make_data(args.n, args.seed)
    n = data["n"]
    rng = np.random.default_rng(args.seed + 1)
    rand_idx = rng.integers(0, n, args.random)

    systems: list[System] = [Tensorplane(), Parquet(None), Parquet(TUNED_RG)]
    notes: list[str] = []
    try:
        msg = systems[0].probe_jpeg(data["jpegs"][0])  # type: ignore[attr-defined]
        if msg:
            notes.append(msg)
    except Exception as e:
        notes.append(f"tensorplane jpeg probe failed: {type(e).__name__}: {e}")
    try:
        systems.append(Lance())
    except Exception as e:  # lance is optional
        notes.append(f"Lance skipped: `import lance` failed ({type(e).__name__}: {e})")

    root = args.dir or tempfile.mkdtemp(prefix="format_bench_")
    os.makedirs(root, exist_ok=True)
    res: dict[str, Any] = {"n": n, "reps": args.reps, "random": args.random,
                           "random_budget_s": args.random_budget, "seed": args.seed,
                           "dir": root, "command": command_line(),
                           "raw_bytes": data["raw_bytes"],
                           "jpeg_mean_bytes": data["jpeg_mean_bytes"],
                           "systems": {s.name: {"label": s.label, "note": s.note}
                                       for s in systems},
                           "results": {}, "errors": {}, "notes": notes}
    # decode cost of one 64x64 JPEG with simplejpeg, for reading the jpeg tables
    j0 = data["jpegs"][:200]
    dec_t, _ = timed(lambda: decode_all(j0))
    res["jpeg_decode_us"] = dec_t / len(j0) * 1e6

    def guard(sysname: str, variant: str, phase: str, fn: Callable[[], Any]) -> Any:
        if (variant, sysname) in failed:
            return None
        try:
            return fn()
        except Exception as e:  # keep the other systems going
            failed.add((variant, sysname))
            msg = f"{type(e).__name__}: {e}"
            res["errors"][f"{variant}/{sysname}/{phase}"] = msg
            print(f"# ERROR {variant}/{sysname}/{phase}: {msg}", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
            return None

    failed: set[tuple[str, str]] = set()
    for variant in ("raw", "jpeg"):
        _run_variant(variant, systems, data, root, rand_idx, args, res, guard, t_start)

    if not args.keep and not args.dir:
        rmtree(root)
    # summaries
    for variant, out in res["results"].items():
        nbytes = data["raw_bytes"][variant]
        for o in out.values():
            o["write_MBps"] = [nbytes / 1e6 / t for t in o["write_s"]]
            o["seq_sps"] = [n / t for t in o["seq_s"]]
            o["seq_dec_sps"] = [n / t for t in o["seq_dec_s"]]
            o["seq_native_sps"] = [n / t for t in o.get("seq_native_s", [])]
    res["total_s"] = time.perf_counter() - t_start
    return res


# ---- report -------------------------------------------------------------------------------
def _med(o: dict[str, Any], key: str) -> float | None:
    v = o.get(key) or []
    return spread(v)["median"] if v else None


def _cell(o: dict[str, Any], key: str) -> str:
    v = o.get(key) or []
    if not v:
        return "–"
    s = spread(v)
    if len(v) == 1:
        return fmt(s["median"])
    return f"{fmt(s['median'])} ({fmt(s['min'])}–{fmt(s['max'])})"


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "–"
    return f"{a / b:.2f}×"


def report(res: dict[str, Any]) -> str:
    L: list[str] = []
    L.append(f"`{res['command']}`")
    L.append("")
    import pyarrow

    extra = {"pyarrow": pyarrow.__version__}
    try:
        import lance

        extra["pylance"] = lance.__version__
    except Exception:
        pass
    L.append(f"{res['n']:,} samples × (64×64×3 uint8 image + uint32 label + 128-d float32), "
             f"{res['reps']} reps (median, min–max in parentheses), {res['random']} random "
             f"reads/rep (stopped after {res['random_budget_s']:g} s per system and rep, at "
             f"least 10). {env_line(extra)}. Total run {res['total_s']:.0f} s.")
    L.append("")
    names = list(res["systems"])
    lab = {k: v["label"] for k, v in res["systems"].items()}
    for variant, title in (("raw", "Raw uint8 images (12,288 B/image)"),
                           ("jpeg", f"JPEG images (simplejpeg q90, mean "
                                    f"{res['jpeg_mean_bytes']:,.0f} B/image, same bytes in every "
                                    "system)")):
        out = res["results"].get(variant, {})
        L.append(f"### {title}")
        L.append("")
        L.append(f"Input {res['raw_bytes'][variant] / 1e6:,.1f} MB.")
        L.append("")
        hdr = ["system", "write MB/s", "seq read samples/s"]
        if variant == "jpeg":
            hdr += ["seq read+decode samples/s"]
        hdr += ["random p50 µs", "random p99 µs", "open ms", "MB on disk", "objects"]
        rows = []
        for k in names:
            o = out.get(k, {})
            row = [lab[k], _cell(o, "write_MBps"), _cell(o, "seq_sps")]
            if variant == "jpeg":
                row.append(_cell(o, "seq_dec_sps"))
            rn = o.get("rand_n") or []
            p50 = _cell(o, "rand_p50_us")
            if rn and min(rn) < res["random"]:
                p50 += f" [n={min(rn)}]"
            row += [p50, _cell(o, "rand_p99_us"), _cell(o, "open_ms"),
                    fmt(o["bytes"] / 1e6) if "bytes" in o else "–",
                    str(o.get("objects", "–"))]
            rows.append(row)
        L.append(md_table(hdr, rows))
        L.append("")
        tp = out.get("tensorplane", {})
        if "chunks" in tp:
            per = ", ".join(f"{t} {c}" for t, c in tp["chunks_per_tensor"].items())
            L.append(f"tensorplane: {tp['chunks']} chunks ({per}) in {tp['chunk_objects']} "
                     f"chunk objects = {tp['chunk_objects_per_chunk']:.2f} objects per chunk; "
                     f"+{tp['other_objects']} metadata objects "
                     f"({tp['objects_per_chunk']:.2f} objects per chunk overall).")
        if tp.get("seq_native_sps"):
            L.append("tensorplane sequential read decoded by tensorplane itself "
                     f"(`ds['jpegs'][a:b].numpy()`, batches of {SEQ_BATCH}): "
                     f"{_cell(tp, 'seq_native_sps')} samples/s (not in the ratios: the other "
                     "systems have no built-in decode).")
        for k in names:
            o = out.get(k, {})
            if "row_groups" in o:
                L.append(f"{lab[k]}: {o['row_groups']} row group(s), {o['compression']}.")
            if "fragments" in o:
                L.append(f"{lab[k]}: {o['fragments']} fragment(s), storage version "
                         f"{o.get('storage_version', '?')}.")
        L.append("")
        # ratios
        others = [k for k in names if k != "tensorplane"]
        if tp and others:
            L.append(f"Ratios, tensorplane vs … ({variant}): >1× means tensorplane is better "
                     "for speed metrics (random: their latency ÷ ours = speed-up); for size "
                     "and objects it is ours ÷ theirs (<1× = smaller).")
            L.append("")
            metrics = [("write MB/s", "write_MBps", False), ("seq read samples/s", "seq_sps",
                                                             False)]
            if variant == "jpeg":
                metrics.append(("seq read+decode samples/s", "seq_dec_sps", False))
            metrics += [("random p50 speed-up", "rand_p50_us", True),
                        ("random p99 speed-up", "rand_p99_us", True)]
            rrows = []
            for title_, key, inv in metrics:
                row = [title_]
                for k in others:
                    a, b = _med(tp, key), _med(out.get(k, {}), key)
                    row.append(_ratio(b, a) if inv else _ratio(a, b))
                rrows.append(row)
            for title_, key in (("bytes on disk", "bytes"), ("objects", "objects")):
                rrows.append([title_] + [_ratio(tp.get(key), out.get(k, {}).get(key))
                                         for k in others])
            L.append(md_table(["metric"] + [lab[k] for k in others], rrows))
            L.append("")
    # targets
    L.append("### Targets")
    L.append("")
    trows = []
    for variant in ("raw", "jpeg"):
        out = res["results"].get(variant, {})
        tp = out.get("tensorplane", {})
        for k in ("parquet", f"parquet_rg{TUNED_RG}"):
            o = out.get(k, {})
            a, b = _med(tp, "seq_sps"), _med(o, "seq_sps")
            if a and b:
                trows.append([variant, f"seq read ≥ {lab[k]}", _ratio(a, b),
                              "PASS" if a >= b else "FAIL"])
        for k in ("parquet", f"parquet_rg{TUNED_RG}"):
            o = out.get(k, {})
            a, b = _med(tp, "rand_p50_us"), _med(o, "rand_p50_us")
            if a and b:
                trows.append([variant, f"random p50 ≥ 5× faster than {lab[k]}", _ratio(b, a),
                              "PASS" if b / a >= 5 else "FAIL"])
        if "chunk_objects_per_chunk" in tp:
            v = tp["chunk_objects_per_chunk"]
            trows.append([variant, "objects ≤ 1 per chunk", f"{v:.2f} (+{tp['other_objects']} "
                          "metadata)", "PASS" if v <= 1 else "FAIL"])
    L.append(md_table(["data", "target", "measured", ""], trows))
    L.append("")
    L.append("Notes:")
    L.append("")
    L.append("* Warm OS page cache: caches cannot be dropped without root; each system's data "
             "is read right after it was written, after one untimed warm-up sequential read "
             "(which also checks every value against the source data). Every read repetition "
             "opens a fresh handle (`plane.open`, `pq.read_table`/`pq.ParquetFile`, "
             "`lance.dataset`), so no in-process cache is carried between repetitions. "
             "Writes are not fsync'ed (no system fsyncs by default).")
    L.append("* write MB/s = input bytes (images or JPEG bytes + labels + embeddings) / "
             "seconds for create + write + flush; Parquet/Lance include building the Arrow "
             "table from the numpy arrays.")
    L.append("* seq read = every row, all three columns, to numpy: tensorplane "
             f"`ds[t][a:b].numpy()` in batches of {SEQ_BATCH} rows (JPEG: `.bytes()`); "
             "Parquet `pq.read_table` and Lance `to_table()`, then images to one (N,64,64,3) "
             "uint8 array (zero-copy view of the Arrow buffer when it is one chunk), labels "
             "and embeddings to numpy (JPEG: `to_pylist()` of the bytes column). "
             "\"read+decode\" additionally decodes every JPEG with simplejpeg into an "
             "(N,64,64,3) array, same loop for every system. All results stay in memory "
             "until the timer stops (the same end state for every system).")
    L.append("* Medians over repetitions; the min–max spreads show the noise of this machine "
             "(memory first-touch and neighbours on a small VM move single reads by up to 2×).")
    L.append("* random = one sample (image + label) per call from a handle opened before "
             "timing (`open ms` is that open): tensorplane `ds['images'][i].numpy()` + "
             "`ds['labels'][i].numpy()` (JPEG: `.bytes()`, not decoded); Parquet: row group "
             "of i via `ParquetFile.read_row_group(g, columns=[image, label])`, take row; "
             "Lance `ds.take([i], columns=[image, label])`. JPEG random reads return the raw "
             f"bytes; decoding one 64×64 JPEG costs {res['jpeg_decode_us']:.0f} µs "
             "(simplejpeg) on top, for every system. [n=…] marks a system that hit the time "
             "budget before all random reads (p99 over few reads is rough).")
    for v in res["systems"].values():
        if v["note"]:
            L.append(f"* {v['label']}: {v['note']}.")
    for msg in res["notes"]:
        L.append(f"* {msg}")
    for where, msg in res["errors"].items():
        L.append(f"* ERROR {where}: {msg}")
    return "\n".join(L)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000, help="samples (default 20000)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    ap.add_argument("--random", type=int, default=1000, help="random single-sample reads")
    ap.add_argument("--random-budget", type=float, default=10.0,
                    help="seconds per system and rep for random reads (default 10)")
    ap.add_argument("--quick", action="store_true", help="smoke run: n=2000, 200 random reads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", default=None, help="data dir (default: a fresh temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the written data")
    ap.add_argument("--json", default=None, help="write all measurements to this JSON file")
    args = ap.parse_args(argv)
    if args.quick:
        args.n = min(args.n, 2000)
        args.random = min(args.random, 200)
        args.random_budget = min(args.random_budget, 3.0)
    res = run(args)
    text = report(res)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=str)
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
