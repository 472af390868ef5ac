"""Chunk objects: many samples of one tensor, with a footer of shapes, offsets and CRCs.

Layout (little-endian)::

    [payload: raw or zstd][footer][u32 footer_len][b"TPC1"]

    footer = u8 version, u8 codec, u8 flags, u8 ndim, u32 n, u64 raw_len,
             u32 shapes[1 or n][ndim],        # one shape when FLAG_UNIFORM_SHAPE
             u64 offsets[n + 1]               # absent when FLAG_UNIFORM_SIZE
             u32 sums[n]                      # per-sample xxh3-64 low 32 bits, if FLAG_CRC
             u32 tile_index, u32 tile_count   # only when FLAG_TILE
             u64 footer_sum                   # version 2: xxh3-64 of the bytes above and
                                              # footer_len (version 1 has none)

The footer sits at the end so that, when the payload is not compressed, a fixed-size sample is
read with one range request once the footer is known; its own checksum lets such a read trust
it without the whole object. The whole object's xxh3-128 is its key.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xxhash
import zstandard

from plane._errors import ChecksumError
from plane.format._hash import sample_sum

__all__ = [
    "ChunkFooter",
    "ParsedChunk",
    "encode_chunk",
    "parse_chunk",
    "parse_footer",
    "footer_size_hint",
    "CODEC_NONE",
    "CODEC_ZSTD",
]

MAGIC = b"TPC1"
#: footer versions: 1 (format versions 1-2: no footer checksum), 2 (format 3: footer_sum)
VERSION = 2
LEGACY_VERSION = 1
CODEC_NONE, CODEC_ZSTD = 0, 1
FLAG_UNIFORM_SHAPE, FLAG_UNIFORM_SIZE, FLAG_TILE, FLAG_CRC = 1, 2, 4, 8
#: per-sample CRCs (for verified range reads) are kept when samples average at least this size
CRC_MIN_SAMPLE_BYTES = 512
_HEAD = struct.Struct("<BBBBIQ")
_TAIL = struct.Struct("<I4s")
_SUM = struct.Struct("<Q")
#: a (legacy, unchecked) footer claiming more samples than bytes is believed up to this many
_MAX_EMPTY = 1 << 20
_KNOWN_FLAGS = FLAG_UNIFORM_SHAPE | FLAG_UNIFORM_SIZE | FLAG_TILE | FLAG_CRC
ZSTD_LEVEL = 3
#: compressed payloads that save less than this fraction are stored raw
MIN_SAVING = 0.10

_tls = threading.local()


def _cctx() -> zstandard.ZstdCompressor:
    c = getattr(_tls, "c", None)
    if c is None:
        c = _tls.c = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _dctx() -> zstandard.ZstdDecompressor:
    d = getattr(_tls, "d", None)
    if d is None:
        d = _tls.d = zstandard.ZstdDecompressor()
    return d


@dataclass(frozen=True)
class ChunkFooter:
    codec: int
    n: int
    raw_len: int
    shapes: np.ndarray  # (n, ndim) int64, always expanded
    offsets: np.ndarray  # (n + 1,) int64, always expanded
    crcs: np.ndarray | None  # (n,) uint32 when the chunk carries per-sample CRCs
    payload_len: int
    tile: tuple[int, int] | None = None
    #: the object's bytes after the payload (footer + trailer), for streaming verification
    tail: bytes = b""

    @property
    def ndim(self) -> int:
        return int(self.shapes.shape[1])


def encode_chunk(
    payload: bytes | memoryview,
    shapes: np.ndarray,
    offsets: np.ndarray,
    compress: bool,
    tile: tuple[int, int] | None = None,
    footer_sum: bool = True,
) -> bytes:
    """Build a chunk from the raw concatenated sample bytes, their shapes and offsets.
    `footer_sum=False` writes the legacy footer (version 1, no checksum) that datasets of
    format version 2 and older keep using."""
    n, ndim = shapes.shape
    raw = memoryview(payload).cast("B")
    raw_len = raw.nbytes
    codec, body = CODEC_NONE, raw
    if compress and raw_len:
        z = _cctx().compress(raw)
        if len(z) < raw_len * (1 - MIN_SAVING):
            codec, body = CODEC_ZSTD, memoryview(z)
    flags = 0
    uniform_shape = n > 0 and bool((shapes == shapes[0]).all())
    sizes = np.diff(offsets)
    uniform_size = n > 0 and bool((sizes == sizes[0]).all())
    parts: list[bytes] = []
    if uniform_shape:
        flags |= FLAG_UNIFORM_SHAPE
        parts.append(shapes[:1].astype("<u4").tobytes())
    else:
        parts.append(shapes.astype("<u4").tobytes())
    if uniform_size:
        flags |= FLAG_UNIFORM_SIZE
    else:
        parts.append(offsets.astype("<u8").tobytes())
    if codec == CODEC_NONE and n and raw_len >= n * CRC_MIN_SAMPLE_BYTES:
        flags |= FLAG_CRC
        offs = offsets.tolist()
        parts.append(np.fromiter((sample_sum(raw[offs[i]:offs[i + 1]]) for i in range(n)),
                                 dtype="<u4", count=n).tobytes())
    if tile is not None:
        flags |= FLAG_TILE
        parts.append(struct.pack("<II", *tile))
    footer = _HEAD.pack(VERSION if footer_sum else LEGACY_VERSION, codec, flags, ndim, n,
                        raw_len) + b"".join(parts)
    if footer_sum:
        flen = _TAIL.pack(len(footer) + _SUM.size, MAGIC)
        footer += _SUM.pack(_footer_sum(footer, flen[:4]))
    else:
        flen = _TAIL.pack(len(footer), MAGIC)
    return b"".join([body, footer, flen])


def _footer_sum(footer: bytes | memoryview, flen: bytes | memoryview) -> int:
    """The footer's own checksum: xxh3-64 of its bytes (before the sum) and footer_len."""
    h = xxhash.xxh3_64(footer)
    h.update(flen)
    return h.intdigest()


