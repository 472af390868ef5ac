"""Reading samples: verified chunk fetch, an LRU of parsed chunks, vectorised gathers."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xxhash

from plane._errors import ChecksumError, ObjectNotFoundError, PlaneError
from plane._runtime import LRU, io_pool, on_io_thread, unique_ints, usable_cpus
from plane.core._layout import chunk_key
from plane.format._chunk import (
    CODEC_NONE,
    ChunkFooter,
    ParsedChunk,
    _NeedMore,
    parse_chunk,
    parse_footer,
)
from plane.format._codecs import decode_sample, empty_value
from plane.format._hash import digest_hex, sample_sum
from plane.format._index import ChunkIndex
from plane.format._meta import TensorMeta
from plane.storage import Store

if TYPE_CHECKING:
    from plane.core._state import Patch

__all__ = ["ChunkReader", "PatchMap", "read_samples", "read_shapes", "finish_samples",
           "DEFAULT_CACHE_BYTES"]

DEFAULT_CACHE_BYTES = 256 << 20
_TAIL_GUESS = 16 << 10


_POOL_LOCK = threading.Lock()


_VERIFY: Any = None  # (pid, SimpleQueue) of the background verifier threads


def _verify_soon(task: Callable[[], None]) -> None:
    """Run `task` on a background verifier thread: half the usable CPUs (at least one), so
    readers using the chunks meanwhile keep the rest. (A bare queue: a ThreadPoolExecutor's
    submit takes a semaphore that stalled a busy reader ~1 ms per call.)"""
    global _VERIFY
    import os
    import queue

    if _VERIFY is None or _VERIFY[0] != os.getpid():
        with _POOL_LOCK:
            if _VERIFY is None or _VERIFY[0] != os.getpid():
                q: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
                for i in range(max(1, usable_cpus() // 2)):
                    threading.Thread(target=_verifier, args=(q,), daemon=True,
                                     name=f"plane-verify-{i}").start()
                _VERIFY = (os.getpid(), q)
    _VERIFY[1].put(task)


def _verifier(q: Any) -> None:
    while True:
        task = q.get()
        try:
            task()
        except BaseException:  # _verify_later records its own failures
            pass


def _check_sum(data: bytes | memoryview, expected: int, key: str, i: int, where: str) -> None:
    """Sample `i` of chunk `key` against its footer sum; ChecksumError naming both if not."""
    if sample_sum(data) != expected:
        raise ChecksumError(f"chunk {chunk_key(key)} ({where}) is corrupt: sample {i} fails "
                            "its checksum")


def check_samples(c: ParsedChunk, rows: Iterable[int], where: str) -> None:
    """Check samples `rows` of a chunk not verified whole yet against their footer sums."""
    sums, offs, p = c.footer.crcs, c.offsets_list(), c.payload
    assert sums is not None
    for li in rows:
        _check_sum(p[offs[li]: offs[li + 1]], int(sums[li]), c.key, li, where)


class ChunkReader:
    """Fetches chunks by content address, verifies them, and caches parsed chunks.

    `footer_sums`: the dataset's chunks carry footer checksums (format version 3 on): a
    footer read alone (range reads, shapes, early use) must pass its own checksum, and the
    chunks its writers build carry one. False for older datasets, read and written as before.
    """

    def __init__(self, store: Store, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 footer_sums: bool = True) -> None:
        self.store = store
        self.footer_sums = footer_sums
        self.cache = LRU(cache_bytes, lambda c: c.nbytes)
        self.footers = LRU(16 << 20, lambda f: 64 + f.n * 32)
        #: chunks built by a writer but not stored yet (visible to that writer only)
        self.local: dict[str, ParsedChunk] = {}
        #: patch chunks stored inside parts (format version 2), by key
        self.inline: dict[str, bytes] = {}
        #: fetches in progress: a second reader of the same chunk waits for the first
        self._inflight: dict[str, Future[ParsedChunk]] = {}
        self._inflight_lock = threading.Lock()
        #: open chunks early (`chunks_early`): set by readers that check samples one by one
        self.verify_early = False
        self._early: dict[str, ParsedChunk] = {}  # opened, whole checksum not yet verified
        self._bad: dict[str, PlaneError] = {}  # chunks whose background verification failed
        self._settled = threading.Condition()

    def __getstate__(self) -> dict[str, Any]:
        return {"store": self.store, "cache_bytes": self.cache.max_bytes,
                "footer_sums": self.footer_sums}

    def __setstate__(self, s: dict[str, Any]) -> None:
        self.__init__(s["store"], s["cache_bytes"], s["footer_sums"])  # type: ignore[misc]

    def _parse_verified(self, key: str, data: bytes | memoryview, where: str) -> ParsedChunk:
        if digest_hex(data) != key:
            raise ChecksumError(f"chunk {chunk_key(key)} ({where}) is corrupt: checksum "
                                f"mismatch in {self.store.url}")
        return parse_chunk(key, data, f"{chunk_key(key)} ({where})")

    def _fetch(self, key: str, where: str) -> bytes | memoryview:
        data = self.inline.get(key)
        if data is not None:
            return data
        try:
            return self.store.get_buffer(chunk_key(key))
        except ObjectNotFoundError:
            raise ObjectNotFoundError(f"chunk {chunk_key(key)} ({where}) is missing from "
                                      f"{self.store.url}") from None

    def chunk(self, key: str, where: str) -> ParsedChunk:
        """The parsed chunk `key`, fetched at most once however many threads ask at once."""
        c = self.local.get(key) or self.cache.get(key)
        if c is not None:
            return c  # type: ignore[no-any-return]
        with self._inflight_lock:
            pending = self._inflight.get(key)
            if pending is None:
                c = self.cache.get(key)  # landed between the first look and the lock
                if c is not None:
                    return c  # type: ignore[no-any-return]
                mine: Future[ParsedChunk] = Future()
                self._inflight[key] = mine
        if pending is not None:
            return pending.result()
        try:
            c = self._parse_verified(key, self._fetch(key, where), where)
            self.cache.put(key, c)
            mine.set_result(c)
            return c
        except BaseException as e:
            mine.set_exception(e)
            raise
        finally:
            with self._inflight_lock:
                del self._inflight[key]

    def chunks(self, keys: Iterable[str], where: Callable[[str], str]) -> dict[str, ParsedChunk]:
        out: dict[str, ParsedChunk] = {}
        missing = []
        for k in dict.fromkeys(keys):
            c = self.local.get(k) or self.cache.get(k)
            if c is None:
                missing.append(k)
            else:
                out[k] = c
        threads = min(self.store.io_threads, len(missing))
        if threads <= 1 or on_io_thread():  # never wait on the pool this thread belongs to
            for k in missing:
                out[k] = self.chunk(k, where(k))
        else:  # one task per thread, not per chunk: starting threads costs ~1 ms each
            def some(ks: list[str]) -> list[ParsedChunk]:
                return [self.chunk(k, where(k)) for k in ks]

            groups = [missing[i::threads] for i in range(threads)]
            for g, cs in zip(groups, io_pool().map(some, groups)):
                out.update(zip(g, cs))
        return out

    def chunks_early(self, keys: Iterable[str], where: Callable[[str], str]
                     ) -> tuple[dict[str, ParsedChunk], set[str]]:
        """Like `chunks`, without waiting for whole-chunk checksums where the store's buffers
        are local (a memory map) and the chunk has per-sample checksums: such a chunk is
        opened at once and its hash runs in the background. Returns (chunks, keys of those
        not verified yet): the caller must check every sample it takes from them
        (`check_samples`). A chunk whose background hash failed raises here next time."""
        if not (self.verify_early and self.store.local_buffers):
            return self.chunks(keys, where), set()
        out: dict[str, ParsedChunk] = {}
        unchecked: set[str] = set()
        later: list[str] = []
        for k in dict.fromkeys(keys):
            c = self.local.get(k) or self.cache.get(k)
            if c is None:
                bad = self._bad.get(k)
                if bad is not None:  # a fresh instance: a stored one would pile up tracebacks
                    raise type(bad)(*bad.args)
                c = self._early.get(k) or self._open_early(k, where(k))
                if c is None:
                    later.append(k)
                    continue
                unchecked.add(k)
            out[k] = c
        if later:
            out.update(self.chunks(later, where))
        return out, unchecked

    def _open_early(self, key: str, where: str) -> ParsedChunk | None:
        if key in self.inline:
            return None
        data = self._fetch(key, where)
        try:
            f = parse_footer(data, len(data), f"{chunk_key(key)} ({where})", self.footer_sums)
        except Exception:  # damaged: the whole checksum names the problem
            return None
        if f.codec != CODEC_NONE or f.crcs is None:
            return None  # compressed, or samples too small to carry sums: verify it whole
        c = ParsedChunk(key, f, memoryview(data)[: f.payload_len])
        if c.payload.nbytes != f.raw_len:
            return None  # truncated or padded: let the whole checksum name the problem
        with self._inflight_lock:
            got = self._early.setdefault(key, c)
        if got is c:
            _verify_soon(lambda: self._verify_later(c, data, where))
        return got

    def _verify_later(self, c: ParsedChunk, data: bytes | memoryview, where: str) -> None:
        try:
            if digest_hex(data) != c.key:
                raise ChecksumError(f"chunk {chunk_key(c.key)} ({where}) is corrupt: checksum "
                                    f"mismatch in {self.store.url}")
            self.cache.put(c.key, c)
        except PlaneError as e:
            self._bad[c.key] = e
        except Exception as e:  # never leave a chunk unverified and usable
            self._bad[c.key] = ChecksumError(f"chunk {chunk_key(c.key)} ({where}) could not "
                                             f"be verified: {type(e).__name__}: {e}")
        finally:
            with self._settled:
                self._early.pop(c.key, None)
                self._settled.notify_all()

    def settle(self, timeout: float | None = None) -> bool:
        """Wait until every chunk opened early has been verified whole (or found corrupt);
        False if `timeout` passed first."""
        with self._settled:
            return self._settled.wait_for(lambda: not self._early, timeout)

    def footer(self, key: str, nbytes: int, ndim_hint: int, where: str) -> ChunkFooter:
        f = self.footers.get(key)
        if f is not None:
            return f  # type: ignore[no-any-return]
        ck = chunk_key(key)
        start = max(0, nbytes - _TAIL_GUESS)
        tail = self.store.get_range(ck, start, nbytes)
        try:
            f = parse_footer(tail, nbytes, f"{ck} ({where})", self.footer_sums)
        except _NeedMore as e:
            tail = self.store.get_range(ck, max(0, nbytes - e.nbytes), nbytes)
            f = parse_footer(tail, nbytes, f"{ck} ({where})", self.footer_sums)
        self.footers.put(key, f)
        return f

    def sample_by_range(self, key: str, nbytes: int, i: int, ndim: int, where: str
                        ) -> tuple[bytes, np.ndarray] | None:
        """One sample with range requests (footer cached), CRC-verified; None if not possible."""
        if key in self.local or self.cache.get(key) is not None:
            return None
        f = self.footer(key, nbytes, ndim, where)
        if f.codec != CODEC_NONE or f.crcs is None:
            return None
        a, b = int(f.offsets[i]), int(f.offsets[i + 1])
        data = self.store.get_range(chunk_key(key), a, b) if b > a else b""
        _check_sum(data, int(f.crcs[i]), key, i, where)
        return data, f.shapes[i]


@dataclass(frozen=True)
class PatchMap:
    """Which patch (and sample in it) holds the newest value of each patched physical row."""

    rows: np.ndarray  # sorted unique physical rows
    keys: tuple[str, ...]  # chunk key per patch
    which: np.ndarray  # patch index per row
    local: np.ndarray  # sample index inside that patch chunk

    @classmethod
    def build(cls, patches: Sequence[Patch]) -> PatchMap:
        rows = np.concatenate([p.rows for p in patches])
        which = np.concatenate([np.full(p.rows.shape[0], i, np.int64)
                                for i, p in enumerate(patches)])
        local = np.concatenate([np.arange(p.rows.shape[0], dtype=np.int64) for p in patches])
        # newest wins: take the last occurrence of each row
        rev = rows[::-1]
        uniq, first = np.unique(rev, return_index=True)
        pick = rows.shape[0] - 1 - first
        return cls(uniq, tuple(p.key for p in patches), which[pick], local[pick])

    def hits(self, positions: np.ndarray, increasing: bool | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """(indices into positions that are patched, their index into self.rows).
        `increasing`: whether positions are strictly increasing, if the caller knows."""
        n = positions.shape[0]
        if increasing is None:
            increasing = _increasing(positions)
        if increasing and n > 64:
            # sorted (ranges, query candidates): look the few patched rows up in positions,
            # not every position in the patched rows (searchsorted is ~10x a comparison)
            a, b = np.searchsorted(self.rows, [positions[0], positions[-1] + 1])
            rows = self.rows[a:b]
            if int(positions[-1]) - int(positions[0]) == n - 1:  # one range: no search
                return rows - positions[0], np.arange(a, b, dtype=np.int64)
            where = np.searchsorted(positions, rows)
            ok = positions[np.minimum(where, n - 1)] == rows
            return where[ok], np.arange(a, b, dtype=np.int64)[ok]
        at = np.searchsorted(self.rows, positions)
        at_c = np.minimum(at, max(self.rows.shape[0] - 1, 0))
        hit = (at < self.rows.shape[0]) & (self.rows[at_c] == positions)
        sel = np.flatnonzero(hit)
        return sel, at_c[sel]


def _increasing(positions: np.ndarray) -> bool:
    """Whether `positions` are strictly increasing (one comparison pass)."""
    return bool((positions[1:] > positions[:-1]).all())


def _where(meta: TensorMeta, index: ChunkIndex) -> Callable[[str], str]:
    def where(key: str) -> str:
        return f"tensor {meta.name!r}"
    return where


def read_samples(
    reader: ChunkReader,
    meta: TensorMeta,
    index: ChunkIndex,
    positions: np.ndarray,
    decode: bool = True,
    aslist: bool = False,
    patches: PatchMap | None = None,
) -> np.ndarray | list[Any]:
    """Read samples at physical `positions`: one ndarray for same-shaped numeric samples, else
    a list. Values in `patches` override the chunk values."""
    if patches is not None:
        n = positions.shape[0]
        inc = n > 64 and _increasing(positions)
        sel, at = patches.hits(positions, inc)
        if sel.shape[0]:
            # strictly increasing with ends n - 1 apart: a range (no second look at the rows)
            run = inc and int(positions[-1]) - int(positions[0]) == n - 1
            return _read_patched(reader, meta, index, positions, decode, aslist, patches, sel,
                                 at, run)
    return _read_base(reader, meta, index, positions, decode, aslist)


def _read_patched(reader: ChunkReader, meta: TensorMeta, index: ChunkIndex,
                  positions: np.ndarray, decode: bool, aslist: bool, pm: PatchMap,
                  sel: np.ndarray, at: np.ndarray, run: bool = False
                  ) -> np.ndarray | list[Any]:
    """`positions` where `sel` (at `at` in `pm`) are patched. A same-shaped result is gathered
    as if there were no patch and the patched rows overwritten in place; a ragged one (a patch
    that changes a shape, an emptied sample, text/json/bytes, lists) is built row by row."""
    new = _patch_values(reader, meta, pm, at, decode)
    numeric = meta.kind == "array" and not meta.sample_compression
    if meta.kind == "array" and not aslist and (numeric or decode):
        out = _overwrite(reader, meta, index, positions, decode, sel, new, numeric, run)
        if out is not None:
            return out
    rest = np.ones(positions.shape[0], bool)
    rest[sel] = False
    others = np.flatnonzero(rest)
    base = _read_base(reader, meta, index, positions[others], decode, True) \
        if others.shape[0] else []
    if isinstance(new, np.ndarray):  # one array per row, as a base read gives
        new = [np.array(v) for v in new]  # a 0-d array for a scalar row, not np.float32
    values: list[Any] = [None] * positions.shape[0]
    for j, v in zip(others.tolist(), base):
        values[j] = v
    for j, v in zip(sel.tolist(), new):
        values[j] = v
    if meta.kind == "array" and (numeric or decode) and not aslist \
            and len({np.shape(v) for v in values}) == 1:
        return np.stack(values)
    return values


def _patch_values(reader: ChunkReader, meta: TensorMeta, pm: PatchMap, at: np.ndarray,
                  decode: bool) -> np.ndarray | list[Any]:
    """The newest values of patched rows `at` (indices into `pm.rows`): one (m, *shape) array
    gathered per patch chunk when every chunk holds raw arrays of one shape, else a list
    (one conversion per patched sample)."""
    which, locs = pm.which[at], pm.local[at]
    ws = unique_ints(which).tolist()
    keys = [pm.keys[w] for w in ws]
    chunks = reader.chunks(keys, lambda k: f"patch of tensor {meta.name!r}")
    if meta.kind == "array" and not meta.sample_compression:
        got = [chunks[k].uniform_view(meta.np_dtype) for k in keys]
        views = [v for v in got if v is not None]
        if len(views) == len(got) and len({v.shape[1:] for v in views}) == 1:
            if len(ws) == 1:
                one: np.ndarray = views[0][locs]  # a copy: fancy indexing
                return one
            out = np.empty((at.shape[0], *views[0].shape[1:]), meta.np_dtype)
            for w, v in zip(ws, views):
                mine = which == w
                out[mine] = v[locs[mine]]
            return out
    new: list[Any] = [None] * at.shape[0]
    for j, (w, li) in enumerate(zip(which.tolist(), locs.tolist())):
        c = chunks[pm.keys[w]]
        v = decode_sample(meta, c.sample(li), c.footer.shapes[li], decode)
        new[j] = v.copy() if isinstance(v, np.ndarray) else v
    return new


def _overwrite(reader: ChunkReader, meta: TensorMeta, index: ChunkIndex,
               positions: np.ndarray, decode: bool, sel: np.ndarray,
               new: np.ndarray | list[Any], numeric: bool, run: bool
               ) -> np.ndarray | list[Any] | None:
    """The same-shaped array of `positions` with rows `sel` replaced by `new`: the base rows
    read on the vectorised path, the patched ones written over them; a list if the rows read
    turn out ragged. None when the patched values differ in shape from each other or from
    a uniform range read: the caller builds the list."""
    if isinstance(new, list):
        if not all(isinstance(v, np.ndarray) for v in new) or len({v.shape for v in new}) != 1:
            return None
        new = np.stack(new)
    shape = new.shape[1:]
    n = positions.shape[0]
    if n == sel.shape[0]:
        return new
    if numeric and run and _others_cover(index, positions, sel):
        # a range: read every row, the patched ones too, straight into the output
        whole = _read_base(reader, meta, index, positions, decode, False, True)
        if isinstance(whole, np.ndarray):
            if whole.shape[1:] != shape:
                return None
            if not whole.flags.writeable:  # never write into a cached chunk
                whole = whole.copy()
            whole[sel] = new
            return whole
    # only the rows not patched (media decodes only what it returns; a base row of another
    # shape may be one a patch replaced)
    rest = np.ones(n, bool)
    rest[sel] = False
    base = _read_base(reader, meta, index, positions[rest], decode, False)
    if not isinstance(base, np.ndarray) or base.shape[1:] != shape:
        # ragged: a list, from the rows already read (not a second read of them)
        values: list[Any] = [None] * n
        for j, v in zip(np.flatnonzero(rest).tolist(), base):
            values[j] = v if isinstance(base, list) else np.array(v)  # rows of an array: own
        for j, v in zip(sel.tolist(), new):
            values[j] = np.array(v)  # (a 0-d array for a scalar row, as a base read gives)
        return values
    out = np.empty((n, *shape), base.dtype)
    out[rest] = base
    out[sel] = new
    return out


def _others_cover(index: ChunkIndex, positions: np.ndarray, sel: np.ndarray) -> bool:
    """Whether the range `positions` reads every chunk its patched rows `sel` live in for
    some row not patched (and none is an empty fill): then reading the patched rows' old
    values too costs no extra chunk (and needs none a patch has replaced, damaged or not)."""
    ent, _ = index.locate(positions[sel])  # sorted: positions increase
    starts = np.flatnonzero(np.concatenate(([True], ent[1:] != ent[:-1])))
    counts = np.diff(np.append(starts, ent.shape[0]))
    e = ent[starts]
    if not bool((index.key_ptr[e + 1] > index.key_ptr[e]).all()):
        return False
    ends = index.ends[e]
    lo, hi = int(positions[0]), int(positions[-1]) + 1
    in_range = np.minimum(hi, ends) - np.maximum(lo, ends - index.rows[e])
    return bool((in_range > counts).all())


def _read_contiguous(reader: ChunkReader, meta: TensorMeta, index: ChunkIndex,
                     start: int, stop: int) -> np.ndarray | None:
    """Rows [start, stop) of a numeric tensor, reading whole uncompressed chunks straight into
    the output (one copy, verified by hashing output + footer); None if not applicable."""
    ends = index.ends
    e0 = int(np.searchsorted(ends, start, side="right"))
    e1 = int(np.searchsorted(ends, stop - 1, side="right"))
    dtype = meta.np_dtype
    plan = []
    shape: tuple[int, ...] | None = None
    for e in range(e0, e1 + 1):
        a, b = int(index.key_ptr[e]), int(index.key_ptr[e + 1])
        if b - a != 1:
            return None
        key = index.keys[a]
        cached = reader.local.get(key) or reader.cache.get(key)
        f = cached.footer if cached is not None else reader.footer(
            key, int(index.key_nbytes[a]), meta.ndim or 1, f"tensor {meta.name!r}")
        if f.codec != CODEC_NONE or f.tile is not None or not f.n or \
                not bool((f.shapes == f.shapes[0]).all()):
            return None
        s0 = tuple(int(x) for x in f.shapes[0])
        if shape is None:
            shape = s0
        elif s0 != shape:
            return None
        first = int(ends[e] - index.rows[e])
        lo, hi = max(start, first) - first, min(stop, int(ends[e])) - first
        plan.append((key, f, cached, lo, hi))
    assert shape is not None
    out = np.empty((stop - start, *shape), dtype)
    flat = out.reshape(stop - start, -1).view(np.uint8)
    pos = 0
    for key, f, cached, lo, hi in plan:
        if cached is None and lo == 0 and hi == f.n:
            dst = memoryview(flat[pos: pos + hi - lo].data).cast("B")
            got = reader.store.read_into(chunk_key(key), 0, dst)
            h = xxhash.xxh3_128()
            h.update(dst)
            h.update(f.tail)
            if got != f.payload_len or h.hexdigest() != key:
                raise ChecksumError(f"chunk {chunk_key(key)} (tensor {meta.name!r}) is corrupt: "
                                    f"checksum mismatch in {reader.store.url}")
        else:
            c = cached or reader.chunk(key, f"tensor {meta.name!r}")
            view = c.uniform_view(dtype)
            assert view is not None
            out[pos: pos + hi - lo] = view[lo:hi]
        pos += hi - lo
    return out


#: contiguous reads at least this large go straight into the output (no chunk cache)
CONTIGUOUS_MIN_ROWS = 256


def _read_base(
    reader: ChunkReader,
    meta: TensorMeta,
    index: ChunkIndex,
    positions: np.ndarray,
    decode: bool,
    aslist: bool,
    run: bool | None = None,
) -> np.ndarray | list[Any]:
    """`run`: True when the caller knows positions are one range (else it is looked at)."""
    n = int(positions.shape[0])
    if n >= CONTIGUOUS_MIN_ROWS and meta.kind == "array" and not meta.sample_compression \
            and not aslist and (run or (int(positions[-1]) - int(positions[0]) == n - 1
                                        and bool(np.all(np.diff(positions) == 1)))):
        whole = _read_contiguous(reader, meta, index, int(positions[0]),
                                 int(positions[-1]) + 1)
        if whole is not None:
            return whole
    where = _where(meta, index)
    numeric = meta.kind == "array" and not meta.sample_compression
    if n == 0:
        if numeric and not aslist and meta.ndim is not None:
            return np.zeros((0, *(meta.fixed_shape or (0,) * meta.ndim)), meta.np_dtype)
        return []
    ent, local = index.locate(positions)
    if n == 1:
        e = int(ent[0])
        keys = index.entry_keys(e)
        c1 = (reader.local.get(keys[0]) or reader.cache.get(keys[0])) if len(keys) == 1 \
            else None
        if c1 is not None:  # one sample from a chunk in memory: no gather machinery
            li = int(local[0])
            return _finish(meta, [c1.sample(li)], [c1.footer.shapes[li]], decode, aslist)
        # one sample from an uncompressed chunk not in memory -> range read
        if len(keys) == 1:
            got = reader.sample_by_range(keys[0], index.entry_nbytes(e)[0], int(local[0]),
                                         meta.ndim or 1, where(keys[0]))
            if got is not None:
                try:
                    v = decode_sample(meta, got[0], got[1], decode)
                except ChecksumError as err:
                    raise ChecksumError(f"chunk {where(keys[0])}: {err}") from None
                if not aslist and (numeric or (meta.kind == "array" and decode)):
                    return np.asarray(v).copy()[None]  # as `_finish` stacks a decoded image
                return [v.copy() if isinstance(v, np.ndarray) else v]
    uniq = unique_ints(ent)
    single = [int(e) for e in uniq if index.key_ptr[e + 1] - index.key_ptr[e] == 1]
    tiled = [int(e) for e in uniq if index.key_ptr[e + 1] - index.key_ptr[e] > 1]
    wanted = [index.keys[int(index.key_ptr[e])] for e in single]
    parsed, unchecked = reader.chunks_early(wanted, where)
    if unchecked:  # a footer that disagrees with what we trust is verified whole first
        for e in single:
            k = index.keys[int(index.key_ptr[e])]
            if k in unchecked and not _footer_fits(parsed[k], meta, int(index.rows[e])):
                parsed[k] = reader.chunk(k, where(k))
                unchecked.discard(k)
    if tiled:
        parsed.update(reader.chunks([k for e in tiled for k in index.entry_keys(e)], where))

    if numeric and not aslist:
        out = _gather_array(meta, index, parsed, ent, local, uniq, unchecked, where)
        if out is not None:
            return out
    values: list[Any] = [None] * n
    shapes: list[Any] = [None] * n
    need_shapes = meta.kind == "array"
    order = np.argsort(ent, kind="stable")
    bounds = np.append(np.searchsorted(ent[order], uniq), n).tolist()
    local_l = local.tolist()
    empty = False
    common: Any = ()  # the one shape of every sample, when each chunk's footer has one
    for j, e in enumerate(uniq.tolist()):
        sel = order[bounds[j]: bounds[j + 1]].tolist()
        keys = index.entry_keys(e)
        if not keys:
            empty, common = True, None
            for s in sel:
                values[s] = empty_value(meta)
                shapes[s] = "empty"
        elif len(keys) == 1:
            c = parsed[keys[0]]
            if unchecked and c.key in unchecked:
                rows = [local_l[s] for s in sel]
                check_samples(c, rows, where(c.key))
                comp = meta.sample_compression
                if comp and not _media_fits(c, rows, comp):
                    c = parsed[c.key] = reader.chunk(c.key, where(c.key))  # verified whole
            payload, offs = c.payload, c.offsets_list()
            for s in sel:
                li = local_l[s]
                values[s] = payload[offs[li]: offs[li + 1]]
            if need_shapes:
                shp = c.footer.shapes
                for s in sel:
                    shapes[s] = shp[local_l[s]]
                if common is not None:  # one shape per footer: a broadcast, stride 0
                    one = tuple(shp[0].tolist()) if shp.strides[0] == 0 else None
                    common = one if common in ((), one) else None
        else:
            common = None
            pieces = [parsed[k] for k in keys]
            raw = memoryview(b"".join(p.payload for p in pieces))
            for s in sel:
                values[s] = raw
                shapes[s] = pieces[0].footer.shapes[0]
    return _finish(meta, values, shapes, decode, aslist, empty, common or None)


def read_packed(reader: ChunkReader, meta: TensorMeta, index: ChunkIndex,
                positions: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored bytes of the samples at physical `positions`, end to end in one uint8
    array (read-only), and their int64 offsets (n + 1), copied straight from the (verified)
    chunks: one join of one view per run of rows that sit next to each other in a chunk, not
    one Python object per row. Patches are not applied (the caller checks there are none at
    these rows). None when a row lives in a tiled or empty entry: the caller reads row by
    row."""
    n = int(positions.shape[0])
    if n == 0:
        return np.zeros(0, np.uint8), np.zeros(1, np.int64)
    ent, local = index.locate(positions)
    uniq = unique_ints(ent)
    kp = np.asarray(index.key_ptr)
    if bool(np.any(kp[uniq + 1] - kp[uniq] != 1)):
        return None
    keys = [index.keys[int(kp[e])] for e in uniq.tolist()]
    parsed = reader.chunks(keys, _where(meta, index))
    starts = np.empty(n, np.int64)
    sizes = np.empty(n, np.int64)
    src = np.empty(n, np.int64)
    order = np.argsort(ent, kind="stable")
    bounds = np.append(np.searchsorted(ent[order], uniq), n).tolist()
    pays = []
    for j, k in enumerate(keys):
        c = parsed[k]
        sel = order[bounds[j]: bounds[j + 1]]
        li = local[sel]
        offs = c.footer.offsets
        starts[sel] = offs[li]
        sizes[sel] = offs[li + 1] - offs[li]
        src[sel] = j
        pays.append(c.payload)
    out_off = np.zeros(n + 1, np.int64)
    np.cumsum(sizes, out=out_off[1:])
    # runs: consecutive output rows that are consecutive bytes of one chunk; each run is one
    # view of its chunk, and one join copies them all
    cont = (src[1:] == src[:-1]) & (starts[1:] == starts[:-1] + sizes[:-1])
    run_at = np.flatnonzero(np.concatenate(([True], ~cont)))
    ends = np.append(run_at[1:], n)
    lens = (out_off[ends] - out_off[run_at]).tolist()
    data = b"".join([pays[sr][st: st + ln] for sr, st, ln in
                     zip(src[run_at].tolist(), starts[run_at].tolist(), lens)])
    return np.frombuffer(data, np.uint8), out_off


