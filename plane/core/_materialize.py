"""Materializing a link tensor: the objects its URIs name, copied into chunks."""

from __future__ import annotations

import numpy as np

from plane._errors import SampleError, SchemaError
from plane.core._fragment import FragmentWriter
from plane.core._links import compression_of
from plane.core._reader import read_samples
from plane.core._working import WorkingState
from plane.core._writer import TensorWriter
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta

__all__ = ["materialize"]


def materialize(ws: WorkingState, name: str, batch_rows: int = 256) -> None:
    """Replace link tensor `name` of `ws` by a stored tensor of the linked htype holding the
    bytes of the objects its rows point to (kept as they are); all or nothing."""
    w = ws.writer(name)
    inner = w.meta.link
    if inner is None:
        raise SchemaError(f"tensor {name!r} is {w.meta.htype}, not a link[...] tensor; "
                          "only link tensors can be materialized")
    w.seal()
    phys = np.arange(ws.physical, dtype=np.int64)
    dead = np.zeros(ws.physical, bool)
    dead[ws.deleted] = True
    uris = list(read_samples(ws.reader, w.meta, w.index, phys, True, True, w.patch_map()))
    fw: FragmentWriter | None = None
    comp: str | None = None
    for s in range(0, len(uris), batch_rows):
        part = [None if dead[s + i] else u for i, u in enumerate(uris[s:s + batch_rows])]
        where = [f"tensor {name!r}, row {s + i}" for i in range(len(part))]
        datas = ws.links.fetch_many(part, where)
        for u, d, x in zip(part, datas, where):
            if d is None or inner == "binary":
                continue
            c = compression_of(str(u), d)
            if comp is None:
                comp = c
            elif c != comp:
                raise SampleError(f"{x}: {u} is {c}, earlier rows are {comp}: one "
                                  "tensor keeps one compression; re-encode the outliers")
        if fw is None:
            meta = TensorMeta.build(name, inner, sample_compression=None
                                    if inner == "binary" else comp,
                                    chunk_bytes=w.meta.chunk_bytes)
            fw = FragmentWriter(ws.store, f"materialize-{name}", {name: meta},
                                ws.reader.footer_sums)
        fw.add(fw.encode({name: datas}))
    if fw is None:  # no rows: just the new schema
        meta = TensorMeta.build(name, inner, chunk_bytes=w.meta.chunk_bytes,
                                sample_compression=None if inner != "image" else "jpeg")
        fw = FragmentWriter(ws.store, f"materialize-{name}", {name: meta},
                            ws.reader.footer_sums)
    frag = fw.finish()
    nulls = np.union1d(w.nulls, np.asarray(frag.nulls.get(name, []), np.int64))
    new = TensorWriter(TensorMeta.from_dict(frag.metas[name]), ChunkIndex(), ws.reader,
                       nulls=nulls.astype(np.int64))
    for rows, keys, sizes in frag.entries[name]:
        new.index.append(rows, keys, sizes)
    ws.replace_tensor(name, new)