def footer_size_hint(n: int, ndim: int) -> int:
    """Upper bound of the footer bytes for n samples of ndim dims (for speculative tail reads)."""
    return _HEAD.size + n * ndim * 4 + (n + 1) * 8 + n * 4 + 8 + _SUM.size + _TAIL.size


def parse_footer(tail: bytes | memoryview, total_len: int, where: str,
                 need_sum: bool = True) -> ChunkFooter:
    """Parse the footer from the last bytes of a chunk (`tail` must contain the whole footer)
    and check it: a version-2 footer against its own checksum, any footer for consistency.
    `need_sum`: refuse a footer without a checksum (version 1) as corrupt, as every reader
    of a format-3 dataset does where nothing else verifies the footer."""
    tail = memoryview(tail)
    if len(tail) < _TAIL.size:
        raise ChecksumError(f"chunk {where} is truncated ({total_len} bytes)")
    flen, magic = _TAIL.unpack(tail[-_TAIL.size:])
    if magic != MAGIC:
        raise ChecksumError(f"chunk {where} is corrupt: bad magic {bytes(magic)!r}")
    if flen + _TAIL.size > total_len:
        raise ChecksumError(f"chunk {where} is corrupt: footer length {flen} is more than "
                            f"the object's {total_len} bytes")
    if flen + _TAIL.size > len(tail):
        raise _NeedMore(flen + _TAIL.size)
    fb = tail[len(tail) - _TAIL.size - flen: len(tail) - _TAIL.size]
    version = fb[0] if flen else 0
    if version == VERSION:
        if flen < _HEAD.size + _SUM.size or _SUM.unpack(fb[-_SUM.size:])[0] != _footer_sum(
                fb[: -_SUM.size], tail[-_TAIL.size: -4]):
            raise ChecksumError(f"chunk {where} is corrupt: its footer fails its checksum")
        fb = fb[: -_SUM.size]
    elif version == LEGACY_VERSION:
        if need_sum:
            raise ChecksumError(f"chunk {where} is corrupt: its footer has no checksum "
                                "(footer version 1), which every chunk of a format-3 dataset "
                                "has")
    else:
        raise ChecksumError(f"chunk {where} is corrupt: unknown footer version {version} "
                            "(this tensorplane writes 1 and 2)")
    try:
        _, codec, flags, ndim, n, raw_len = _HEAD.unpack(fb[: _HEAD.size])
        pos = _HEAD.size
        ns = 1 if flags & FLAG_UNIFORM_SHAPE else n
        shapes = np.frombuffer(fb, "<u4", ns * ndim, pos).reshape(ns, ndim).astype(np.int64)
        pos += ns * ndim * 4
        if flags & FLAG_UNIFORM_SHAPE:
            shapes = np.broadcast_to(shapes, (n, ndim))
        if flags & FLAG_UNIFORM_SIZE:
            if n and (raw_len % n or n > max(raw_len, _MAX_EMPTY)):  # before allocating
                raise ValueError(f"{n} samples of equal size cannot make {raw_len} bytes")
            size = raw_len // n if n else 0
            offsets = np.arange(n + 1, dtype=np.int64) * size
        else:
            offsets = np.frombuffer(fb, "<u8", n + 1, pos).astype(np.int64)
            pos += (n + 1) * 8
        if flags & FLAG_CRC:
            crcs: np.ndarray | None = np.frombuffer(fb, "<u4", n, pos)
            pos += n * 4
        else:
            crcs = None
        tile = struct.unpack_from("<II", fb, pos) if flags & FLAG_TILE else None
        pos += 8 if tile else 0
    except (struct.error, ValueError) as e:
        raise ChecksumError(f"chunk {where} has a corrupt footer: {e}") from e
    payload_len = total_len - flen - _TAIL.size
    bad = _inconsistent(codec, flags, n, raw_len, offsets, payload_len, pos, len(fb))
    if bad:
        raise ChecksumError(f"chunk {where} has a corrupt footer: {bad}")
    return ChunkFooter(codec, n, raw_len, shapes, offsets, crcs, payload_len,
                       (int(tile[0]), int(tile[1])) if tile else None,
                       bytes(tail[len(tail) - _TAIL.size - flen:]))