def _finish(meta: TensorMeta, raws: list[Any], shapes: list[Any], decode: bool,
            aslist: bool, empty: bool | None = None,
            uniform: tuple[int, ...] | None = None) -> np.ndarray | list[Any]:
    """Raw sample buffers -> values, one conversion per tensor kind (no per-sample dispatch).
    `empty`: whether any shape is the "empty" marker (None: look); `uniform`: the one shape
    of every sample, when the caller knows it."""
    kind, comp = meta.kind, meta.sample_compression
    if empty is None:
        empty = any(isinstance(s, str) for s in shapes)
    live = [i for i, s in enumerate(shapes) if not isinstance(s, str)] if empty \
        else range(len(raws))
    if kind == "text":
        for i in live:
            raws[i] = bytes(raws[i]).decode("utf-8", "surrogatepass")
    elif kind == "json":
        import json

        for i in live:
            raws[i] = json.loads(bytes(raws[i])) if len(raws[i]) else None
    elif kind == "bytes" or (comp and not decode):
        if len(live) == len(raws):
            return [bytes(r) for r in raws]
        for i in live:
            raws[i] = bytes(raws[i])
    elif comp:
        if decode and not aslist and kind == "array" and comp == "jpeg" \
                and len(live) == len(raws) and raws:
            if uniform is None:
                same = np.asarray(shapes)
                if same.ndim == 2 and bool((same == same[0]).all()):
                    uniform = tuple(int(x) for x in same[0])
            if uniform is not None:
                from plane.format import _media

                batch = _media.decode_batch(raws, comp, uniform)
                if batch is not None:
                    return batch
        todo = [i for i in live if len(raws[i])]
        for i in live:
            if not len(raws[i]):
                raws[i] = np.zeros(tuple(int(x) for x in shapes[i]), np.uint8)
        if comp in ("jpeg", "png"):
            from plane.format import _media

            out = _media.decode_many([raws[i] for i in todo], comp,
                                     [tuple(int(x) for x in shapes[i]) for i in todo])
            for i, a in zip(todo, out):
                raws[i] = a
        else:
            for i in todo:
                raws[i] = decode_sample(meta, raws[i], shapes[i], decode)
    else:
        dt = meta.np_dtype
        for i in live:
            shp = tuple(int(x) for x in shapes[i])
            raws[i] = np.frombuffer(raws[i], dt, int(np.prod(shp, dtype=np.int64))
                                    ).reshape(shp).copy()
    if kind == "array" and decode and not aslist and raws \
            and len({np.shape(v) for v in raws}) == 1:
        return np.stack(raws)
    return raws


