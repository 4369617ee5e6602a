"""Versioned binary wire format of signatures and deltas: writers, incremental readers, limits.

Readers are sans-I/O (bytes in, typed records out) and check every length and offset before use.
"""

from __future__ import annotations

import enum
import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import cramjam
import numpy as np
import zstandard

from .errors import LimitExceeded, TruncatedStream, WireFormatError
from .hashes import DIGEST_LEN, HashKind

# Version 2 cuts each block's strong hash to the length its header names (2-16 bytes): the
# receiver picks it from the file's size, as rsync does, and redoes the rare false match.
SIGNATURE_VERSION = 2
# Version 2 sends compressed literals in packs (one zstd frame for the literals of many records);
# version 1 gave every literal a frame of its own, whose set-up cost more than its bytes.
# Version 3 adds packs compressed with LZ4, which a patch decompresses three times as fast.
DELTA_VERSION = 3
SIG_MAGIC = b"SYsg"
DELTA_MAGIC = b"SYdl"

# signature header: magic, version, hash kind, strong length, reserved, block size, basis size
SIG_HEADER = struct.Struct("<4sBBBBIQ")
# delta header: magic, version, hash kind, reserved, block size, basis size, resume offset
DELTA_HEADER = struct.Struct("<4sBBHIQQ")

OP_COPY = 0x01  # u64 basis offset, u64 length
OP_LITERAL = 0x02  # u32 length, raw bytes
OP_END = 0x04  # u64 size of the whole new file, whole-file digest
OP_LITERAL_PACK = 0x05  # u32 raw length, u32 compressed length, one zstd frame: the bytes of
#                         the PACKED_LITERAL records that follow it, in their order
OP_PACKED_LITERAL = 0x06  # u32 length: the pack's next bytes
OP_LITERAL_PACK_LZ4 = 0x07  # as OP_LITERAL_PACK, with one LZ4 block instead of a zstd frame

COPY = struct.Struct("<BQQ")
LITERAL = struct.Struct("<BI")
LITERAL_PACK = struct.Struct("<BII")
PACKED_LITERAL = struct.Struct("<BI")
END = struct.Struct(f"<BQ{DIGEST_LEN}s")

MIN_STRONG_LEN = 2


@functools.cache  # a dtype costs more to make than a small file's whole signature
def sig_record(strong_len: int) -> np.dtype:
    """One block of a signature on the wire: the weak sum, then the strong hash's first bytes."""
    return np.dtype([("weak", "<u4"), ("strong", f"V{strong_len}")])


class PackCodec(enum.IntEnum):
    """How a literal pack is compressed; the value is the pack record's tag."""

    ZSTD = OP_LITERAL_PACK
    LZ4 = OP_LITERAL_PACK_LZ4


