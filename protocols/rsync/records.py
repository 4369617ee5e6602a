"""The pipelined part of a folder sync: typed records packed many to a frame, compressed.

Once both manifests are known, each side streams its requests (path, resume offset, signature of
its basis) and, at the same time, the deltas the peer asked for, in the order it asked. Records
never span frames; a batch of records is one RSYNC_BATCH frame, zstd-compressed when that pays
(one context per frame, so text across many small files compresses together). Sans-I/O.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

import zstandard

from .errors import LimitExceeded, WireFormatError

RECORD = struct.Struct("<BI")  # tag, body length
REQUEST = struct.Struct("<Q")  # resume offset, then the path
DELTA_END = struct.Struct("<QQ")  # literal bytes, matched bytes

PIECE = 256 << 10  # largest body of a SIGNATURE or DELTA record: long streams are cut in pieces
BATCH_TARGET = 256 << 10  # a batch is sent once it holds this much
MAX_BATCH = 768 << 10  # never more raw bytes in one batch: compressed or not it fits a frame
ZSTD_LEVEL = 3

CODEC_RAW = 0
CODEC_ZSTD = 1


class Tag(IntEnum):
    REQUEST = 1  # receiver -> sender: this file please, from this offset; its signature follows
    SIGNATURE = 2  # a piece of the signature of the receiver's basis
    SIGNATURE_END = 3
    REQUESTS_DONE = 4  # receiver -> sender: nothing more to ask for
    DELTA = 5  # sender -> receiver: a piece of the delta of the file asked for
    DELTA_END = 6  # literal and matched byte counts of that delta
    MISSING = 7  # sender -> receiver: that file cannot be sent (changed or gone); the reason


_TAGS = {t.value: t for t in Tag}


@dataclass(frozen=True, slots=True)
class Record:
    tag: Tag
    body: bytes | memoryview = b""


def encode(tag: Tag, body: bytes | bytearray | memoryview = b"") -> bytes:
    if len(body) > PIECE + 64:
        raise ValueError(f"a {tag.name} record of {len(body)} bytes: cut it in pieces first")
    return RECORD.pack(tag, len(body)) + bytes(body)


def encode_request(path: str, resume_offset: int) -> bytes:
    return encode(Tag.REQUEST, REQUEST.pack(resume_offset) + path.encode("utf-8", "surrogateescape"))


def decode_request(body) -> tuple[str, int]:
    if len(body) <= REQUEST.size:
        raise WireFormatError("malformed file request")
    (resume,) = REQUEST.unpack_from(body)
    return bytes(body[REQUEST.size:]).decode("utf-8", "surrogateescape"), resume


def encode_delta_end(literal: int, matched: int) -> bytes:
    return encode(Tag.DELTA_END, DELTA_END.pack(literal, matched))


def decode_delta_end(body) -> tuple[int, int]:
    if len(body) != DELTA_END.size:
        raise WireFormatError("malformed delta end")
    return DELTA_END.unpack(body)


def pieces(tag: Tag, data: bytes | bytearray | memoryview) -> list[bytes]:
    """`data` as records of at most PIECE bytes each (none for no data)."""
    view = memoryview(data)
    return [encode(tag, view[i:i + PIECE]) for i in range(0, len(view), PIECE)]


def decode_records(batch: bytes | bytearray) -> list[Record]:
    """Every record of one decoded batch; a batch holds whole records only."""
    view = memoryview(batch)
    out: list[Record] = []
    pos, end = 0, len(view)
    while pos < end:
        if end - pos < RECORD.size:
            raise WireFormatError("a batch ends inside a record header")
        tag_value, length = RECORD.unpack_from(view, pos)
        tag = _TAGS.get(tag_value)
        if tag is None:
            raise WireFormatError(f"unknown folder-sync record tag 0x{tag_value:02x}")
        pos += RECORD.size
        if length > end - pos:
            raise WireFormatError(f"a {tag.name} record runs past the end of its batch")
        out.append(Record(tag, view[pos:pos + length]))
        pos += length
    return out


class BatchEncoder:
    """Collects records; `take()` returns a frame payload (codec byte + body) when one is due."""

    def __init__(self, level: int = ZSTD_LEVEL) -> None:
        self._buf = bytearray()
        self._level = level

    def __len__(self) -> int:
        return len(self._buf)

    def fits(self, record: bytes) -> bool:
        return len(self._buf) + len(record) <= MAX_BATCH

    def add(self, record: bytes) -> None:
        self._buf += record

    def take(self) -> bytes:
        return self.encode(self.cut())

    def cut(self) -> bytes:
        """The records so far, as one batch body; the encoder starts a new one."""
        body, self._buf = bytes(self._buf), bytearray()
        return body

    def encode(self, body: bytes) -> bytes:
        """A frame payload for `body` (may run in a worker thread: zstd releases the GIL)."""
        compressed = zstandard.ZstdCompressor(level=self._level, write_content_size=True).compress(body)
        if len(compressed) + 1 < len(body):
            return bytes([CODEC_ZSTD]) + compressed
        return bytes([CODEC_RAW]) + body


_DCTX = zstandard.ZstdDecompressor()


def decode_batch(payload: bytes | bytearray) -> bytes | memoryview:
    """The records' bytes of one RSYNC_BATCH payload; a compressed body may not announce (or
    expand to) more than MAX_BATCH bytes."""
    if not payload:
        raise WireFormatError("empty folder-sync batch")
    codec, body = payload[0], memoryview(payload)[1:]
    if codec == CODEC_RAW:
        return body
    if codec != CODEC_ZSTD:
        raise WireFormatError(f"unknown batch codec {codec}")
    try:
        size = zstandard.frame_content_size(body)
    except zstandard.ZstdError as exc:
        raise WireFormatError(f"corrupt compressed batch: {exc}") from None
    if size < 0 or size > MAX_BATCH:
        raise LimitExceeded(f"a compressed batch announces {size} bytes (at most {MAX_BATCH})")
    try:
        out = _DCTX.decompress(body, max_output_size=MAX_BATCH)
    except zstandard.ZstdError as exc:
        raise WireFormatError(f"corrupt compressed batch: {exc}") from None
    if len(out) != size:
        raise WireFormatError("a compressed batch does not hold what it announces")
    return out
