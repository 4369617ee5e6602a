"""Why a data channel ended: one typed error, carried in ERROR frames so both sides read it."""

from __future__ import annotations

import struct
from enum import IntEnum


class ErrorCode(IntEnum):
    """What kind of failure ended the channel; travels as one byte in an ERROR frame."""

    PROTOCOL = 1  # bytes that are not our frames, or frames out of place
    PINNING = 2  # a certificate whose fingerprint is not the pinned one
    AUTHENTICATION = 3  # wrong token, or a signature that does not verify
    TIMEOUT = 4  # connect, handshake or idle time exceeded
    GONE = 5  # the connection dropped without a goodbye
    CLOSED = 6  # the peer closed the channel in order
    TRANSFER = 7  # the transfer on top of the channel failed (paths, hashes, disk)
    ABORTED = 8  # the local side gave up, for a reason of its own
    CONNECT = 9  # the peer could not be reached at all


class ChannelError(Exception):
    """A channel failure with the reason a user will read.

    `remote` is true when the peer detected the failure and told us in an ERROR frame.
    """

    def __init__(self, reason: str, code: ErrorCode = ErrorCode.PROTOCOL, *, remote: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.remote = remote

    def __str__(self) -> str:
        return f"the peer reports: {self.reason}" if self.remote else self.reason

    def __repr__(self) -> str:
        return f"ChannelError({self.reason!r}, {self.code.name}, remote={self.remote})"


# An ERROR payload: code byte, then the reason in UTF-8, capped so a hostile peer cannot
# make us log megabytes.
_MAX_REASON_BYTES = 1024


def encode_error(code: ErrorCode, reason: str) -> bytes:
    text = reason.encode("utf-8")[:_MAX_REASON_BYTES]
    return struct.pack(">B", code) + text


def decode_error(payload: bytes | bytearray) -> ChannelError:
    """The ChannelError a peer reported; an unreadable report is still a (PROTOCOL) error."""
    if not payload:
        return ChannelError("the peer reported an error without a reason", remote=True)
    try:
        code = ErrorCode(payload[0])
    except ValueError:
        code = ErrorCode.PROTOCOL
    reason = payload[1 : 1 + _MAX_REASON_BYTES].decode("utf-8", errors="replace")
    return ChannelError(reason or "no reason given", code, remote=True)
