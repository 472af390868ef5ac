"""Quick loader throughput and shuffle quality of tensorplane alone (no peers).

Run: .venv/bin/python bench/loader_quick.py   (the side-by-side benchmark is loader_bench.py)
20k x 64x64x3 uint8 + label, 320-row chunks, batch 64, shuffle on; two epochs per setting.
"""

from __future__ import annotations

import shutil
import tempfile
import time

import numpy as np

import plane


def main(n: int = 20_000) -> None:
    d = tempfile.mkdtemp(prefix="plane-lq-")
    try:
        ds = plane.create(d)
        ds.create_tensor("images", htype="image", chunk_bytes=320 * 12288)
        ds.create_tensor("labels", htype="class_label")
        rng = np.random.default_rng(0)
        for _ in range(0, n, 2000):
            ds.extend({"images": rng.integers(0, 255, (2000, 64, 64, 3), np.uint8),
                       "labels": rng.integers(0, 10, 2000)})
        ds.flush()
        print("| loader | workers | epoch 0 samples/s | epoch 1 samples/s |")
        print("|---|---:|---:|---:|")
        for kind, workers, mode in (("numpy", 0, "auto"), ("torch", 0, "auto"),
                                    ("torch", 2, "auto"), ("torch", 2, "process")):
            loader = (ds.numpy(batch_size=64) if kind == "numpy"
                      else ds.pytorch(batch_size=64, num_workers=workers, worker_mode=mode))
            rates = []
            for _ in range(2):
                t = time.perf_counter()
                seen = sum(len(b["labels"]) for b in loader)
                rates.append(seen / (time.perf_counter() - t))
            arg = "" if mode == "auto" else f'worker_mode="{mode}"'
            print(f"| ds.{'pytorch' if kind == 'torch' else 'numpy'}({arg}) | {workers} | "
                  f"{rates[0]:,.0f} | {rates[1]:,.0f} |")
        plan = ds.numpy(batch_size=64).source.plan(0)
        ent, _ = ds.snapshot().index("images").locate(plan.order)  # no deletes: rows = physical
        distinct = np.mean([len(np.unique(ent[a:b])) for a, b in plan.batches])
        print(f"\ndistinct chunks per batch {distinct:.1f} (ideal 40.4); adjacent samples from "
              f"the same chunk {np.mean(ent[1:] == ent[:-1]):.3f}")
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
