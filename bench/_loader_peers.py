"""Writers and epoch iterators for every loader in loader_bench.py (one module, lazy imports).

Every iterator yields ``(x, ids)`` per batch: x is a uint8 (B, 64, 64, 3) torch tensor (datasets
A and B) or a list of 1-D int32 tensors (C); ids are the row ids (stored as the label). Needs
only numpy and torch at import, so the Mosaic subprocess (another venv) imports it too.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torch.utils.data as tud

H, W, C = 64, 64, 3
IMG_BYTES = H * W * C
ROWS_PER_CHUNK = 320  # the common chunk definition of the shuffle-quality metrics
CHUNK_BYTES = 4 << 20  # ~4 MB shards/chunks for the peers that have a size knob
WDS_SHUFFLE = 1000  # WebDataset .shuffle(1000)
PARQUET_BUFFER = 10 * ROWS_PER_CHUNK  # hand-written Parquet shuffle buffer: 10 row groups

Batches = Iterator[tuple[Any, Any]]


# ---- source data (.npy files written by loader_bench.prepare) ------------------------------
def npy(root: str, name: str) -> np.ndarray:
    return np.load(os.path.join(root, "npy", name + ".npy"), mmap_mode="r")


def jpeg_list(root: str) -> list[bytes]:
    flat, offs = np.asarray(npy(root, "jpeg_data")), npy(root, "jpeg_offs")
    return [flat[offs[i]:offs[i + 1]].tobytes() for i in range(offs.shape[0] - 1)]


def token_list(root: str) -> list[np.ndarray]:
    flat, offs = np.asarray(npy(root, "tok_data")), npy(root, "tok_offs")
    return [flat[offs[i]:offs[i + 1]] for i in range(offs.shape[0] - 1)]


def decode_jpeg(b: Any) -> np.ndarray:
    import simplejpeg

    out: np.ndarray = simplejpeg.decode_jpeg(b, colorspace="RGB")
    return out


def rows_of(root: str, data: str) -> tuple[str, Any]:
    """(payload column name, per-row payloads) of dataset A (array), B (jpeg bytes), C (tokens)."""
    if data == "A":
        return "image", np.asarray(npy(root, "images"))
    if data == "B":
        return "image", jpeg_list(root)
    return "tokens", token_list(root)


def _path(root: str, fmt: str, data: str, ext: str = "") -> str:
    return os.path.join(root, fmt, data + ext)


# ---- writers -------------------------------------------------------------------------------
def write_plane(root: str, data: str) -> None:
    import plane

    ds = plane.create(_path(root, "tensorplane", data))
    _, rows = rows_of(root, data)
    if data == "A":
        ds.create_tensor("images", htype="image", chunk_bytes=ROWS_PER_CHUNK * IMG_BYTES)
    elif data == "B":
        ds.create_tensor("images", htype="image", sample_compression="jpeg")
    else:
        ds.create_tensor("tokens", dtype="int32")
    ds.create_tensor("labels", htype="class_label")
    key = "tokens" if data == "C" else "images"
    for a in range(0, len(rows), 2000):
        ds.extend({key: rows[a:a + 2000], "labels": np.arange(a, min(a + 2000, len(rows)))})
    ds.flush()


class _LitItem:
    """litdata.optimize fn: row index -> sample dict (picklable, opens the source lazily)."""

    def __init__(self, root: str, data: str) -> None:
        self.root, self.data, self.rows = root, data, None

    def __call__(self, i: int) -> dict[str, Any]:
        if self.rows is None:
            self.rows = rows_of(self.root, self.data)[1]
        key = "tokens" if self.data == "C" else "image"
        return {key: self.rows[i], "label": i}


def write_litdata(root: str, data: str) -> None:
    import litdata

    n = npy(root, "labels").shape[0]
    litdata.optimize(fn=_LitItem(root, data), inputs=list(range(n)),
                     output_dir=_path(root, "litdata", data), chunk_bytes="4MB", verbose=False)


def write_mosaic(root: str, data: str) -> None:
    _stub_torchvision()
    from streaming import MDSWriter

    key, rows = rows_of(root, data)
    col = {"A": "ndarray:uint8:64,64,3", "B": "bytes", "C": "ndarray:int32"}[data]
    with MDSWriter(out=_path(root, "mosaic", data), columns={key: col, "label": "int64"},
                   size_limit=CHUNK_BYTES) as w:
        for i, r in enumerate(rows):
            w.write({key: r, "label": i})


def write_wds(root: str, data: str) -> None:
    import webdataset as wds

    d = _path(root, "wds", data)
    os.makedirs(d, exist_ok=True)
    ext = {"A": "npy", "B": "jpg", "C": "npy"}[data]
    _, rows = rows_of(root, data)
    with wds.ShardWriter(os.path.join(d, "shard-%05d.tar"), maxsize=CHUNK_BYTES,
                         verbose=0) as w:
        for i, r in enumerate(rows):
            w.write({"__key__": f"{i:06d}", ext: r, "cls": i})


def _arrow_table(root: str, data: str) -> Any:
    import pyarrow as pa

    key, rows = rows_of(root, data)
    n = len(rows)
    labels = pa.array(np.arange(n, dtype=np.int64))
    if data == "A":
        buf = pa.py_buffer(np.ascontiguousarray(rows).reshape(-1))
        col = pa.Array.from_buffers(pa.binary(IMG_BYTES), n, [None, buf])
    elif data == "B":
        col = pa.array(rows, pa.binary())
    else:
        offs = np.asarray(npy(root, "tok_offs")).astype(np.int32)
        col = pa.ListArray.from_arrays(pa.array(offs), pa.array(np.asarray(npy(root, "tok_data"))))
    return pa.table({key: col, "label": labels})


def write_parquet(root: str, data: str) -> None:
    import pyarrow.parquet as pq

    os.makedirs(os.path.join(root, "parquet"), exist_ok=True)
    pq.write_table(_arrow_table(root, data), _path(root, "parquet", data, ".parquet"),
                   row_group_size=ROWS_PER_CHUNK)


def write_lance(root: str, data: str) -> None:
    import lance
    import pyarrow as pa

    t = _arrow_table(root, data)
    if data == "A":  # fixed-size list of uint8: what lance.torch turns into tensors itself
        raw = t.column("image").combine_chunks()
        vals = pa.array(np.frombuffer(raw.buffers()[1], np.uint8, len(raw) * IMG_BYTES))
        t = t.set_column(0, "image", pa.FixedSizeListArray.from_arrays(vals, IMG_BYTES))
    lance.write_dataset(t, _path(root, "lance", data, ".lance"))


WRITERS: dict[str, Callable[[str, str], None]] = {
    "tensorplane": write_plane, "litdata": write_litdata, "mosaic": write_mosaic,
    "wds": write_wds, "parquet": write_parquet, "lance": write_lance}


# ---- helpers shared by iterators -----------------------------------------------------------
def _stub_torchvision() -> None:
    """Mosaic's package __init__ imports torchvision (for streaming.vision only). PyPI's
    torchvision wheels are CUDA-linked and cannot load next to CPU torch, so the Mosaic
    subprocess gets a stub with the two names that import needs; MDS reading never uses it."""
    import importlib.machinery
    import sys
    import types

    if "torchvision" in sys.modules:
        return
    names = ("torchvision", "torchvision.datasets", "torchvision.transforms",
             "torchvision.transforms.functional")
    mods = {}
    for name in names:
        m = types.ModuleType(name)
        m.__spec__ = importlib.machinery.ModuleSpec(name, None)
        mods[name] = m
    mods["torchvision.datasets"].VisionDataset = type("VisionDataset", (), {})  # type: ignore[attr-defined]
    mods["torchvision.transforms.functional"].to_tensor = lambda x: x  # type: ignore[attr-defined]
    for parent, child in itertools.pairwise(names):
        setattr(mods[parent], child.rsplit(".", 1)[1], mods[child])
    sys.modules.update(mods)


def _collate(data: str) -> Callable[[list[Any]], tuple[Any, Any]]:
    """Collate (payload, id) samples: stack images (decode JPEG first for B), list for tokens."""
    if data == "A":
        return lambda s: (torch.from_numpy(np.stack([x for x, _ in s])),
                          torch.tensor([i for _, i in s]))
    if data == "B":
        return lambda s: (torch.from_numpy(np.stack([decode_jpeg(x) for x, _ in s])),
                          torch.tensor([i for _, i in s]))
    return lambda s: ([torch.from_numpy(np.asarray(x)) for x, _ in s],
                      torch.tensor([i for _, i in s]))


def _loader_kw(workers: int, context: str | None = None) -> dict[str, Any]:
    kw: dict[str, Any] = {"num_workers": workers}
    if workers and context:
        kw["multiprocessing_context"] = context
    return kw


# ---- 1. numpy memmap + torch DataLoader (the ceiling) ---------------------------------------
class MemmapDataset(tud.Dataset):  # type: ignore[type-arg]
    """Map-style dataset over .npy memmaps: one row per __getitem__ (decoded for B)."""

    def __init__(self, root: str, data: str) -> None:
        self.root, self.data = root, data
        self.n = int(npy(root, "labels").shape[0])
        self.a: Any = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[Any, int]:
        if self.a is None:  # opened lazily: in the worker process
            self.a = {"A": (npy(self.root, "images"),),
                      "B": (npy(self.root, "jpeg_data"), npy(self.root, "jpeg_offs")),
                      "C": (npy(self.root, "tok_data"), npy(self.root, "tok_offs"))}[self.data]
        if self.data == "A":
            return np.array(self.a[0][i]), i
        flat, offs = self.a
        row = flat[offs[i]:offs[i + 1]]
        return (decode_jpeg(row) if self.data == "B" else np.array(row)), i


def iter_memmap(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    ds = MemmapDataset(root, data)
    gen = torch.Generator().manual_seed(seed)
    coll = _collate("A" if data == "B" else data)  # B is decoded in __getitem__
    yield from tud.DataLoader(ds, batch_size=batch, shuffle=True, collate_fn=coll,
                              generator=gen, **_loader_kw(workers))


def iter_gather(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    """The physical ceiling: one fancy-index gather per batch from a permutation (0 workers)."""
    n = int(npy(root, "labels").shape[0])
    perm = np.random.default_rng(seed).permutation(n)
    if data == "A":
        imgs = npy(root, "images")
        for a in range(0, n, batch):
            idx = perm[a:a + batch]
            yield torch.from_numpy(imgs[idx]), torch.from_numpy(idx)
        return
    name = "jpeg" if data == "B" else "tok"
    flat, offs = npy(root, name + "_data"), np.asarray(npy(root, name + "_offs"))
    for a in range(0, n, batch):
        idx = perm[a:a + batch]
        rows = [flat[offs[i]:offs[i + 1]] for i in idx]
        if data == "B":
            yield torch.from_numpy(np.stack([decode_jpeg(r) for r in rows])), \
                torch.from_numpy(idx)
        else:
            yield [torch.from_numpy(np.array(r)) for r in rows], torch.from_numpy(idx)


# ---- tensorplane ---------------------------------------------------------------------------
def _plane_iter(root: str, data: str, batch: int, workers: int, seed: int, kind: str,
                mode: str = "auto") -> Batches:
    import plane

    ds = plane.open(_path(root, "tensorplane", data), read_only=True)
    key = "tokens" if data == "C" else "images"
    loader = (ds.numpy(batch_size=batch, shuffle=True, seed=seed) if kind == "numpy" else
              ds.pytorch(batch_size=batch, shuffle=True, num_workers=workers, seed=seed,
                         worker_mode=mode))
    for b in loader:
        yield b[key], b["labels"]


def iter_plane(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    return _plane_iter(root, data, batch, workers, seed, "torch")


def iter_plane_numpy(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    return _plane_iter(root, data, batch, workers, seed, "numpy")


def iter_plane_proc(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    return _plane_iter(root, data, batch, workers, seed, "torch", "process")


# ---- 2. LitData ----------------------------------------------------------------------------
def _lit_decode(item: dict[str, Any]) -> dict[str, Any]:
    item["image"] = decode_jpeg(item["image"])
    return item


def iter_litdata(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    from litdata import StreamingDataLoader, StreamingDataset

    ds = StreamingDataset(_path(root, "litdata", data), shuffle=True, seed=seed,
                          transform=_lit_decode if data == "B" else None)
    key = "tokens" if data == "C" else "image"
    coll = _collate(data if data != "B" else "A")  # B is decoded by the transform
    dl = StreamingDataLoader(ds, batch_size=batch, num_workers=workers,
                             collate_fn=lambda s: coll([(r[key], r["label"]) for r in s]))
    yield from dl


# ---- 3. MosaicML Streaming (runs in /tmp/mosaic-venv) ---------------------------------------
def iter_mosaic(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    _stub_torchvision()
    from streaming import StreamingDataset
    from streaming.base.util import clean_stale_shared_memory

    clean_stale_shared_memory()
    ds = StreamingDataset(local=_path(root, "mosaic", data), shuffle=True, shuffle_seed=seed,
                          batch_size=batch)
    key = "tokens" if data == "C" else "image"
    coll = _collate(data)
    dl = tud.DataLoader(ds, batch_size=batch, num_workers=workers,
                        collate_fn=lambda s: coll([(r[key], int(r["label"])) for r in s]))
    yield from dl


# ---- 4. WebDataset -------------------------------------------------------------------------
def _wds_collate(data: str) -> Callable[[list[Any]], tuple[Any, Any]]:
    if data == "C":
        return lambda s: ([x for x, _ in s], np.asarray([i for _, i in s]))
    return lambda s: (np.stack([x for x, _ in s]), np.asarray([i for _, i in s]))


def iter_wds(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    import glob

    import webdataset as wds

    urls = sorted(glob.glob(os.path.join(_path(root, "wds", data), "shard-*.tar")))
    ext = "jpg" if data == "B" else "npy"
    ds = wds.WebDataset(urls, shardshuffle=100, seed=seed, empty_check=False).shuffle(WDS_SHUFFLE)
    ds = ds.decode(wds.handle_extension("jpg", decode_jpeg)) if data == "B" else ds.decode()
    ds = ds.to_tuple(ext, "cls").batched(batch, collation_fn=_wds_collate(data))
    for x, ids in wds.WebLoader(ds, batch_size=None, **_loader_kw(workers)):
        if data == "C":
            yield [torch.as_tensor(t) for t in x], ids
        else:
            yield torch.as_tensor(x), ids


# ---- 5. Parquet: shuffled row groups + an in-memory shuffle buffer (hand-written) -----------
def _rg_payload(tbl: Any, key: str, data: str) -> Any:
    col = tbl.column(key).combine_chunks()
    if data == "A":
        a = np.frombuffer(col.buffers()[1], np.uint8, len(col) * IMG_BYTES,
                          col.offset * IMG_BYTES)
        return a.reshape(-1, H, W, C)
    if data == "B":
        rows: list[Any] = col.to_pylist()
    else:
        vals = col.flatten().to_numpy()
        offs = col.offsets.to_numpy()
        rows = np.split(vals, (offs - offs[0])[1:-1])
    out = np.empty(len(rows), object)
    for i, r in enumerate(rows):
        out[i] = r
    return out


class ParquetShuffle(tud.IterableDataset):  # type: ignore[type-arg]
    """IterableDataset body: this worker's share of the shuffled row groups, through a
    PARQUET_BUFFER-row buffer from which random batches are drawn (swap-with-tail)."""

    def __init__(self, path: str, data: str, batch: int, seed: int) -> None:
        self.path, self.data, self.batch, self.seed = path, data, batch, seed

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import pyarrow.parquet as pq
        info = tud.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        pf = pq.ParquetFile(self.path)
        key = "tokens" if self.data == "C" else "image"
        groups = np.random.default_rng(self.seed).permutation(pf.num_row_groups)[wid::nw]
        rng = np.random.default_rng([self.seed, wid])
        bx: Any = None
        by = np.empty(PARQUET_BUFFER + 2 * ROWS_PER_CHUNK, np.int64)
        n = 0
        for g in groups:
            t = pf.read_row_group(int(g), columns=[key, "label"])
            x, y = _rg_payload(t, key, self.data), t.column("label").to_numpy()
            if bx is None:
                bx = np.empty((by.shape[0], *x.shape[1:]), x.dtype)
            bx[n:n + len(y)], by[n:n + len(y)] = x, y
            n += len(y)
            while n >= PARQUET_BUFFER:
                sel = rng.choice(n, self.batch, replace=False)
                yield self._out(bx[sel], by[sel])
                hole = np.sort(sel[sel < n - self.batch])
                tail = np.arange(n - self.batch, n)
                tail = tail[~np.isin(tail, sel)]
                bx[hole], by[hole] = bx[tail], by[tail]
                n -= self.batch
        perm = rng.permutation(n)
        for a in range(0, n, self.batch):
            sel = perm[a:a + self.batch]
            yield self._out(bx[sel], by[sel])

    def _out(self, x: Any, y: np.ndarray) -> tuple[Any, Any]:
        if self.data == "A":
            return torch.from_numpy(x), torch.from_numpy(y)
        if self.data == "B":
            return torch.from_numpy(np.stack([decode_jpeg(b) for b in x])), torch.from_numpy(y)
        return [torch.from_numpy(t) for t in x], torch.from_numpy(y)


def iter_parquet(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    ds = ParquetShuffle(_path(root, "parquet", data, ".parquet"), data, batch, seed)
    yield from tud.DataLoader(ds, batch_size=None, **_loader_kw(workers))


# ---- 6. Lance ------------------------------------------------------------------------------
def lance_to_torch(batch: Any, data: str) -> tuple[Any, Any]:
    """Arrow record batch / table (image|tokens, label) -> (x, ids)."""
    y = torch.from_numpy(batch.column(batch.schema.names.index("label")).to_numpy())
    key = "tokens" if data == "C" else "image"
    col = batch.column(batch.schema.names.index(key))
    if hasattr(col, "combine_chunks"):
        col = col.combine_chunks()
    if data == "A":
        return torch.from_numpy(col.flatten().to_numpy().reshape(-1, H, W, C)), y
    if data == "B":
        return torch.from_numpy(np.stack([decode_jpeg(b) for b in col.to_pylist()])), y
    vals, offs = col.flatten().to_numpy(), col.offsets.to_numpy()
    return [torch.from_numpy(t) for t in np.split(vals, (offs - offs[0])[1:-1])], y


class LanceToTensor:
    """to_tensor_fn for lance.torch.data.LanceDataset (picklable for spawn workers)."""

    def __init__(self, data: str) -> None:
        self.data = data

    def __call__(self, batch: Any, **_: Any) -> tuple[Any, Any]:
        return lance_to_torch(batch, self.data)


def iter_lance_torch(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    from lance.sampler import ShardedBatchSampler
    from lance.torch.data import LanceDataset

    ds = LanceDataset(_path(root, "lance", data, ".lance"), batch_size=batch,
                      columns=["tokens" if data == "C" else "image", "label"],
                      sampler=ShardedBatchSampler(0, 1, randomize=True, seed=seed),
                      to_tensor_fn=LanceToTensor(data))
    yield from tud.DataLoader(ds, batch_size=None, **_loader_kw(workers, "spawn"))


class LanceTake(tud.IterableDataset):  # type: ignore[type-arg]
    """IterableDataset body: `ds.take(ids)` of a random permutation, every W-th batch per worker."""

    def __init__(self, path: str, data: str, batch: int, seed: int) -> None:
        self.path, self.data, self.batch, self.seed = path, data, batch, seed

    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        import lance
        info = tud.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info is not None else (0, 1)
        ds = lance.dataset(self.path)
        cols = ["tokens" if self.data == "C" else "image", "label"]
        perm = np.random.default_rng(self.seed).permutation(ds.count_rows())
        starts = range(0, perm.shape[0], self.batch)
        for a in list(starts)[wid::nw]:
            yield lance_to_torch(ds.take(perm[a:a + self.batch], columns=cols), self.data)


def iter_lance_take(root: str, data: str, batch: int, workers: int, seed: int) -> Batches:
    ds = LanceTake(_path(root, "lance", data, ".lance"), data, batch, seed)
    yield from tud.DataLoader(ds, batch_size=None, **_loader_kw(workers, "spawn"))



# ---- registry (labels, workers and formats are in loader_bench.LOADERS) --------------------
_LIBS = {"tensorplane": ("plane", "plane.loader"), "tensorplane-numpy": ("plane", "plane.loader"),
         "tensorplane-proc": ("plane", "plane.loader"),
         "litdata": ("litdata",),
         "mosaic": ("streaming",), "wds": ("webdataset",), "parquet": ("pyarrow.parquet",),
         "lance-torch": ("lance", "lance.torch.data"), "lance-take": ("lance",)}


def preimport(loader: str) -> None:
    """Import a loader's library before the timer starts (not part of an epoch's cost)."""
    import importlib

    if loader == "mosaic":
        _stub_torchvision()
    for mod in _LIBS.get(loader, ()):
        importlib.import_module(mod)


ITERS: dict[str, Callable[..., Batches]] = {
    "tensorplane": iter_plane, "tensorplane-numpy": iter_plane_numpy,
    "tensorplane-proc": iter_plane_proc, "memmap": iter_memmap,
    "gather": iter_gather, "litdata": iter_litdata, "mosaic": iter_mosaic, "wds": iter_wds,
    "parquet": iter_parquet, "lance-torch": iter_lance_torch, "lance-take": iter_lance_take}
