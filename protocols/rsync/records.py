"""The pipelined part of a folder sync: typed records packed many to a frame, compressed.

Once both manifests are known, each side streams its requests (path, resume offset, signature of
its basis) and, at the same time, the deltas the peer asked for, in the order it asked. Records
never span frames; a batch of records is one RSYNC_BATCH frame. Each direction's batches are one
zstd stream, flushed at the end of every batch: the peer can read each batch whole as it
arrives, and what was sent before (other files, earlier frames) stays the context of what
follows, as rsync -z keeps one deflate stream for a session. Sans-I/O.
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
# The stream's window and match table: 1 MiB of context (the batch and those just before it)
# and a 64 Ki-entry table, which measured as fast as a fresh level-3 frame per batch; level
# 3's own 2 MiB and 128 Ki entries took ~30 % more CPU for 0.4 % fewer bytes on a first sync.
STREAM_WINDOW_LOG = 20
STREAM_HASH_LOG = 16
MAX_WINDOW = 8 << 20  # the largest zstd window a peer's stream may ask this side to hold

CODEC_RAW = 0
# 1 was a zstd frame per batch (exchange version 3)
CODEC_STREAM = 2  # the next piece of this direction's zstd stream, flushed at its end


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
    """Collects records; `take()` returns a frame payload (codec byte + body) when one is due.
    One encoder per direction of a session: its batches share one compression stream."""

    def __init__(self, level: int = ZSTD_LEVEL) -> None:
        self._buf = bytearray()
        params = zstandard.ZstdCompressionParameters.from_level(
            level, window_log=STREAM_WINDOW_LOG, hash_log=STREAM_HASH_LOG)
        self._stream = zstandard.ZstdCompressor(compression_params=params).compressobj()

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
        """The frame payload for `body`, which must go out before the next one is encoded (may
        run in a worker thread: zstd releases the GIL). Bytes zstd cannot shrink it stores as
        they are, a few bytes a block dearer, so no batch needs a raw path of its own."""
        return bytes([CODEC_STREAM]) + self._stream.compress(body) + \
            self._stream.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK)


class _Room:
    """Where one batch is decompressed: refuses to hold more than MAX_BATCH bytes, so a stream
    piece that would expand past it (a zstd bomb) stops as soon as it does."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data) -> int:
        if len(self.data) + len(data) > MAX_BATCH:
            raise LimitExceeded(f"a compressed batch expands past {MAX_BATCH} bytes")
        self.data += data
        return len(data)


class BatchDecoder:
    """The peer's batches in, their records' bytes out, in the order they were sent: one per
    direction of a session, as the peer's `BatchEncoder`."""

    def __init__(self) -> None:
        self._room = _Room()
        # An output buffer larger than any batch: zstd hands over everything a piece holds
        # within one write, and a bomb overflows the room on its first full buffer.
        self._stream = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).stream_writer(
            self._room, write_size=MAX_BATCH + 1)

    def decode(self, payload: bytes | bytearray) -> bytes | memoryview:
        if not payload:
            raise WireFormatError("empty folder-sync batch")
        codec, body = payload[0], memoryview(payload)[1:]
        if codec == CODEC_RAW:
            return body
        if codec != CODEC_STREAM:
            raise WireFormatError(f"unknown batch codec {codec}")
        self._room.data = bytearray()
        try:
            self._stream.write(body)
        except zstandard.ZstdError as exc:
            raise WireFormatError(f"corrupt compressed batch: {exc}") from None
        return self._room.data
