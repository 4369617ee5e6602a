"""Length-prefixed typed frames: the sans-I/O encoder and decoder of the data channel.

A frame is a 6-byte header (type, flags, payload length as big-endian u32) and the payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from protocols.channel.errors import ChannelError, ErrorCode

HEADER = struct.Struct(">BBI")
HEADER_SIZE = HEADER.size
DEFAULT_MAX_FRAME_SIZE = 1024 * 1024
# What bulk senders should put in one DATA frame: large enough that per-frame costs vanish,
# small enough to stay well under the cap and keep flow control responsive.
DATA_CHUNK_SIZE = 256 * 1024


class FrameType(IntEnum):
    """Every frame type the channel knows; anything else on the wire is garbage.

    Ranges leave room for the sync protocols: 0x20-0x3F SyncML-like records, 0x40-0x5F rsync delta.
    """

    # The channel itself, 0x01-0x0F.
    CHALLENGE = 0x01  # server -> client: protocol version and a fresh nonce
    HELLO = 0x02  # client -> server: token, client certificate, signature over the transcript
    ACCEPT = 0x03  # server -> client: the client is authenticated
    ERROR = 0x04  # either way: error code and reason, then the sender closes
    CLOSE = 0x05  # either way: orderly end, nothing follows
    DATA = 0x06  # opaque bytes of whichever protocol runs on top
    # The plain "copy this dataset" transfer, 0x10-0x1F (a stopgap until the sync protocols).
    COPY_START = 0x10
    COPY_DIRECTORY = 0x11
    COPY_FILE = 0x12
    COPY_FILE_END = 0x13
    COPY_DONE = 0x14
    COPY_COMMITTED = 0x15


# One lookup per header instead of a try/except around the enum constructor.
_TYPES: list[FrameType | None] = [None] * 256
for _kind in FrameType:
    _TYPES[_kind] = _kind


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameType
    payload: bytes = b""


def encode_header(kind: FrameType, length: int) -> bytes:
    return HEADER.pack(kind, 0, length)


def encode_frame(kind: FrameType, payload: bytes | bytearray | memoryview = b"") -> bytes:
    """One frame as bytes; the asyncio side writes header and payload separately to avoid the copy."""
    return encode_header(kind, len(payload)) + bytes(payload)


class FrameDecoder:
    """Turns a byte stream, fed in chunks of any size, into Frames.

    Garbage (an unknown type, reserved flags, a length over the cap) sets `error`; the frames
    before it in the same chunk are still returned, since the peer did send them. The stream has
    no resync point, so every later `feed` raises that error.

    Each payload is copied once: partial payloads are kept as views of the fed bytes and joined
    when complete.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE):
        self.max_frame_size = max_frame_size
        self._header = bytearray()
        self._kind: FrameType | None = None  # set while a payload is being collected
        self._remaining = 0
        self._parts: list[memoryview] = []
        self.error: ChannelError | None = None

    @property
    def in_frame(self) -> bool:
        """True when part of a frame has arrived and the rest has not."""
        return bool(self._header) or self._kind is not None

    def feed(self, data: bytes) -> list[Frame]:
        if self.error is not None:
            raise self.error
        if not isinstance(data, bytes):
            data = bytes(data)  # views into immutable bytes only: the caller may reuse its buffer
        frames: list[Frame] = []
        view = memoryview(data)
        offset, end = 0, len(data)
        while offset < end:
            if self._kind is None:
                if not self._header and end - offset >= HEADER_SIZE:
                    kind_byte, flags, length = HEADER.unpack_from(data, offset)
                    offset += HEADER_SIZE
                else:
                    take = min(HEADER_SIZE - len(self._header), end - offset)
                    self._header += view[offset : offset + take]
                    offset += take
                    if len(self._header) < HEADER_SIZE:
                        break
                    kind_byte, flags, length = HEADER.unpack(self._header)
                    self._header.clear()
                kind = self._check_header(kind_byte, flags, length)
                if kind is None:
                    break
                if length == 0:
                    frames.append(Frame(kind))
                else:
                    self._kind, self._remaining = kind, length
                continue
            take = min(self._remaining, end - offset)
            chunk = view[offset : offset + take]
            offset += take
            self._remaining -= take
            if self._remaining:
                self._parts.append(chunk)
                continue
            if self._parts:
                self._parts.append(chunk)
                payload = b"".join(self._parts)
                self._parts.clear()
            elif take == end:
                payload = data  # the whole chunk is exactly one payload: no copy at all
            else:
                payload = bytes(chunk)
            frames.append(Frame(self._kind, payload))
            self._kind = None
        return frames

    def _check_header(self, kind_byte: int, flags: int, length: int) -> FrameType | None:
        kind = _TYPES[kind_byte]
        if kind is None:
            reason = f"garbage on the channel: unknown frame type 0x{kind_byte:02x}"
        elif flags:
            reason = f"garbage on the channel: unknown flags 0x{flags:02x} on a {kind.name} frame"
        elif length > self.max_frame_size:
            reason = f"a {kind.name} frame of {length} bytes exceeds the cap of {self.max_frame_size} bytes"
        else:
            return kind
        self.error = ChannelError(reason, ErrorCode.PROTOCOL)
        return None