@dataclass(frozen=True)
class Limits:
    """What a reader accepts; anything outside is `LimitExceeded`, before any allocation."""

    min_block_size: int = 64
    max_block_size: int = 1 << 22
    max_blocks: int = 1 << 25
    max_file_size: int = 1 << 42
    max_literal: int = 8 << 20


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class SignatureHeader:
    hash_kind: HashKind
    block_size: int
    basis_size: int
    strong_len: int = DIGEST_LEN  # bytes of each block's strong hash that travel

    @property
    def block_count(self) -> int:
        return -(-self.basis_size // self.block_size)


@dataclass(frozen=True)
class DeltaHeader:
    hash_kind: HashKind
    block_size: int
    basis_size: int
    resume_offset: int


@dataclass(frozen=True)
class CopyOp:
    """Copy `length` bytes of the basis from `offset`."""

    offset: int
    length: int


@dataclass(frozen=True)
class LiteralOp:
    """Bytes the basis does not have, already decompressed.

    From `DeltaReader` a raw literal comes in as many pieces as it was fed in, each a view of the
    fed buffer (valid while that buffer is unchanged): the reader copies none of its bytes. A
    packed literal is a view of its decompressed pack.
    """

    data: bytes | memoryview


@dataclass(frozen=True)
class DeltaEnd:
    """Size and whole-file digest of the complete new file (resumed prefix included)."""

    size: int
    digest: bytes


DeltaOp = CopyOp | LiteralOp
DeltaEvent = DeltaHeader | CopyOp | LiteralOp | DeltaEnd


def encode_signature_header(h: SignatureHeader) -> bytes:
    return SIG_HEADER.pack(SIG_MAGIC, SIGNATURE_VERSION, h.hash_kind, h.strong_len, 0,
                           h.block_size, h.basis_size)


def encode_delta_header(h: DeltaHeader) -> bytes:
    return DELTA_HEADER.pack(DELTA_MAGIC, DELTA_VERSION, h.hash_kind, 0, h.block_size, h.basis_size,
                             h.resume_offset)


def encode_copy(offset: int, length: int) -> bytes:
    return COPY.pack(OP_COPY, offset, length)


def encode_literal(raw: bytes) -> bytes:
    """A raw literal record."""
    return LITERAL.pack(OP_LITERAL, len(raw)) + raw


def encode_literal_pack(raw_length: int, frame: bytes, codec: PackCodec = PackCodec.ZSTD) -> bytes:
    """A pack: `frame` holds the `raw_length` bytes of the PACKED_LITERAL records after it."""
    return LITERAL_PACK.pack(codec, raw_length, len(frame)) + frame


def encode_packed_literal(length: int) -> bytes:
    return PACKED_LITERAL.pack(OP_PACKED_LITERAL, length)


def encode_end(size: int, digest: bytes) -> bytes:
    return END.pack(OP_END, size, digest)


def _hash_kind(value: int) -> HashKind:
    try:
        return HashKind(value)
    except ValueError:
        raise WireFormatError(f"unknown strong hash kind {value}") from None


def _check_block_size(block_size: int, limits: Limits) -> None:
    if not limits.min_block_size <= block_size <= limits.max_block_size:
        raise LimitExceeded(f"block size {block_size} outside "
                            f"[{limits.min_block_size}, {limits.max_block_size}]")


class SignatureReader:
    """Reads a signature stream fed in pieces; `finish()` returns the records, all checked."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buf = bytearray()
        self.header: SignatureHeader | None = None
        self._expect = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        if self.header is None and len(self._buf) >= SIG_HEADER.size:
            self._parse_header()
        if self.header is not None and len(self._buf) > self._expect:
            raise WireFormatError("signature stream has bytes past its last block")

    def _parse_header(self) -> None:
        magic, version, kind, strong_len, _res, block_size, basis_size = SIG_HEADER.unpack_from(self._buf)
        if magic != SIG_MAGIC:
            raise WireFormatError("not a sipsync signature (bad magic)")
        if version != SIGNATURE_VERSION:
            raise WireFormatError(f"signature version {version} not supported "
                                  f"(want {SIGNATURE_VERSION})")
        kind = _hash_kind(kind)
        if not MIN_STRONG_LEN <= strong_len <= DIGEST_LEN:
            raise WireFormatError(f"strong hash length {strong_len} outside "
                                  f"[{MIN_STRONG_LEN}, {DIGEST_LEN}]")
        _check_block_size(block_size, self._limits)
        if basis_size > self._limits.max_file_size:
            raise LimitExceeded(f"basis size {basis_size} above {self._limits.max_file_size}")
        header = SignatureHeader(kind, block_size, basis_size, strong_len)
        if header.block_count > self._limits.max_blocks:
            raise LimitExceeded(f"{header.block_count} blocks above {self._limits.max_blocks}")
        self.header = header
        self._expect = SIG_HEADER.size + header.block_count * sig_record(strong_len).itemsize

    def finish(self) -> tuple[SignatureHeader, np.ndarray]:
        """Header and a structured array of (weak, strong) per block; raises if incomplete."""
        if self.header is None or len(self._buf) < self._expect:
            raise TruncatedStream("signature stream ended early")
        records = np.frombuffer(bytes(self._buf), dtype=sig_record(self.header.strong_len),
                                offset=SIG_HEADER.size)
        return self.header, records


class DeltaReader:
    """Incremental delta decoder: `feed(bytes)` returns the header, ops and end as they complete.

    Records are read straight from the fed buffer; only a record cut by the end of a feed is
    gathered (at most one literal pack, `Limits.max_literal`). Raw literal bytes are never
    gathered: they go out as `LiteralOp`s over the fed buffer as soon as they arrive. A pack is
    decompressed when it is whole and held until its packed literals have taken all of it; they
    go out as views of it.
    """

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._pending = bytearray()  # the start of a record the last feed cut
        self._literal_left = 0  # raw literal bytes still to come
        self.header: DeltaHeader | None = None
        self.ended = False
        self._dctx: zstandard.ZstdDecompressor | None = None  # made for the first pack
        self._pack = memoryview(b"")  # what the packed literals still have to take
        self._room = bytearray()  # where `events()` decompresses every pack
        self._reuse_room = False

    def feed(self, data) -> list[DeltaEvent]:
        """All the events `data` completes; each packed literal has a pack of its own."""
        return list(self._events(data, reuse_room=False))

    def events(self, data) -> Iterator[DeltaEvent]:
        """The same events, one at a time, for a caller that uses each before it draws the next
        (and draws them all before the next feed): every pack is decompressed into the same
        room, so a packed literal's bytes are only valid until the next event is drawn. Then at
        most one pack is held, however many a feed brings, and no pack pays for fresh memory."""
        return self._events(data, reuse_room=True)

    def _events(self, data, reuse_room: bool) -> Iterator[DeltaEvent]:
        self._reuse_room = reuse_room
        view = memoryview(data)
        if view.ndim != 1 or view.itemsize != 1:
            view = view.cast("B")
        pos, n = 0, len(view)
        while pos < n:
            if self._literal_left:
                take = min(self._literal_left, n - pos)
                self._literal_left -= take
                yield LiteralOp(view[pos:pos + take])
                pos += take
                continue
            if self.ended:
                raise WireFormatError("delta stream has bytes after its end record")
            if self._pending:
                pos, event = self._complete_pending(view, pos)
            else:
                need = self._record_size(view, pos, n - pos)
                if n - pos < need:
                    self._pending += view[pos:]
                    return
                event = self._parse(view, pos)
                pos += need
            if event is not None:
                yield event

    def finish(self) -> None:
        """Call at end of stream: anything but a clean end record is an error."""
        if not self.ended:
            raise TruncatedStream("delta stream ended before its end record")

    def _complete_pending(self, view: memoryview, pos: int) -> tuple[int, DeltaEvent | None]:
        """Gather just enough of `view` to complete the cut record; parse it when whole."""
        buf = self._pending
        while (need := self._record_size(buf, 0, len(buf))) > len(buf):
            take = min(need - len(buf), len(view) - pos)
            if not take:
                return pos, None
            buf += view[pos:pos + take]
            pos += take
        self._pending = bytearray()
        return pos, self._parse(buf, 0)

    def _record_size(self, buf, pos: int, avail: int) -> int:
        """Bytes of the record at `pos`: its fixed part until that has arrived, then all of it
        (a raw literal's payload is not counted: it streams). Lengths are checked here, before
        anything is gathered."""
        if self.header is None:
            return DELTA_HEADER.size
        tag = buf[pos]
        if tag == OP_COPY:
            return COPY.size
        if tag == OP_LITERAL:
            return LITERAL.size
        if tag == OP_PACKED_LITERAL:
            return PACKED_LITERAL.size
        if tag == OP_LITERAL_PACK or tag == OP_LITERAL_PACK_LZ4:
            if self._pack:
                raise WireFormatError("a literal pack before the last one was used up")
            if avail < LITERAL_PACK.size:
                return LITERAL_PACK.size
            _, raw_len, comp_len = LITERAL_PACK.unpack_from(buf, pos)
            self._check_literal_len(raw_len)
            if comp_len >= raw_len:
                raise WireFormatError("literal pack not smaller than its raw length")
            return LITERAL_PACK.size + comp_len
        if tag == OP_END:
            return END.size
        raise WireFormatError(f"unknown delta record tag 0x{tag:02x}")

    def _parse(self, buf, pos: int) -> DeltaEvent | None:
        """The whole record (as `_record_size` counts it) at `pos`: its event, if it has one."""
        if self.header is None:
            self.header = self._parse_header(buf, pos)
            return self.header
        tag = buf[pos]
        if tag == OP_COPY:
            _, offset, length = COPY.unpack_from(buf, pos)
            return self._check_copy(offset, length)
        if tag == OP_PACKED_LITERAL:
            _, length = PACKED_LITERAL.unpack_from(buf, pos)
            if not 0 < length <= len(self._pack):
                raise WireFormatError(f"packed literal of {length} bytes, its pack has "
                                      f"{len(self._pack)} left")
            event = LiteralOp(self._pack[:length])
            self._pack = self._pack[length:]
            return event
        if tag == OP_LITERAL:
            _, length = LITERAL.unpack_from(buf, pos)
            self._check_literal_len(length)
            self._literal_left = length
            return None
        if tag == OP_LITERAL_PACK or tag == OP_LITERAL_PACK_LZ4:
            _, raw_len, comp_len = LITERAL_PACK.unpack_from(buf, pos)
            start = pos + LITERAL_PACK.size
            self._pack = self._unpack(memoryview(buf)[start:start + comp_len], raw_len, tag)
            return None
        # OP_END: _record_size let no other tag through
        _, size, digest = END.unpack_from(buf, pos)
        if size > self._limits.max_file_size:
            raise LimitExceeded(f"file size {size} above {self._limits.max_file_size}")
        if self._pack:
            raise WireFormatError(f"the delta ends with {len(self._pack)} packed bytes unused")
        self.ended = True
        return DeltaEnd(size, digest)

    def _unpack(self, frame: memoryview, raw_len: int, codec: int) -> memoryview:
        if not self._reuse_room:
            room = memoryview(bytearray(raw_len))
        else:
            if len(self._room) < raw_len:
                self._room = bytearray(raw_len)
            room = memoryview(self._room)[:raw_len]
        if codec == OP_LITERAL_PACK_LZ4:
            _decompress_lz4_into(frame, room)
            return room
        if self._dctx is None:
            self._dctx = zstandard.ZstdDecompressor()
        _decompress_into(self._dctx, frame, room)
        return room

    def _parse_header(self, buf, pos: int) -> DeltaHeader:
        magic, version, kind, _res, block_size, basis_size, resume = DELTA_HEADER.unpack_from(buf, pos)
        if magic != DELTA_MAGIC:
            raise WireFormatError("not a sipsync delta (bad magic)")
        if version != DELTA_VERSION:
            raise WireFormatError(f"delta version {version} not supported (want {DELTA_VERSION})")
        _check_block_size(block_size, self._limits)
        for name, value in (("basis size", basis_size), ("resume offset", resume)):
            if value > self._limits.max_file_size:
                raise LimitExceeded(f"{name} {value} above {self._limits.max_file_size}")
        return DeltaHeader(_hash_kind(kind), block_size, basis_size, resume)

    def _check_copy(self, offset: int, length: int) -> CopyOp:
        assert self.header is not None
        if length == 0:
            raise WireFormatError("copy of zero bytes")
        if offset + length > self.header.basis_size:
            raise LimitExceeded(f"copy [{offset}, {offset + length}) past the basis end "
                                f"{self.header.basis_size}")
        return CopyOp(offset, length)

    def _check_literal_len(self, length: int) -> None:
        if length == 0:
            raise WireFormatError("literal of zero bytes")
        if length > self._limits.max_literal:
            raise LimitExceeded(f"literal of {length} bytes above {self._limits.max_literal}")


def _decompress_lz4_into(block: memoryview, room: memoryview) -> None:
    """Fill `room` exactly from an LZ4 block. LZ4 stops at the room's end (a block that would
    give more fails), so a lying block can neither allocate nor expand past it; one that gives
    fewer bytes, or has bytes after its end, is refused too. Into a room of ours, not a fresh
    bytes object: a fresh 1 MiB per pack cost a page fault per 4 KiB (as long as the decoding)."""
    try:
        got = cramjam.lz4.decompress_block_into(block, room, output_len=len(room))
    except cramjam.DecompressionError as exc:
        raise WireFormatError(f"corrupt literal pack: {exc}") from None
    if got != len(room):
        raise WireFormatError(f"literal pack gives {got} bytes, announced {len(room)}")


def _check_declared_size(frame: memoryview, raw_len: int) -> None:
    declared = zstandard.frame_content_size(frame)
    if declared not in (-1, raw_len):
        raise WireFormatError(f"literal pack says {declared} bytes, announced {raw_len}")


def _decompress_into(dctx: zstandard.ZstdDecompressor, frame: memoryview, room: memoryview) -> None:
    """Fill `room` exactly from `frame`. The frame's own size field must agree, and a frame that
    gives fewer bytes, or has more to give than the room holds, is refused: zstd stops at the
    room's end, so a lying frame can neither allocate nor expand past it."""
    try:
        _check_declared_size(frame, len(room))
        reader = dctx.stream_reader(frame, read_across_frames=False)
        got = 0
        while got < len(room) and (n := reader.readinto(room[got:])):
            got += n
        more = reader.read(1) if got == len(room) else b""
    except zstandard.ZstdError as exc:
        raise WireFormatError(f"corrupt literal pack: {exc}") from None
    if got != len(room) or more:
        raise WireFormatError(f"literal pack gives {'more than ' if more else ''}"
                              f"{got} bytes, announced {len(room)}")