def finish_samples(meta: TensorMeta, raws: list[Any], shapes: list[Any]
                   ) -> np.ndarray | list[Any]:
    """Values of samples read undecoded (`read(..., decode=False)` bytes and their shapes):
    what a decoding read returns, decoded where this runs (e.g. on a trainer)."""
    return _finish(meta, list(raws), list(shapes), True, False)


def _footer_fits(c: ParsedChunk, meta: TensorMeta, rows: int) -> bool:
    """Whether a chunk's footer (not covered by the sample sums) agrees with the index and
    the tensor: its sample count, and for raw arrays each sample's size and fixed shape.
    Media shapes steer the decoder: `_media_fits` checks them sample by sample."""
    f = c.footer
    if f.n != rows or f.tile is not None:
        return False
    if meta.kind != "array" or meta.sample_compression:
        return True  # bytes checked per sample; media shapes against headers (_media_fits)
    need = np.prod(f.shapes, axis=1) * meta.np_dtype.itemsize
    if not np.array_equal(np.diff(f.offsets), need):
        return False
    fixed = meta.fixed_shape
    return fixed is None or bool((f.shapes == np.asarray(fixed)).all())


def _media_fits(c: ParsedChunk, rows: list[int], compression: str) -> bool:
    """Whether each of these (already checksummed) media samples has the shape its footer
    records, read from its own header: the footer tells the decoder what to produce (e.g. the
    channel count), and no sample sum covers it. Any doubt (an empty sample, a header that
    cannot be probed, a mismatch) is False: the caller verifies the chunk whole instead."""
    from plane.format._media import probe

    shapes, offs, p = c.footer.shapes, c.offsets_list(), c.payload
    for li in rows:
        a, b = offs[li], offs[li + 1]
        if a == b:
            return False
        try:
            got = probe(p[a:b], compression)
        except PlaneError:
            return False
        if tuple(got) != tuple(shapes[li].tolist()):
            return False
    return True


