# ruff: noqa: E501, E702
"""Write tests/data/format_v2.tar.gz: a format-version-2 dataset (run with main@e216f7c).

Usage: python make_format_v2.py OUT/dataset; then tar czf format_v2.tar.gz dataset expected.json
"""
import io
import json
import sys

import numpy as np
from PIL import Image

import plane

out = sys.argv[1]
rng = np.random.default_rng(0)
def jpeg(i):
    a = rng.integers(0, 255, (16 + i % 3, 20, 3), dtype=np.uint8)
    b = io.BytesIO(); Image.fromarray(a).save(b, format="JPEG"); return b.getvalue()
ds = plane.create(out)
ds.create_tensor("images", htype="image", sample_compression="jpeg")
ds.create_tensor("labels", htype="class_label", class_names=["cat", "dog"])
ds.create_tensor("embedding", htype="embedding", dtype="float32")
ds.create_tensor("caption", htype="text")
ds.create_tensor("meta", htype="json")
ds.create_tensor("x", dtype="float32", shape=(None, 6), chunk_bytes=4096)
ds.create_tensor("w", dtype="int32")
n = 60
ds.extend({"images": [jpeg(i) for i in range(n)], "labels": [i % 2 for i in range(n)],
           "embedding": rng.random((n, 16), dtype=np.float32),
           "caption": [f"a {'cat' if i % 2 == 0 else 'dog'} number {i}" for i in range(n)],
           "meta": [{"i": i, "tags": ["a", "b"][: i % 3]} for i in range(n)],
           "x": [rng.random((50 + i % 5, 6), dtype=np.float32) for i in range(n)], "w": list(range(n))})
ds.commit("first")
ds.tag("v1")
ds["labels"][3] = "dog"
ds["x"][5] = np.ones((7, 6), np.float32)
ds.delete([10])
ds.commit("relabel and delete")
ds.branch("dev"); ds.checkout("dev")
ds.extend({"images": [jpeg(1)], "labels": [0], "embedding": rng.random((1, 16), dtype=np.float32),
           "caption": ["a new cat"], "meta": [{"i": -1}], "x": [np.zeros((3, 6), np.float32)], "w": [7]})
ds.commit("dev adds a row")
ds.branch("feature/x")
ds.checkout("main")
for t, k in [("embedding", "flat"), ("caption", "bm25"), ("w", "minmax"), ("labels", "btree")]:
    ds.create_index(t, kind=k)
ds.query("SELECT * WHERE labels = 'cat' LIMIT 5").save("cats")
# expected values, to check the reader of a later version against
exp = {"main_len": len(ds), "main_commit": ds.commit_id,
       "labels": ds["labels"][:].numpy().tolist(),
       "x5": ds["x"][5].numpy().tolist(), "caption": list(ds["caption"][:].numpy()),
       "branches": sorted(ds.versions.branches()), "tags": sorted(ds.versions.tags())}
json.dump(exp, open(out + "/../expected.json", "w"))
print(exp["main_len"], exp["branches"], exp["tags"])
