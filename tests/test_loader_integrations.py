"""Loader integrations: S3 fetch counts and the local chunk cache, a plain torch DataLoader,
ragged tokens with a padding collate fn, a HuggingFace Trainer, JAX, pin_memory on CPU."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import plane

torch = pytest.importorskip("torch")

N = 1200


def _fill(ds: plane.Dataset, n: int = N) -> None:
    rng = np.random.default_rng(11)
    ds.create_tensor("row", dtype="int64", chunk_bytes=150 * 8)
    ds.create_tensor("img", dtype="uint8", shape=(6, 6, 3), chunk_bytes=100 * 108)
    ds.create_tensor("input_ids", dtype="int32", chunk_bytes=4096)
    ds.extend({
        "row": np.arange(n),
        "img": rng.integers(0, 255, (n, 6, 6, 3), np.uint8),
        "input_ids": [np.arange(i % 13 + 1, dtype=np.int32) + i for i in range(n)],
    })
    ds.flush()


@pytest.fixture(scope="module")
def local_ds(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("integ") / "d")
    _fill(plane.create(path))
    return path


def _rows(batches: Any) -> list[int]:
    return [int(x) for b in batches for x in np.asarray(b["row"])]


# ---- S3: fetch counts, seen by the S3 server itself -------------------------------------------
@pytest.fixture
def chunk_gets(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter[str]]:
    """Counts GET requests for chunk objects as the moto server answers them (any process)."""
    from moto.s3.responses import S3Response

    seen: Counter[str] = Counter()
    original = S3Response.get_object

    def get_object(self: S3Response) -> Any:
        if "/chunks/" in self.path:
            seen[self.path.split("?")[0].rsplit("/", 1)[1]] += 1
        return original(self)

    monkeypatch.setattr(S3Response, "get_object", get_object)
    yield seen


@pytest.mark.s3
def test_s3_fetches_each_chunk_at_most_once_per_epoch_per_worker(
        s3_bucket: tuple[str, Any], chunk_gets: Counter[str], tmp_path: Any) -> None:
    url, opts = s3_bucket
    _fill(plane.create(url, storage_options=opts))
    ds = plane.open(url, read_only=True, storage_options=opts)
    n_chunks = len(list(ds.store.list("chunks/")))
    ref = _rows(ds.numpy(batch_size=50, seed=5, tensors=["row", "img"]))
    assert sorted(ref) == list(range(N))

    for workers, mode in ((0, "auto"), (2, "thread"), (2, "process")):
        chunk_gets.clear()
        loader = ds.pytorch(batch_size=50, seed=5, num_workers=workers, tensors=["row", "img"],
                            worker_mode=mode)
        assert _rows(loader) == ref
        # reader threads share one process's fetches; each worker process fetches its own
        most = workers if mode == "process" else 1
        assert max(chunk_gets.values()) <= most, chunk_gets.most_common(3)
        # every chunk of the two tensors was read in the epoch
        assert len(chunk_gets) == len([k for k in ds.store.list("chunks/")
                                       if k.split("/")[1] in chunk_gets])

    # without a cache, new worker processes read every chunk again in the next epoch
    chunk_gets.clear()
    loader = ds.pytorch(batch_size=50, seed=5, num_workers=2, tensors=["row", "img"],
                        worker_mode="process")
    list(loader)
    chunk_gets.clear()
    list(loader)
    assert sum(chunk_gets.values()) > 0

    # with cache_dir, epoch 2 (fresh worker processes) reads no chunk from S3
    cache = tmp_path / "cache"
    loader = ds.pytorch(batch_size=50, seed=5, num_workers=2, tensors=["row", "img"],
                        cache_dir=cache, worker_mode="process")
    chunk_gets.clear()
    first = _rows(loader)
    assert max(chunk_gets.values()) <= 2 and sorted(first) == list(range(N))
    chunk_gets.clear()
    second = _rows(loader)
    assert sum(chunk_gets.values()) == 0 and sorted(second) == list(range(N))
    assert second != first  # epoch 2 is a new order, served from the cache
    assert 0 < len(list(cache.glob("*/*"))) <= n_chunks


def test_cache_dir_respects_its_byte_limit(local_ds: str, tmp_path: Any) -> None:
    ds = plane.open(local_ds, read_only=True)
    cache = tmp_path / "cache"
    limit = 30000
    rows = _rows(ds.numpy(batch_size=64, cache_dir=cache, cache_max_bytes=limit))
    assert sorted(rows) == list(range(N))
    on_disk = sum(p.stat().st_size for p in cache.glob("*/*"))
    assert 0 < on_disk <= limit


# ---- plain DataLoader, ragged tokens, HF Trainer -------------------------------------------------
def test_plain_dataloader_over_batches_and_samples(local_ds: str) -> None:
    from torch.utils.data import DataLoader

    ds = plane.open(local_ds, read_only=True)
    ref = _rows(ds.pytorch(batch_size=40, seed=2, tensors=["row", "img"]))
    loader = ds.pytorch(batch_size=40, seed=2, tensors=["row", "img"])
    batches = DataLoader(loader.torch_dataset(), batch_size=None, num_workers=2)
    assert _rows(batches) == ref
    samples = DataLoader(loader.torch_dataset(samples=True), batch_size=40, num_workers=2)
    got = list(samples)
    assert _rows(got) == ref  # same batches, rebuilt by torch's default collate
    assert got[0]["img"].dtype == torch.uint8 and tuple(got[0]["img"].shape) == (40, 6, 6, 3)
    assert len(samples.dataset) == N
    with pytest.raises(plane.PlaneError, match="collate_fn to the DataLoader"):
        ds.pytorch(collate_fn=lambda rows: rows).torch_dataset(samples=True)


def _pad(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A padding collate fn for variable-length token rows (what a tokenizer collator does)."""
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        t = torch.as_tensor(np.asarray(r["input_ids"]), dtype=torch.long)
        ids[i, :len(t)] = t
        mask[i, :len(t)] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_ragged_tokens_are_padded_by_a_given_collate_fn(local_ds: str) -> None:
    ds = plane.open(local_ds, read_only=True)
    plain = next(iter(ds.pytorch(batch_size=16, tensors=["input_ids", "row"], seed=1)))
    assert isinstance(plain["input_ids"], list) and plain["input_ids"][0].dtype == torch.int32
    assert {len(t) for t in plain["input_ids"]} != {len(plain["input_ids"][0])}
    batch = next(iter(ds.pytorch(batch_size=16, tensors=["input_ids"], seed=1,
                                 collate_fn=_pad)))
    lengths = batch["attention_mask"].sum(1)
    assert batch["input_ids"].shape == (16, int(lengths.max()))
    for i, t in enumerate(plain["input_ids"]):
        assert batch["input_ids"][i, :len(t)].tolist() == t.tolist()
        assert int(lengths[i]) == len(t)


