"""Image media: sniff, probe shape from headers (no decode), decode, encode.

JPEG and PNG bytes are stored exactly as given; only headers are read at append time. Decoding
uses simplejpeg (libjpeg-turbo, releases the GIL) for JPEG and Pillow for everything else;
both are optional (`tensorplane[media]`) and imported lazily.
"""

from __future__ import annotations

import itertools
import struct
import threading
import zlib
from typing import Any

import numpy as np

from plane._errors import MissingDependencyError, PlaneError, SampleError
from plane._runtime import io_pool, usable_cpus

__all__ = ["sniff", "probe", "decode", "decode_many", "decode_batch", "encode",
           "decode_in_caller"]

_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def sniff(data: bytes | memoryview) -> str | None:
    """'jpeg', 'png' or None, from the magic bytes."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == _PNG_SIG:
        return "png"
    return None


def _probe_jpeg(data: bytes) -> tuple[int, int, int]:
    n = len(data)
    if data[:2] != b"\xff\xd8":
        raise SampleError("not a JPEG: missing SOI marker")
    tail = data[-16:].rstrip(b"\x00\r\n ")
    if not tail.endswith(b"\xff\xd9"):
        raise SampleError("truncated JPEG: no EOI marker at the end")
    i = 2
    shape: tuple[int, int, int] | None = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            raise SampleError(f"corrupt JPEG: expected a marker at byte {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01,) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        (seglen,) = struct.unpack(">H", data[i + 2:i + 4])
        if seglen < 2 or i + 2 + seglen > n:
            raise SampleError(f"truncated JPEG: segment at byte {i} runs past the end")
        if marker in _SOF:
            if seglen < 8:
                raise SampleError("corrupt JPEG: short SOF segment")
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            c = data[i + 9]
            if h == 0 or w == 0 or c not in (1, 3, 4):
                raise SampleError(f"corrupt JPEG: bad frame header {h}x{w}x{c}")
            shape = (h, w, c)
        if marker == 0xDA:  # start of scan: entropy-coded data follows
            if shape is None:
                raise SampleError("corrupt JPEG: scan before frame header (no SOF)")
            return shape
        i += 2 + seglen
    raise SampleError("truncated JPEG: no SOS segment")


def _probe_png(data: bytes) -> tuple[int, int, int]:
    if data[:8] != _PNG_SIG:
        raise SampleError("not a PNG: bad signature")
    if len(data) < 8 + 25 + 12:
        raise SampleError("truncated PNG")
    length, ctype = struct.unpack(">I4s", data[8:16])
    if ctype != b"IHDR" or length != 13:
        raise SampleError("corrupt PNG: first chunk is not IHDR")
    body = data[16:29]
    (crc,) = struct.unpack(">I", data[29:33])
    if zlib.crc32(data[12:29]) & 0xFFFFFFFF != crc:
        raise SampleError("corrupt PNG: IHDR checksum mismatch")
    w, h, depth, color = struct.unpack(">IIBB", body[:10])
    if color not in _PNG_CHANNELS or w == 0 or h == 0:
        raise SampleError(f"corrupt PNG: bad header {w}x{h} colour type {color}")
    if depth != 8:
        raise SampleError(f"PNG with {depth}-bit samples; only 8-bit images are supported")
    if data[-12:-8] != b"\x00\x00\x00\x00" or data[-8:-4] != b"IEND":
        raise SampleError("truncated PNG: no IEND chunk at the end")
    return h, w, _PNG_CHANNELS[color]


#: channels of a JPEG by the colour space libjpeg-turbo reports
_JPEG_CHANNELS = {"Gray": 1, "CMYK": 4, "YCCK": 4}


def _probe_jpeg_fast(data: bytes | memoryview) -> tuple[int, int, int]:
    """`_probe_jpeg` with the marker walk done by libjpeg-turbo's header reader when
    simplejpeg is installed (~1 µs instead of ~5 µs); the SOI / EOI checks stay ours, and
    anything it refuses goes to `_probe_jpeg` for the precise error."""
    sj = _optional("simplejpeg")
    ends = bytes(data[-16:]).rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if sj is not None and data[:2] == b"\xff\xd8" and ends:
        try:
            h, w, cs, _ = sj.decode_jpeg_header(data)
            return int(h), int(w), _JPEG_CHANNELS.get(cs, 3)
        except ValueError:
            pass
    return _probe_jpeg(bytes(data))


def probe(data: bytes | memoryview, compression: str) -> tuple[int, ...]:
    """The decoded (H, W, C) from the headers only; SampleError if the bytes are broken."""
    try:
        if compression == "jpeg":
            return _probe_jpeg_fast(data)
        if compression == "png":
            return _probe_png(bytes(data))
    except (struct.error, IndexError) as e:
        raise SampleError(f"corrupt {compression}: {e}") from None
    raise SampleError(f"cannot probe {compression!r} samples")


_MODS: dict[str, Any] = {}
_MISSING: set[str] = set()  # imports that failed once (not retried per image)


def _need(pkg: str) -> Any:
    mod = _MODS.get(pkg)
    if mod is None:
        try:
            if pkg in _MISSING:
                raise ImportError(pkg)
            import importlib

            mod = _MODS[pkg] = importlib.import_module(pkg)
        except ImportError:
            _MISSING.add(pkg)
            raise MissingDependencyError(f"decoding images needs {pkg}: pip install "
                                         "'tensorplane[media]'") from None
    return mod


def _optional(pkg: str) -> Any | None:
    """The module, or None when it is not installed."""
    try:
        return _need(pkg)
    except PlaneError:
        return None


def decode(data: bytes | memoryview, compression: str,
           shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Decode to uint8 HxWxC (grayscale keeps C=1). `shape`, when known (it is stored with
    every sample), saves re-reading the header."""
    if compression == "jpeg":
        try:
            sj = _need("simplejpeg")
            if shape is None:
                shape = _probe_jpeg(bytes(data))
            h, w, c = shape
            if c == 3:
                out: np.ndarray = sj.decode_jpeg(data, colorspace="RGB")
                return out
            if c == 1:
                out = sj.decode_jpeg(data, colorspace="GRAY")
                return out.reshape(h, w, 1)
        except (ValueError, PlaneError):
            pass  # CMYK or something simplejpeg refuses: Pillow below
    _need("PIL.Image")
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(bytes(data))) as opened:
            im = opened.convert("RGB") if opened.mode == "P" else opened
            arr = np.asarray(im)
    except Exception as e:  # Pillow raises many types for broken data
        raise SampleError(f"cannot decode {compression}: {e}") from None
    return arr[..., None] if arr.ndim == 2 else arr


