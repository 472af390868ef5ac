"""How a shard's media answer crosses the object store: a list of `bytes` (pickled in band)
vs one uint8 buffer + offsets (`actors.chunk_cache.pack_samples`, zero-copy out of band).

    .venv/bin/python bench/cluster_answer_bench.py [--images 256] [--kb 110] [--runs 10]

One local Ray instance, one actor holding `images` random samples of `kb` kB (JPEG-sized);
each call returns all of them, and the caller turns the answer into the per-sample views
the trainer decodes. Prints ms per answer, MB/s and the ratio.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--kb", type=int, default=110)
    p.add_argument("--runs", type=int, default=10)
    a = p.parse_args()

    import ray

    from actors.chunk_cache import pack_samples, unpack_samples

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)

    @ray.remote(num_cpus=0)
    class Shard:
        def __init__(self, n: int, size: int) -> None:
            rng = np.random.default_rng(0)
            self.raws = [rng.integers(0, 255, size, dtype=np.uint8).tobytes() for _ in range(n)]

        def as_list(self) -> list[bytes]:
            return self.raws

        def packed(self) -> tuple[np.ndarray, np.ndarray]:
            return pack_samples(self.raws)

    shard = Shard.remote(a.images, a.kb * 1000)  # type: ignore[attr-defined]
    mb = a.images * a.kb / 1000
    ways: dict[str, Any] = {
        "list of bytes": lambda: ray.get(shard.as_list.remote()),
        "one buffer + offsets": lambda: unpack_samples(*ray.get(shard.packed.remote())),
    }
    best: dict[str, float] = {}
    for name, call in ways.items():
        call()  # warm
        times = []
        for _ in range(a.runs):
            t = time.perf_counter()
            got = call()
            times.append(time.perf_counter() - t)
        assert len(got) == a.images and len(got[0]) == a.kb * 1000
        best[name] = min(times)
        print(f"{name:22s} {best[name] * 1e3:8.1f} ms per {mb:.0f} MB answer "
              f"({mb / best[name]:,.0f} MB/s; median {np.median(times) * 1e3:.1f} ms)")
    ratio = best["list of bytes"] / best["one buffer + offsets"]
    print(f"one buffer is {ratio:.1f}x faster")
    ray.shutdown()


if __name__ == "__main__":
    main()
