"""Cutting a SIP byte stream (TCP, TLS) into messages by Content-Length (RFC 3261 18.3). Sans-I/O."""

from __future__ import annotations

from .message import MAX_MESSAGE_BYTES, SipParseError

MAX_HEAD_BYTES = 16_384


class StreamFramer:
    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append bytes; return the complete messages they finish.

        Raises SipParseError when the stream cannot be framed any more (the connection must close).
        """
        self._buffer += data
        messages: list[bytes] = []
        while True:
            # CRLF keep-alives (RFC 5626) between messages are skipped.
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD_BYTES:
                    raise SipParseError(f"headers longer than {MAX_HEAD_BYTES} bytes")
                return messages
            if end > MAX_HEAD_BYTES:
                raise SipParseError(f"headers longer than {MAX_HEAD_BYTES} bytes")
            length = _content_length(bytes(self._buffer[:end]))
            total = end + 4 + length
            if len(self._buffer) < total:
                return messages
            messages.append(bytes(self._buffer[:total]))
            del self._buffer[:total]


def _content_length(head: bytes) -> int:
    """The one Content-Length of a message head. Two that differ leave no way to tell where the
    next message starts (RFC 4475 3.3.9), so the stream cannot be framed any more."""
    found: bytes | None = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() not in (b"content-length", b"l"):
            continue
        value = value.strip()
        if not value.isdigit():
            raise SipParseError(f"Content-Length is not a number: {value[:20]!r}")
        if len(value) > 10:
            raise SipParseError(f"Content-Length out of range: {value[:20].decode()}...")
        if found is not None and int(value) != int(found):
            raise SipParseError("two Content-Length values on a stream")
        found = value
    if found is None:
        raise SipParseError("a message on a stream needs Content-Length")
    length = int(found)
    if length > MAX_MESSAGE_BYTES:
        raise SipParseError(f"Content-Length out of range: {length}")
    return length
