"""The Channel: an authenticated connection to one peer device that sends and receives typed
frames, reports every failure as a ChannelError, and ends in order or with a reason.

`listen()` (listening.py) and `connect()` (connecting.py) hand one out once the handshake is done.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from protocols.channel.errors import ChannelError, ErrorCode, decode_error, encode_error
from protocols.channel.frame_stream import FrameStream
from protocols.channel.framing import Frame, FrameType
from protocols.channel.timeouts import Timeouts

# Frames only the channel itself may send; `Channel.send` refuses them.
_CONTROL = frozenset(
    {FrameType.CHALLENGE, FrameType.HELLO, FrameType.ACCEPT, FrameType.ERROR, FrameType.CLOSE}
)


class Channel:
    """An authenticated channel to one peer device: send and receive typed frames.

    Every failure surfaces as a ChannelError, and the peer hears the same reason in an ERROR frame.
    """

    def __init__(
        self,
        stream: FrameStream,
        peer_fingerprint: str,
        timeouts: Timeouts,
        max_frame_size: int,
    ):
        self._stream = stream
        self._timeouts = timeouts
        self._max_frame_size = max_frame_size
        self._closed = False
        self.peer_fingerprint = peer_fingerprint

    @property
    def cipher(self) -> str:
        """The negotiated TLS cipher suite, e.g. "TLS_AES_256_GCM_SHA384"."""
        assert self._stream.transport is not None
        cipher = self._stream.transport.get_extra_info("cipher")
        return cipher[0] if cipher else "none"

    @property
    def max_frame_size(self) -> int:
        return self._max_frame_size

    async def send(self, kind: FrameType, payload: bytes | bytearray | memoryview = b"") -> None:
        """Send one frame; waits while the peer is not keeping up (at most the idle timeout)."""
        if kind in _CONTROL:
            raise ValueError(f"{kind.name} frames are the channel's own; use close() to end it")
        if len(payload) > self._max_frame_size:
            raise ValueError(
                f"a {kind.name} payload of {len(payload)} bytes exceeds the frame cap of "
                f"{self._max_frame_size} bytes"
            )
        self._check_open()
        try:
            self._stream.write_frame(kind, payload)
            await self._stream.drain(self._timeouts.idle)
        except ChannelError as exc:
            error = self._explained(exc)
            self._end(error)
            raise error from None

    async def receive(self) -> Frame:
        """The next frame from the peer.

        Raises ChannelError when the peer reports an error (`remote` set), closes the channel
        (code CLOSED), vanishes, sends garbage, or stays silent for the idle timeout.
        """
        if self._closed:
            raise ChannelError("the channel is closed", ErrorCode.CLOSED)
        try:
            frame = await self._stream.next_frame(self._timeouts.idle)
        except ChannelError as exc:
            self._end(exc)
            raise
        if frame.kind in _CONTROL:
            if frame.kind is FrameType.ERROR:
                error = decode_error(frame.payload)
            elif frame.kind is FrameType.CLOSE:
                error = ChannelError("the peer closed the channel", ErrorCode.CLOSED)
            else:
                error = ChannelError(f"unexpected {frame.kind.name} frame after the handshake")
            self._end(error)
            raise error
        return frame

    async def close(self, reason: str | None = None, code: ErrorCode = ErrorCode.ABORTED) -> None:
        """End the channel: in order without a reason, else with an ERROR frame carrying it.

        Waits for the peer to acknowledge the TLS close, at most the close timeout.
        """
        if not self._closed:
            self._closed = True
            stream = self._stream
            if (
                stream.error is None
                and stream.transport
                and not stream.transport.is_closing()
            ):
                if reason is None:
                    stream.write_frame(FrameType.CLOSE)
                else:
                    stream.write_frame(FrameType.ERROR, encode_error(code, reason))
                    await stream.linger(self._timeouts.close)
                if not stream.transport.is_closing():
                    stream.transport.close()
            elif stream.transport is not None:
                stream.transport.close()
        try:
            async with asyncio.timeout(self._timeouts.close):
                await asyncio.shield(self._stream.lost)
        except TimeoutError:
            self._stream.abort()

    def abort(self) -> None:
        """Drop the connection at once, telling the peer nothing (what a crash looks like to it)."""
        self._closed = True
        self._stream.abort()

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
        elif isinstance(exc, ChannelError):
            # Sent only if nobody has told the peer yet (close() says nothing on a failed channel).
            await self.close(exc.reason, exc.code)
        else:
            await self.close(f"the peer failed: {exc.__class__.__name__}")

    def _check_open(self) -> None:
        if self._stream.error is not None:
            raise self._explained(self._stream.error)
        if self._closed:
            raise ChannelError("the channel is closed", ErrorCode.CLOSED)

    def _explained(self, error: ChannelError) -> ChannelError:
        # A sender that only sends learns of the end as a dropped connection; the peer's own
        # reason is usually already waiting in the queue, and says more.
        return self._stream.peer_report() or error

    def _end(self, error: ChannelError) -> None:
        self._stream.fail(error)