def decode_many(datas: list[bytes | memoryview], compression: str,
                shapes: list[tuple[int, ...]] | None = None, threads: int | None = None
                ) -> list[np.ndarray]:
    """Decode in parallel threads (the decoders release the GIL); order is kept."""
    hints: list[tuple[int, ...] | None] = list(shapes) if shapes is not None else \
        [None] * len(datas)
    if len(datas) < 8 or threads == 1 or _split_over_threads(len(datas)) == 1:
        return [decode(d, compression, h) for d, h in zip(datas, hints)]
    step = max(1, len(datas) // 8)
    parts = [(datas[i:i + step], hints[i:i + step]) for i in range(0, len(datas), step)]
    done = io_pool().map(lambda p: [decode(d, compression, h) for d, h in zip(*p)], parts)
    return [a for part in done for a in part]


_LOCAL = threading.local()


def decode_in_caller() -> None:
    """From now on, this thread decodes its batches itself, without splitting them over the
    I/O pool: for threads that already work on batches in parallel (the loader's readers)."""
    _LOCAL.single = True


def _split_over_threads(n: int) -> int:
    """How many threads decode n images in this thread's batch (1: the caller alone)."""
    if getattr(_LOCAL, "single", False):
        return 1
    return max(1, min(usable_cpus(), n // 4))


def _cached_store_buffer(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised uint8 array whose start is 16 bytes past a 32-byte boundary.

    libjpeg-turbo's AVX2 colour conversion writes 32-byte-aligned output rows with
    non-temporal stores, which bypass the cache: decoding into such a batch runs ~30% slower
    here, and whoever reads the batch next misses the cache too. Off by 16 (every row, when
    the row length is a multiple of 32), the stores are ordinary cached ones."""
    size = int(np.prod(shape, dtype=np.int64))
    raw = np.empty(size + 32, np.uint8)
    at = (16 - raw.ctypes.data) % 32
    out: np.ndarray = raw[at:at + size].reshape(shape)
    return out


def decode_batch(datas: list[bytes | memoryview], compression: str,
                 shape: tuple[int, ...]) -> np.ndarray | None:
    """JPEGs that all decode to `shape` (h, w, c), decoded straight into one (n, h, w, c)
    array: no per-image allocation and no stacking copy. Threads split the batch (the
    calling thread takes a share). None when this path does not apply (not JPEG, an unusual
    channel count, no simplejpeg); an image that is not `shape` raises SampleError."""
    sj = _optional("simplejpeg")
    if compression != "jpeg" or len(shape) != 3 or shape[2] not in (1, 3) or not datas \
            or sj is None:
        return None
    h, w, c = (int(x) for x in shape)
    n = len(datas)
    out = _cached_store_buffer((n, h, w, c))
    cs = "RGB" if c == 3 else "GRAY"
    take = itertools.count().__next__  # threads pull images one at a time: balanced

    def run() -> None:
        while (i := take()) < n:
            try:
                got = sj.decode_jpeg(datas[i], colorspace=cs, buffer=out[i])
                ok = got.shape[:2] == (h, w)
            except ValueError:  # CMYK, a size other than recorded, ...: the general path
                got = decode(datas[i], compression)
                ok = got.shape == (h, w, c)
                if ok:
                    out[i] = got
            if not ok:
                raise SampleError(f"a {compression} sample decodes to {tuple(got.shape)}, not "
                                  f"its recorded shape {(h, w, c)}: the stored bytes are not "
                                  "what was written")

    k = _split_over_threads(n)
    if k == 1:
        run()
        return out
    futs = [io_pool().submit(run) for _ in range(k - 1)]
    run()
    for f in futs:
        f.result()
    return out


def encode(array: np.ndarray, compression: str, quality: int = 90) -> bytes:
    """Encode uint8 HxW, HxWx1, HxWx3 (png also HxWx4) to jpeg/png bytes."""
    if array.dtype != np.uint8:
        raise SampleError(f"images are uint8, got {array.dtype}; convert with .astype(np.uint8)")
    a = array[..., None] if array.ndim == 2 else array
    ok_c = (1, 3) if compression == "jpeg" else (1, 2, 3, 4)
    if a.ndim != 3 or a.shape[2] not in ok_c:
        raise SampleError(f"cannot encode shape {array.shape} as {compression}; give HxW, "
                          f"HxWx1 or HxWx3{' or HxWx4' if compression == 'png' else ''}")
    a = np.ascontiguousarray(a)
    if compression == "jpeg":
        sj = _need("simplejpeg")
        cs = "GRAY" if a.shape[2] == 1 else "RGB"
        return bytes(sj.encode_jpeg(a, quality=quality, colorspace=cs))
    if compression == "png":
        _need("PIL")
        import io

        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(a[..., 0] if a.shape[2] == 1 else a).save(buf, format="PNG")
        return buf.getvalue()
    raise SampleError(f"cannot encode {compression!r}")
