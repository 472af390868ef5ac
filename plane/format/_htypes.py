"""htypes: what a tensor's samples mean, and the defaults that follow."""

from __future__ import annotations

from dataclasses import dataclass

from plane._errors import SchemaError

__all__ = ["Htype", "HTYPES", "get_htype", "SAMPLE_COMPRESSIONS", "CHUNK_COMPRESSIONS"]


@dataclass(frozen=True)
class Htype:
    name: str
    #: "array": numpy samples; "text": str; "json": JSON values; "bytes": opaque bytes
    kind: str
    dtype: str | None = None
    sample_compressions: tuple[str | None, ...] = (None,)
    chunk_compression: str | None = None
    ndim: int | None = None


IMAGE_COMPRESSIONS = (None, "jpeg", "png")
VIDEO_COMPRESSIONS = (None, "mp4", "mkv", "avi", "webm")
AUDIO_COMPRESSIONS = (None, "wav", "mp3", "flac", "ogg")
SAMPLE_COMPRESSIONS = {c for c in IMAGE_COMPRESSIONS + VIDEO_COMPRESSIONS + AUDIO_COMPRESSIONS
                       if c}
CHUNK_COMPRESSIONS = (None, "zstd")

HTYPES: dict[str, Htype] = {h.name: h for h in [
    Htype("generic", "array"),
    Htype("image", "array", "uint8", IMAGE_COMPRESSIONS, ndim=3),
    Htype("video", "array", "uint8", VIDEO_COMPRESSIONS, ndim=4),
    Htype("audio", "array", "float32", AUDIO_COMPRESSIONS, ndim=2),
    Htype("embedding", "array", "float32", ndim=1),
    Htype("class_label", "array", "uint32", chunk_compression="zstd"),
    Htype("bbox", "array", "float32", chunk_compression="zstd", ndim=2),
    Htype("text", "text", "str", chunk_compression="zstd"),
    Htype("json", "json", "json", chunk_compression="zstd"),
    Htype("binary", "bytes", "bytes"),
    # links: URIs of objects that stay in the lake, fetched and decoded as the inner htype
    Htype("link[image]", "text", "str", chunk_compression="zstd"),
    Htype("link[video]", "text", "str", chunk_compression="zstd"),
    Htype("link[audio]", "text", "str", chunk_compression="zstd"),
    Htype("link[binary]", "text", "str", chunk_compression="zstd"),
]}


def get_htype(name: str) -> Htype:
    try:
        return HTYPES[name]
    except KeyError:
        raise SchemaError(
            f"unknown htype {name!r}; choose one of {', '.join(sorted(HTYPES))}"
        ) from None
