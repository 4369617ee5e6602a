"""The byte stream under a channel: an asyncio BufferedProtocol that lets TLS decrypt straight
into the FrameDecoder's buffers and queues the frames, with flow control both ways.

It knows frames, not their meaning: the handshake (handshake.py) and the Channel read from it.
"""

from __future__ import annotations

import asyncio
import collections
import typing

from protocols.channel.errors import ChannelError, ErrorCode, decode_error, encode_error
from protocols.channel.framing import Frame, FrameDecoder, FrameType, encode_frame, encode_header


class FrameStream(asyncio.BufferedProtocol):
    """Frames in from TLS and out to it, for one connection; tracks both directions' flow
    control and the connection's end (`error`, `lost`)."""

    def __init__(self, max_frame_size: int):
        loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.error: ChannelError | None = None
        self._decoder = FrameDecoder(max_frame_size)
        self._frames: collections.deque[Frame] = collections.deque()
        self._queued_bytes = 0
        # Stop reading from the socket when the application falls this far behind.
        self._read_high_water = max(4 * 1024 * 1024, 2 * max_frame_size)
        self._reading_paused = False
        self._frame_waiter: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None
        self._discarding = False  # lingering after our ERROR frame: what comes in is dropped

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The TLS transport, once its handshake is done. (A cast, not an isinstance check:
        # uvloop's transports do not derive from asyncio.Transport.)
        self.transport = typing.cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self.error is not None:
            return
        frames = self._decoder.buffer_updated(nbytes)
        if self._decoder.error is not None:
            self.fail(self._decoder.error)
        if not frames or self._discarding:
            return
        report = next((frame for frame in frames if frame.kind is FrameType.ERROR), None)
        if report is not None:
            # The peer gave up: a sender that only sends must stop at once and read why, before
            # the peer's close resets the connection under the reason.
            self._set_error(decode_error(report.payload))
        self._frames.extend(frames)
        self._queued_bytes += sum(len(frame.payload) for frame in frames)
        if self._queued_bytes > self._read_high_water and not self._reading_paused:
            assert self.transport is not None
            self.transport.pause_reading()
            self._reading_paused = True
        self._wake(self._frame_waiter)

    def eof_received(self) -> bool:
        if self._decoder.in_frame:
            self._set_error(
                ChannelError("the peer vanished in the middle of a frame", ErrorCode.GONE)
            )
        else:
            self._set_error(
                ChannelError(
                    "the peer vanished: connection closed without a goodbye", ErrorCode.GONE
                )
            )
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "the peer vanished: connection closed"
        self._set_error(ChannelError(reason, ErrorCode.GONE))
        self._wake(self._drain_waiter)
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._wake(self._drain_waiter)

    # used by the channel

    def write_frame(self, kind: FrameType, payload: bytes | bytearray | memoryview = b"") -> None:
        # Into a closing connection, nothing: what the peer sent before it went (an ERROR frame,
        # say) is still queued, and explains the end better than a failed write would.
        if self.transport is None or self.transport.is_closing():
            return
        if payload:
            # Header and payload go to TLS separately: no copy of the payload to join them.
            self.transport.writelines((encode_header(kind, len(payload)), payload))
        else:
            self.transport.write(encode_header(kind, 0))

    async def drain(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error
        if not self._writing_paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiter = waiter
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            raise ChannelError(
                f"the peer read nothing for {timeout:g} s", ErrorCode.TIMEOUT
            ) from None
        finally:
            self._drain_waiter = None
        if self.error is not None:
            raise self.error

    async def next_frame(self, timeout: float | None) -> Frame:
        """The next frame; frames that arrived before a failure are still handed out first."""
        while not self._frames:
            if self.error is not None:
                raise self.error
            waiter = asyncio.get_running_loop().create_future()
            self._frame_waiter = waiter
            try:
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                raise ChannelError(
                    f"no frame from the peer for {timeout:g} s", ErrorCode.TIMEOUT
                ) from None
            finally:
                self._frame_waiter = None
        frame = self._frames.popleft()
        self._queued_bytes -= len(frame.payload)
        if self._reading_paused and self._queued_bytes <= self._read_high_water // 2:
            assert self.transport is not None
            self._reading_paused = False
            self.transport.resume_reading()
        return frame

    async def linger(self, timeout: float) -> None:
        """After our ERROR frame: read and drop what the peer still sends until it closes, at
        most `timeout`. Closing with its data unread would reset the connection, and a reset
        can destroy our ERROR frame before the peer reads it."""
        self._discarding = True
        self._frames.clear()
        self._queued_bytes = 0
        if self._reading_paused and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self.lost)
        except TimeoutError:
            pass

    def fail(self, error: ChannelError) -> None:
        """End the connection for a reason found here, telling the peer when we still can."""
        transport = self.transport
        if (
            transport is not None
            and not transport.is_closing()
            and not error.remote
            and error.code is not ErrorCode.GONE
        ):
            transport.write(encode_frame(FrameType.ERROR, encode_error(error.code, error.reason)))
        self.end(error)

    def end(self, error: ChannelError) -> None:
        """End the connection for this reason without a word to the peer: it has been told
        already (the handshake machine sends its own ERROR frame), or it told us."""
        self._set_error(error)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def peer_report(self) -> ChannelError | None:
        """The reason in an ERROR frame the peer sent and nobody has read yet, if there is one."""
        for frame in self._frames:
            if frame.kind is FrameType.ERROR:
                return decode_error(frame.payload)
        return None

    def _set_error(self, error: ChannelError) -> None:
        if self.error is None:
            self.error = error
        self._wake(self._frame_waiter)

    @staticmethod
    def _wake(waiter: asyncio.Future[None] | None) -> None:
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