def test_hf_trainer_trains_on_the_torch_iterable(local_ds: str, tmp_path: Any) -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    config = transformers.GPT2Config(vocab_size=N + 16, n_positions=32, n_embd=16, n_layer=1,
                                     n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)
    ds = plane.open(local_ds, read_only=True)
    planned = [int(r[0]) for b in ds.numpy(batch_size=8, tensors=["input_ids"], seed=3)
               for r in b["input_ids"]]
    train = ds.pytorch(batch_size=8, tensors=["input_ids"], seed=3).torch_dataset(samples=True)
    seen: list[int] = []

    def collate(rows: list[dict[str, Any]]) -> dict[str, Any]:
        seen.extend(int(r["input_ids"][0]) for r in rows)  # row i's tokens start at i
        return _pad(rows)

    before = [p.detach().clone() for p in model.parameters()]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=20,
        learning_rate=5e-3, logging_steps=5, report_to=[], save_strategy="no",
        remove_unused_columns=False, use_cpu=True, dataloader_num_workers=0, seed=0)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=train,
                                   data_collator=collate)
    out = trainer.train()
    assert out.global_step == 20
    # Trainer consumed exactly the planned batches, in order (accelerate reads one ahead)
    assert seen[:160] == planned[:160] and len(seen) in (160, 168)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 4 and all(np.isfinite(losses))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


# ---- JAX, pin_memory -----------------------------------------------------------------------------
def test_jax_batches(local_ds: str) -> None:
    jnp = pytest.importorskip("jax.numpy")
    ds = plane.open(local_ds, read_only=True)
    batches = list(ds.jax(batch_size=100, seed=4, tensors=["row", "img"]))
    assert all(isinstance(b["img"], type(jnp.zeros(1))) for b in batches)
    assert batches[0]["img"].shape == (100, 6, 6, 3) and str(batches[0]["img"].dtype) == "uint8"
    assert [int(x) for b in batches for x in np.asarray(b["row"])] == \
        _rows(ds.numpy(batch_size=100, seed=4, tensors=["row", "img"]))


