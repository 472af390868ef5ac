"""Checksums and content addresses (xxh3-128: ~10x faster than blake2b, see FORMAT.md)."""

from __future__ import annotations

import zlib

import xxhash

from plane._errors import ChecksumError

__all__ = ["digest_hex", "seal", "unseal", "crc32", "sample_sum"]

_SEAL_TAG = b"\n#xxh3-128:"


def digest_hex(data: bytes | bytearray | memoryview) -> str:
    """The 32-hex-digit content address of `data`."""
    return xxhash.xxh3_128_hexdigest(data)


def crc32(data: bytes | bytearray | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def sample_sum(data: bytes | bytearray | memoryview) -> int:
    """Per-sample checksum kept in chunk footers: low 32 bits of xxh3-64 (4x faster than CRC)."""
    return xxhash.xxh3_64_intdigest(data) & 0xFFFFFFFF


def seal(payload: bytes) -> bytes:
    """Append a checksum trailer to an object whose key is not its content address."""
    return payload + _SEAL_TAG + digest_hex(payload).encode()


def unseal(data: bytes, where: str) -> bytes:
    """Verify and strip the trailer added by `seal`; raise ChecksumError naming `where`."""
    head, sep, tail = data.rpartition(_SEAL_TAG)
    if not sep or digest_hex(head).encode() != tail.strip():
        raise ChecksumError(
            f"{where} is corrupt (checksum mismatch or missing trailer); restore it from a "
            "replica or re-create the object"
        )
    return head