def _gather_array(meta: TensorMeta, index: ChunkIndex, parsed: dict[str, ParsedChunk],
                  ent: np.ndarray, local: np.ndarray, uniq: np.ndarray,
                  unchecked: set[str], where: Callable[[str], str]) -> np.ndarray | None:
    """Vectorised gather when every touched chunk holds one uniform shape; else None. Rows
    taken from `unchecked` chunks are checked against their sample sums first."""
    dtype = meta.np_dtype
    ptr, keys = index.key_ptr, index.keys
    chunks = []
    views = []
    for e in uniq.tolist():
        if ptr[e + 1] - ptr[e] != 1:
            return None
        c = parsed[keys[ptr[e]]]
        v = c.uniform_view(dtype)
        if v is None:
            return None
        chunks.append(c)
        views.append(v)
    shape = views[0].shape[1:]
    if any(v.shape[1:] != shape for v in views):
        return None
    n = ent.shape[0]
    if len(views) == 1:
        if chunks[0].key in unchecked:
            check_samples(chunks[0], local.tolist(), where(chunks[0].key))
        out: np.ndarray = views[0][local]
        return out
    out = np.empty((n, *shape), dtype)
    order = np.argsort(ent, kind="stable")
    bounds = [*np.searchsorted(ent[order], uniq).tolist(), n]
    lo = local[order]
    for j, v in enumerate(views):
        a, b = bounds[j], bounds[j + 1]
        if unchecked and chunks[j].key in unchecked:
            check_samples(chunks[j], lo[a:b].tolist(), where(chunks[j].key))
        out[order[a:b]] = v[lo[a:b]]
    return out


