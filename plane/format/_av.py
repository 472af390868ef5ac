"""Video and audio: probe shapes from container headers and decode, with PyAV (FFmpeg).

Optional (`tensorplane[av]`), imported lazily. The file's bytes are stored as given; a video
decodes to uint8 (T, H, W, 3) RGB frames, audio to float32 (samples, channels). One library
for both: PyAV reads every container/codec FFmpeg does (mp4, mkv, webm, avi; wav, mp3, flac,
ogg), where soundfile would add a second dependency for audio only.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from plane._errors import MissingDependencyError, SampleError

__all__ = ["available", "probe_av", "decode_video", "decode_audio", "VIDEO", "AUDIO"]

VIDEO = ("mp4", "mkv", "avi", "webm")
AUDIO = ("wav", "mp3", "flac", "ogg")
_INT_SCALE = {"s16": 32768.0, "s32": 2147483648.0}


def available() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def _av() -> Any:
    try:
        import av
    except ImportError:
        raise MissingDependencyError("decoding video/audio needs PyAV: pip install "
                                     "'tensorplane[av]'; or read the stored file bytes with "
                                     ".bytes()") from None
    return av


def _open(data: bytes | memoryview) -> Any:
    av = _av()
    try:
        return av.open(io.BytesIO(bytes(data)), mode="r")
    except (av.error.FFmpegError, ValueError) as e:  # type: ignore[attr-defined]
        raise SampleError(f"cannot open the media container: {e}") from None


def probe_av(data: bytes | memoryview, compression: str) -> tuple[int, ...]:
    """(T, H, W, 3) of a video or (samples, channels) of audio, from headers where the
    container records them, else by decoding (audio, and videos without a frame count)."""
    if compression in AUDIO:
        return tuple(decode_audio(data).shape)
    with _open(data) as c:
        if not c.streams.video:
            raise SampleError("no video stream in the container")
        s = c.streams.video[0]
        h, w = int(s.codec_context.height), int(s.codec_context.width)
        t = int(s.frames or 0)
    if not t or not h:
        return tuple(decode_video(data).shape)
    return (t, h, w, 3)


def decode_video(data: bytes | memoryview) -> np.ndarray:
    av = _av()
    with _open(data) as c:
        if not c.streams.video:
            raise SampleError("no video stream in the container")
        try:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        except av.error.FFmpegError as e:  # type: ignore[attr-defined]
            raise SampleError(f"cannot decode the video: {e}") from None
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8)
    return np.stack(frames)


def decode_audio(data: bytes | memoryview) -> np.ndarray:
    av = _av()
    with _open(data) as c:
        if not c.streams.audio:
            raise SampleError("no audio stream in the container")
        s = c.streams.audio[0]
        channels = int(s.codec_context.channels or 1)
        parts = []
        try:
            for f in c.decode(audio=0):
                raw = f.to_ndarray()
                a = raw.T if f.format.is_planar else raw.reshape(-1, channels)
                base = f.format.name.rstrip("p")
                if base == "u8":
                    a = (a.astype(np.float32) - 128.0) / 128.0
                elif base in _INT_SCALE:
                    a = a.astype(np.float32) / _INT_SCALE[base]
                parts.append(a.astype(np.float32, copy=False))
        except av.error.FFmpegError as e:  # type: ignore[attr-defined]
            raise SampleError(f"cannot decode the audio: {e}") from None
    if not parts:
        return np.zeros((0, channels), np.float32)
    return np.ascontiguousarray(np.concatenate(parts).astype(np.float32, copy=False))
