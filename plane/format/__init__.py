"""Format: tensor metadata, htypes, sample codecs, chunks and the chunk index."""

from plane.format._chunk import ParsedChunk, encode_chunk, parse_chunk
from plane.format._codecs import Block, decode_sample, encode_batch
from plane.format._htypes import HTYPES, Htype, get_htype
from plane.format._index import ChunkIndex
from plane.format._meta import DEFAULT_CHUNK_BYTES, TensorMeta

__all__ = [
    "Block",
    "ChunkIndex",
    "DEFAULT_CHUNK_BYTES",
    "HTYPES",
    "Htype",
    "ParsedChunk",
    "TensorMeta",
    "decode_sample",
    "encode_batch",
    "encode_chunk",
    "get_htype",
    "parse_chunk",
]
