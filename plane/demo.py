"""`make demo`: build a local dataset end to end, no server, no network."""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

import plane


def _jpeg_bytes(rng: np.random.Generator, n: int, hw: int) -> list[bytes]:
    from plane.format._media import encode

    out = []
    for _ in range(n):
        small = rng.integers(0, 255, (hw // 8, hw // 8, 3), dtype=np.uint8)
        img = np.kron(small, np.ones((8, 8, 1), np.uint8))  # blocky, like a real photo-ish image
        out.append(encode(img, "jpeg", quality=90))
    return out


def run(path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    ds = plane.create(path, overwrite=True)
    ds.create_tensor("images", htype="image", sample_compression="jpeg")
    ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog", "bird"])
    ds.create_tensor("embedding", htype="embedding", dtype="float32")
    ds.create_tensor("caption", htype="text")
    jpegs = _jpeg_bytes(rng, n, 64)
    labels = rng.integers(0, 3, n)
    emb = rng.standard_normal((n, 128)).astype(np.float32)
    names = ["cat", "dog", "bird"]
    for s in range(0, n, 1000):
        e = min(n, s + 1000)
        ds.extend({"images": jpegs[s:e], "labels": labels[s:e], "embedding": emb[s:e],
                   "caption": [f"a photo of a {names[k]}, #{i}" for i, k in
                               zip(range(s, e), labels[s:e])]})
    ds.append({"images": jpegs[0], "labels": "dog", "embedding": emb[0], "caption": "one more"})
    ds.flush()
    t_write = time.perf_counter() - t0

    t1 = time.perf_counter()
    ds = plane.open(path, read_only=True)
    assert len(ds) == n + 1
    img = ds[5]["images"].numpy()
    assert ds[5]["images"].bytes() == jpegs[5], "JPEG bytes must come back exactly"
    assert (ds["labels"][10:20].numpy() == labels[10:20]).all()
    assert np.array_equal(ds["embedding"][[3, 7, 9]].numpy(), emb[[3, 7, 9]])
    batch = ds["embedding"][:n].numpy()
    t_read = time.perf_counter() - t1
    print(ds.summary())
    files = [p for p in path.rglob("*") if p.is_file()]
    print(f"\nwrote {n + 1} samples in {t_write:.2f}s; reopened and read back in {t_read:.2f}s")
    print(f"sample 5: image {img.shape} {img.dtype}, label "
          f"{ds['labels'].class_names[int(ds[5]['labels'].numpy())]!r}, "
          f"caption {ds[5]['caption'].numpy()!r}")
    print(f"embedding batch {batch.shape}; {len(files)} objects on disk for "
          f"{sum(p.stat().st_size for p in files) / 1e6:.1f} MB at {path}")
    versioning(path)
    stream(path)
    ingest(path.parent, rng)


def ingest(root: Path, rng: np.random.Generator, n: int = 2000) -> None:
    """A Parquet file in the 'lake' becomes a dataset: types inferred, JPEG bytes kept."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    print("\n--- ingesting from the lake ---")
    lake = root / "lake"
    lake.mkdir(parents=True, exist_ok=True)
    names = ["cat", "dog", "bird"]
    table = pa.table({
        "img": pa.array(_jpeg_bytes(rng, n, 32), pa.binary()),
        "species": pa.array([names[i % 3] for i in range(n)]).dictionary_encode(),
        "emb": pa.FixedSizeListArray.from_arrays(
            pa.array(rng.standard_normal(n * 64).astype(np.float32)), 64),
        "txt": pa.array([f"a photo of a {names[i % 3]}" for i in range(n)]),
    })
    pq.write_table(table, lake / "part-0.parquet", row_group_size=500)
    ds = plane.create(root / "from_lake.plane", overwrite=True)
    report = ds.extend_from(parquet=str(lake), progress=False, commit="ingest the lake",
                            columns={"img": "images", "species": "labels",
                                     "emb": "embedding", "txt": "caption"})
    print(report)
    for name, t in ds.tensors.items():
        m = t.meta
        print(f"  {name:10s} htype={m.htype:12s} dtype={m.dtype} shape={m.shape} "
              f"compression={m.sample_compression} classes={list(m.class_names) or '-'}")
    assert ds["images"][0].bytes() == table.column("img")[0].as_py()
    query(ds, table.column("emb")[0].values.to_numpy())


def query(ds: plane.Dataset, q: np.ndarray) -> None:
    """Indexes bound to the commit, a hybrid query, its plan, and a saved view."""
    print("\n--- hybrid query ---")
    t0 = time.perf_counter()
    print(ds.create_index("embedding", kind="hnsw", metric="cosine", progress=False))
    print(ds.create_index("caption", kind="bm25", progress=False))
    print(f"indexes built in {time.perf_counter() - t0:.2f}s")
    sql = ("SELECT id, caption, labels, score WHERE labels = 'dog' "
           "ORDER BY RRF(COSINE_SIMILARITY(embedding, $q), BM25(caption, 'photo dog')) DESC "
           "LIMIT 5")
    t0 = time.perf_counter()
    res = ds.query(sql, params={"q": q})
    assert isinstance(res, plane.View)
    print(f"{sql}\n({(time.perf_counter() - t0) * 1e3:.1f} ms)\n{res}")
    print(ds.explain(sql, params={"q": q}))
    res.save("dogs_like_row_0")
    again = plane.load_view(ds, "dogs_like_row_0")
    assert again.ids.tolist() == res.ids.tolist()
    print(f"saved and reopened view 'dogs_like_row_0': {len(again)} rows at commit "
          f"{again.commit_id}")


def stream(path: Path) -> None:
    """Shuffled batches of decoded JPEGs + labels into a tiny torch model."""
    print("\n--- streaming ---")
    try:
        import torch
    except ImportError:
        print("torch is not installed: skipping (pip install 'tensorplane[torch]')")
        return
    ds = plane.open(path, read_only=True)
    loader = ds.pytorch(batch_size=128, shuffle=True, tensors=["images", "labels"], seed=0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64 * 3, 3))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    t0 = time.perf_counter()
    seen = 0
    for step, batch in enumerate(loader):
        x = batch["images"].float().div(255)
        loss = torch.nn.functional.cross_entropy(model(x), batch["labels"].long())
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        seen += len(x)
        if step % 10 == 0:
            print(f"  step {step:3d}  batch {tuple(x.shape)}  loss {loss.item():.3f}")
    dt = time.perf_counter() - t0
    print(f"one epoch: {seen} samples in {dt:.2f}s ({seen / dt:,.0f} samples/s incl. JPEG "
          f"decode and training); resume state {loader.state_dict()}")


def versioning(path: Path) -> None:
    """Branch -> change -> diff -> merge, with a conflict caught on the way."""
    print("\n--- versioning ---")
    ds = plane.open(path)
    base = ds.commit("import 5k pets")
    ds.tag("v1")
    names = ds["labels"].class_names
    labels = np.asarray(ds["labels"].numpy()).reshape(-1)
    # three rows that are not birds yet (relabelling a bird as a bird changes nothing)
    r = [int(i) for i in np.flatnonzero(labels != names.index("bird"))[:3]]
    ds.branch("relabel")
    ds.checkout("relabel")
    ds["labels"][r] = ["bird", "bird", "bird"]                 # three small patches
    gone = next(i for i in range(len(ds)) if i not in r)
    ds.delete([gone])
    ds.commit(f"relabel rows {r} as birds, drop row {gone}")
    ds.checkout("main")
    ds.extend({"images": [ds["images"][gone].bytes()], "labels": ["cat"],
               "embedding": [np.zeros(128, np.float32)], "caption": ["a new cat"]})
    was = names[int(labels[r[0]])]
    ds["labels"][r[0]] = "cat" if was == "dog" else "dog"     # conflicts with the branch
    ds.commit(f"main adds a row, relabels row {r[0]}")
    print(ds.diff(base, "relabel"))
    try:
        ds.merge("relabel")
        raise AssertionError(f"the merge should have reported a conflict on row {r[0]}")
    except plane.MergeConflictError as e:
        print(f"merge refused: {e}")
    res = ds.merge("relabel", conflicts="theirs")
    print(res)
    print(f"row {r[0]} is now {names[int(ds['labels'][r[0]].numpy())]!r}; "
          f"{len(ds)} rows; v1 still has {len(plane.open(path, version='v1'))} rows")
    for entry in ds.log()[:4]:
        print(f"  {entry['id'][:12]}  {entry['message']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--path", default=None, help="where to write (default: a temp dir)")
    p.add_argument("--n", type=int, default=5000)
    args = p.parse_args()
    if args.path:
        run(Path(args.path), args.n)
        return
    tmp = Path(tempfile.mkdtemp(prefix="plane-demo-"))
    try:
        run(tmp / "demo.plane", args.n)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
