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
    # rsync-style folder sync, 0x40-0x5F (protocols/rsync/messages.py holds the payloads).
    RSYNC_MANIFEST = 0x40  # a piece of the sender's manifest changes (zstd JSON)
    RSYNC_MANIFEST_END = 0x41  # the manifest is whole
    RSYNC_DONE = 0x47  # caller -> callee: all applied here; what this side skipped (JSON)
    RSYNC_FINISHED = 0x48  # callee -> caller: both sides done, the synced state is recorded
    RSYNC_HELLO = 0x49  # either way, first: exchange version and the last-synced state's digest
    RSYNC_BATCH = 0x4A  # requests, signatures and deltas, many records per frame (records.py)
    # SyncML-like record sync, 0x20-0x3F.
    SYNCML_MESSAGE = 0x20  # one SyncML message, or the last piece of one split over frames
    SYNCML_PART = 0x21  # a piece of a message larger than a frame; the rest follows
    SYNCML_SUMMARY = 0x22  # callee -> caller once the sync is done: its counts (JSON)
    SYNCML_DATASET = 0x23  # after the items, either way: the dataset's own data (JSON)


# One lookup per header instead of a try/except around the enum constructor.
_TYPES: list[FrameType | None] = [None] * 256
for _kind in FrameType:
    _TYPES[_kind] = _kind


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame. A decoded payload is the bytearray the network bytes were read into, handed
    over without a copy; it compares equal to bytes with the same content."""

    kind: FrameType
    payload: bytes | bytearray = b""


def encode_header(kind: FrameType, length: int) -> bytes:
    return HEADER.pack(kind, 0, length)


def encode_frame(kind: FrameType, payload: bytes | bytearray | memoryview = b"") -> bytes:
    """One frame as bytes (the asyncio side writes header and payload apart, to skip the copy)."""
    return encode_header(kind, len(payload)) + bytes(payload)


class FrameDecoder:
    """Turns a byte stream into Frames, either fed in chunks of any size (`feed`) or read straight
    into the decoder's own buffers (`get_buffer` / `buffer_updated`, as asyncio.BufferedProtocol
    does), so that TLS decrypts a payload directly where the Frame will hold it.

    Garbage (an unknown type, reserved flags, a length over the cap) sets `error`; frames before
    it are still returned, since the peer did send them. The stream has no resync point, so every
    later `feed` or `buffer_updated` raises that error.
    """

    def __init__(self, max_frame_size: int = DEFAULT_MAX_FRAME_SIZE):
        self.max_frame_size = max_frame_size
        self.error: ChannelError | None = None
        self._header = bytearray(HEADER_SIZE)
        self._header_view = memoryview(self._header)
        self._kind: FrameType | None = None  # set while a payload is being read
        self._payload = bytearray()
        self._payload_view = memoryview(self._payload)
        self._filled = 0  # bytes of the current header or payload already read

    @property
    def in_frame(self) -> bool:
        """True when part of a frame has arrived and the rest has not."""
        return self._filled > 0 or self._kind is not None

    def get_buffer(self) -> memoryview:
        """Where the next bytes of the stream go: the rest of the current header or payload.

        Never more than that, so a read never runs into the next frame and needs no copying.
        """
        if self.error is not None:
            return memoryview(bytearray(HEADER_SIZE))  # the stream is dead; bytes go nowhere
        if self._kind is None:
            return self._header_view[self._filled :]
        return self._payload_view[self._filled :]

    def buffer_updated(self, nbytes: int) -> list[Frame]:
        """`nbytes` were written at the start of the last `get_buffer()`; the frame they end."""
        if self.error is not None:
            raise self.error
        self._filled += nbytes
        if self._kind is None:
            if self._filled < HEADER_SIZE:
                return []
            self._filled = 0
            kind_byte, flags, length = HEADER.unpack(self._header)
            kind = self._check_header(kind_byte, flags, length)
            if kind is None:
                return []
            if length == 0:
                return [Frame(kind)]
            self._kind = kind
            self._payload = bytearray(length)
            self._payload_view = memoryview(self._payload)
            return []
        if self._filled < len(self._payload):
            return []
        frame = Frame(self._kind, self._payload)
        self._kind, self._filled = None, 0
        # The Frame owns that buffer now; the next payload gets a new one.
        self._payload = bytearray()
        self._payload_view = memoryview(self._payload)
        return [frame]

    def feed(self, data: bytes | bytearray | memoryview) -> list[Frame]:
        """All frames completed by `data`; the bytes are copied into the decoder's buffers."""
        if self.error is not None:
            raise self.error
        frames: list[Frame] = []
        source = memoryview(data).cast("B")
        offset, end = 0, len(source)
        while offset < end and self.error is None:
            target = self.get_buffer()
            take = min(len(target), end - offset)
            target[:take] = source[offset : offset + take]
            offset += take
            frames += self.buffer_updated(take)
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