def test_pin_memory_without_cuda_warns_and_still_loads(local_ds: str) -> None:
    if torch.cuda.is_available():
        pytest.skip("this checks the CPU-only fallback")
    ds = plane.open(local_ds, read_only=True)
    with pytest.warns(RuntimeWarning, match="no CUDA device"):
        loader = ds.pytorch(batch_size=64, pin_memory=True, tensors=["row"])
    assert sorted(_rows(loader)) == list(range(N))


def test_media_batches_are_decoded_ahead_in_order_with_errors_raised(tmp_path: Any) -> None:
    from plane.format._media import encode
    from plane.storage import open_store

    rng = np.random.default_rng(0)
    ds = plane.create(tmp_path / "d")
    ds.create_tensor("img", htype="image", sample_compression="jpeg", chunk_bytes=16 << 10)
    ds.create_tensor("row", dtype="int64")
    imgs = [encode(rng.integers(0, 255, (16, 16, 3), np.uint8), "jpeg") for _ in range(300)]
    ds.extend({"img": imgs, "row": np.arange(300)})
    ds.flush()
    ro = plane.open(tmp_path / "d", read_only=True)
    loader = ro.numpy(batch_size=32, seed=1)
    assert loader._decodes_media()
    ahead = [b["row"].tolist() for b in loader]
    inline = [b["row"].tolist() for b in ro.numpy(batch_size=32, seed=1, prefetch=False)]
    assert ahead == inline and sorted(r for b in ahead for r in b) == list(range(300))
    it = iter(ro.numpy(batch_size=32))
    next(it)
    it.close()  # stopping early leaves no thread blocked on a full queue
    store = open_store(tmp_path / "d")
    key = sorted(k for k in store.list("chunks/") if len(store.get(k)) > 8000)[1]
    data = bytearray(store.get(key))
    data[100] ^= 0xFF
    store.put(key, bytes(data))
    with pytest.raises(plane.ChecksumError, match=key.split("/")[1]):
        list(plane.open(tmp_path / "d", read_only=True).numpy(batch_size=32))


def test_ragged_batches_from_workers_arrive_whole_and_in_order(local_ds: str) -> None:
    from torch.utils.data import DataLoader

    ds = plane.open(local_ds, read_only=True)
    ref = list(ds.pytorch(batch_size=32, seed=6, tensors=["input_ids", "row"]))
    got = list(ds.pytorch(batch_size=32, seed=6, tensors=["input_ids", "row"], num_workers=2,
                          worker_mode="process"))
    assert [b["row"].tolist() for b in got] == [b["row"].tolist() for b in ref]
    for a, b in zip(got, ref):
        assert isinstance(a["input_ids"], list)
        assert [t.tolist() for t in a["input_ids"]] == [t.tolist() for t in b["input_ids"]]
    # a user's own DataLoader over torch_dataset() sees plain lists of tensors
    own = next(iter(DataLoader(ds.pytorch(batch_size=8, tensors=["input_ids"]).torch_dataset(),
                               batch_size=None, num_workers=1)))
    assert isinstance(own["input_ids"], list) and own["input_ids"][0].dtype == torch.int32


def test_class_labels_reach_torch_as_int64(tmp_path: Any) -> None:
    """class_label tensors are stored as uint32, which F.cross_entropy refuses: torch batches
    widen uint16/uint32 losslessly (to int32/int64); other dtypes stay as stored (#15.7)."""
    torch = pytest.importorskip("torch")
    ds = plane.create(str(tmp_path / "d"))
    ds.create_tensor("label", htype="class_label", class_names=["cat", "dog", "bird"])
    ds.create_tensor("u16", dtype="uint16")
    ds.create_tensor("u8", dtype="uint8")
    ds.extend({"label": [0, 2, 1, 2], "u16": np.array([1, 65535, 2, 3], np.uint16),
               "u8": np.array([1, 2, 3, 255], np.uint8)})
    ds.commit("c")
    (batch,) = list(ds.pytorch(batch_size=4, shuffle=False))
    assert batch["label"].dtype == torch.int64 and batch["label"].tolist() == [0, 2, 1, 2]
    assert batch["u16"].dtype == torch.int32 and batch["u16"].tolist() == [1, 65535, 2, 3]
    assert batch["u8"].dtype == torch.uint8
    logits = torch.zeros(4, 3)
    torch.nn.functional.cross_entropy(logits, batch["label"])  # refused uint32 before