def _inconsistent(codec: int, flags: int, n: int, raw_len: int, offsets: np.ndarray,
                  payload_len: int, used: int, flen: int) -> str:
    """What in a parsed footer cannot be right (a damaged legacy footer), or ""."""
    if codec not in (CODEC_NONE, CODEC_ZSTD) or flags & ~_KNOWN_FLAGS:
        return f"unknown codec {codec} or flags {flags:#x}"
    if used != flen:
        return f"{flen} footer bytes, {used} described"
    if codec == CODEC_NONE and payload_len != raw_len:
        return f"payload is {payload_len} bytes, footer says {raw_len}"
    if offsets[0] != 0 or offsets[-1] != raw_len or (n and bool((np.diff(offsets) < 0).any())):
        return "sample offsets do not cover the payload in order"
    return ""


class _NeedMore(Exception):
    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes


@dataclass(frozen=True)
class ParsedChunk:
    """A chunk in memory: footer plus the raw (decompressed) payload."""

    key: str
    footer: ChunkFooter
    payload: memoryview
    _views: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nbytes(self) -> int:
        return self.payload.nbytes

    def offsets_list(self) -> list[int]:
        """Sample byte offsets as a Python list (cached: cheap per-sample slicing)."""
        got = self._views.get("__offsets__")
        if got is None:
            got = self._views["__offsets__"] = self.footer.offsets.tolist()
        out: list[int] = got
        return out

    def uniform_view(self, dtype: Any) -> np.ndarray | None:
        """All samples as one (n, *shape) read-only array view, cached; None if the samples
        do not share one shape (or the chunk is a tile)."""
        if dtype in self._views:
            cached: np.ndarray | None = self._views[dtype]
            return cached
        f = self.footer
        view: np.ndarray | None = None
        if f.tile is None and f.n and bool((f.shapes == f.shapes[0]).all()):
            view = self.array(dtype)
        self._views[dtype] = view
        return view

    def sample(self, i: int) -> memoryview:
        o = self.footer.offsets
        return self.payload[int(o[i]): int(o[i + 1])]

    def array(self, dtype: Any) -> np.ndarray:
        """All samples as one (n, *shape) array; only valid when shapes are uniform."""
        f = self.footer
        shape = tuple(int(s) for s in f.shapes[0]) if f.n else ()
        return np.frombuffer(self.payload, dtype=dtype, count=f.n * int(np.prod(shape))
                             ).reshape((f.n, *shape))


def parse_chunk(key: str, data: bytes | memoryview, where: str,
                need_sum: bool = False) -> ParsedChunk:
    """Parse a whole chunk object (its checksum is verified by the caller, so a legacy footer
    is trusted unless `need_sum`)."""
    try:
        footer = parse_footer(data, len(data), where, need_sum)
    except _NeedMore as e:  # cannot happen with the whole object, unless corrupt
        raise ChecksumError(f"chunk {where} is corrupt: footer length {e.nbytes}") from None
    body = memoryview(data)[: footer.payload_len]
    if footer.codec == CODEC_ZSTD:
        try:
            raw = _dctx().decompress(body, max_output_size=footer.raw_len)
        except zstandard.ZstdError as e:
            raise ChecksumError(f"chunk {where} is corrupt: {e}") from e
        body = memoryview(raw)
    if body.nbytes != footer.raw_len:
        raise ChecksumError(f"chunk {where} is corrupt: payload is {body.nbytes} bytes, "
                            f"footer says {footer.raw_len}")
    return ParsedChunk(key, footer, body)
