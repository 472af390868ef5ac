"""Changing a tensor's dtype by a rewrite: every stored sample cast (losslessly) into new
chunks; older versions keep the old chunks."""

from __future__ import annotations

from typing import Any

import numpy as np

from plane._errors import SampleError, SchemaError
from plane.core._layout import chunk_key
from plane.core._reader import read_samples
from plane.core._working import WorkingState
from plane.core._writer import TensorWriter
from plane.format._codecs import encode_batch
from plane.format._index import ChunkIndex

__all__ = ["retype"]

#: rows read, cast and encoded at a time
_BATCH = 4096


def retype(ws: WorkingState, name: str, dtype: Any, batch_rows: int = _BATCH) -> None:
    """Rewrite tensor `name` of `ws` with samples of `dtype`. A value the cast would change
    (the rule of writes: ints must fit, floats may round to a narrower float but not
    overflow) raises SampleError naming its row; the tensor is then left as it was (chunks
    already written stay unreferenced, for gc)."""
    w = ws.writer(name)
    meta = w.meta
    try:
        target = np.dtype(dtype)
    except TypeError:
        raise SchemaError(f"astype({dtype!r}) on tensor {name!r}: not a numpy dtype; use e.g. "
                          "'float32', 'int64' or np.uint8") from None
    if meta.kind != "array" or meta.sample_compression or meta.link:
        comp = f" ({meta.sample_compression})" if meta.sample_compression else ""
        raise SchemaError(f"tensor {name!r} is {meta.htype}{comp}; astype rewrites "
                          "uncompressed numeric tensors only")
    if target.kind not in "biuf":
        raise SchemaError(f"astype({target.name!r}) on tensor {name!r}: numeric dtypes only "
                          "(bool, int, uint, float)")
    if meta.htype == "class_label" and target.kind not in "iu":
        raise SchemaError(f"tensor {name!r} is a class_label: its ids need an integer dtype, "
                          f"not {target.name}")
    if meta.dtype is not None and np.dtype(meta.dtype) == target:
        return
    w.seal()
    pm = w.patch_map()
    new = TensorWriter(meta.evolve(dtype=target.str), ChunkIndex(), ws.reader,
                       nulls=w.nulls.copy())
    row = 0
    for e in range(w.index.num_entries):
        n = int(w.index.rows[e])
        phys = np.arange(row, row + n, dtype=np.int64)
        patched = pm is not None and pm.hits(phys)[0].shape[0] > 0
        if not w.index.entry_keys(e) and not patched:
            new.add_fill(n)  # empty samples stay what they were
        for s in range(0, n, batch_rows) if w.index.entry_keys(e) or patched else ():
            part = phys[s:s + batch_rows]
            vals = read_samples(ws.reader, meta, w.index, part, True, True, pm)
            try:
                block, got = encode_batch(new.meta, vals, int(part[0]))
            except SampleError as err:
                raise SampleError(f"astype({target.name!r}) refused, nothing was changed: "
                                  f"{err}") from None
            plan = new.plan(block, got)
            ws.store.put_many({chunk_key(k): v for k, v in plan.chunks.items()})
            new.apply(plan)
        row += n
    ws.replace_tensor(name, new)