def read_shapes(reader: ChunkReader, meta: TensorMeta, index: ChunkIndex,
                positions: np.ndarray, patches: PatchMap | None = None) -> np.ndarray:
    """Sample shapes (n, ndim) at `positions`, reading only chunk footers."""
    nd = meta.ndim if meta.ndim is not None else 1
    out = np.zeros((positions.shape[0], nd), np.int64)
    if not positions.shape[0]:
        return out
    ent, local = index.locate(positions)
    for e in unique_ints(ent):
        sel = ent == e
        keys = index.entry_keys(int(e))
        if not keys:
            out[sel] = np.asarray(meta.fixed_shape or (0,) * nd)
            continue
        k = keys[0]
        c = reader.local.get(k) or reader.cache.get(k)
        f = c.footer if c is not None else reader.footer(k, index.entry_nbytes(int(e))[0], nd,
                                                         f"tensor {meta.name!r}")
        out[sel] = f.shapes[0] if len(keys) > 1 else f.shapes[local[sel]]
    if patches is not None:
        hit, at = patches.hits(positions)
        for j, a in zip(hit, at):
            k = patches.keys[int(patches.which[a])]
            out[j] = reader.chunk(k, f"patch of tensor {meta.name!r}").footer.shapes[
                int(patches.local[a])]
    return out
