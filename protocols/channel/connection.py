"""The data channel over asyncio: TCP, pinned TLS 1.3, client authentication, then typed frames.

The callee `listen()`s for exactly one peer, the caller `connect()`s; both get a `Channel`.
All byte handling is in framing.py and handshake.py; this module moves bytes and keeps time.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
import ssl
import typing
from dataclasses import dataclass
from types import TracebackType

from protocols.channel.errors import ChannelError, ErrorCode, decode_error, encode_error
from protocols.channel.framing import (
    DEFAULT_MAX_FRAME_SIZE,
    Frame,
    FrameDecoder,
    FrameType,
    encode_frame,
    encode_header,
)
from protocols.channel.handshake import (
    Challenge,
    Hello,
    check_server_certificate,
    sign_hello,
    verify_hello,
)
from protocols.channel.identity import DeviceIdentity, parse_fingerprint
from protocols.channel.tls import client_context, server_context

log = logging.getLogger(__name__)

# Frames only the channel itself may send; `Channel.send` refuses them.
_CONTROL = frozenset(
    {FrameType.CHALLENGE, FrameType.HELLO, FrameType.ACCEPT, FrameType.ERROR, FrameType.CLOSE}
)


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each phase of a channel."""

    connect: float = 10.0  # TCP connection to the peer
    handshake: float = 10.0  # TLS handshake plus the authentication frames
    idle: float = 60.0  # no frame from the peer, or the peer not reading ours
    close: float = 5.0  # the peer answering our orderly TLS close


class _FrameProtocol(asyncio.BufferedProtocol):
    """Lets TLS decrypt straight into the FrameDecoder's buffers and queues the frames; tracks
    both directions' flow control and the connection's end."""

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
        if not frames:
            return
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

    def fail(self, error: ChannelError) -> None:
        """End the connection for a reason found here, telling the peer when we still can."""
        self._set_error(error)
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if not error.remote and error.code is not ErrorCode.GONE:
            transport.write(encode_frame(FrameType.ERROR, encode_error(error.code, error.reason)))
        transport.close()

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


class Channel:
    """An authenticated channel to one peer device: send and receive typed frames.

    Every failure surfaces as a ChannelError, and the peer hears the same reason in an ERROR frame.
    """

    def __init__(
        self,
        protocol: _FrameProtocol,
        peer_fingerprint: str,
        timeouts: Timeouts,
        max_frame_size: int,
    ):
        self._protocol = protocol
        self._timeouts = timeouts
        self._max_frame_size = max_frame_size
        self._closed = False
        self.peer_fingerprint = peer_fingerprint

    @property
    def cipher(self) -> str:
        """The negotiated TLS cipher suite, e.g. "TLS_AES_256_GCM_SHA384"."""
        assert self._protocol.transport is not None
        cipher = self._protocol.transport.get_extra_info("cipher")
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
            self._protocol.write_frame(kind, payload)
            await self._protocol.drain(self._timeouts.idle)
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
            frame = await self._protocol.next_frame(self._timeouts.idle)
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
            protocol = self._protocol
            if (
                protocol.error is None
                and protocol.transport
                and not protocol.transport.is_closing()
            ):
                if reason is None:
                    protocol.write_frame(FrameType.CLOSE)
                else:
                    protocol.write_frame(FrameType.ERROR, encode_error(code, reason))
                protocol.transport.close()
            elif protocol.transport is not None:
                protocol.transport.close()
        try:
            async with asyncio.timeout(self._timeouts.close):
                await asyncio.shield(self._protocol.lost)
        except TimeoutError:
            self._protocol.abort()

    def abort(self) -> None:
        """Drop the connection at once, telling the peer nothing (what a crash looks like to it)."""
        self._closed = True
        self._protocol.abort()

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
        if self._protocol.error is not None:
            raise self._explained(self._protocol.error)
        if self._closed:
            raise ChannelError("the channel is closed", ErrorCode.CLOSED)

    def _explained(self, error: ChannelError) -> ChannelError:
        # A sender that only sends learns of the end as a dropped connection; the peer's own
        # reason is usually already waiting in the queue, and says more.
        return self._protocol.peer_report() or error

    def _end(self, error: ChannelError) -> None:
        self._protocol.fail(error)


class Listener:
    """Waits for the one peer a session descriptor announced; see `listen()`."""

    def __init__(
        self,
        identity: DeviceIdentity,
        peer_fingerprint: str,
        token: str,
        timeouts: Timeouts,
        max_frame_size: int,
    ):
        self._identity = identity
        self._peer_fingerprint = peer_fingerprint
        self._token = token
        self._timeouts = timeouts
        self._max_frame_size = max_frame_size
        self._context = server_context(identity)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[Channel] | None = None
        self._result: asyncio.Future[Channel] = asyncio.get_running_loop().create_future()
        self.host = ""
        self.port = 0

    def _start(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=1)
        self._socket.setblocking(False)
        self.host, self.port = self._socket.getsockname()[:2]
        self._task = asyncio.get_running_loop().create_task(self._serve(self._socket))
        self._task.add_done_callback(self._settle)

    async def _serve(self, listening: socket.socket) -> Channel:
        loop = asyncio.get_running_loop()
        connection, _ = await loop.sock_accept(listening)
        # The token is for one connection: stop listening, so anything after it is refused.
        listening.close()
        # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and an accepted
        # socket reports 0: without it small frames wait for delayed acknowledgements.
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        protocol = _FrameProtocol(self._max_frame_size)
        try:
            async with asyncio.timeout(self._timeouts.handshake):
                try:
                    # TLS from the first byte; a failed handshake raises here, where we can name it.
                    await loop.connect_accepted_socket(
                        lambda: protocol,
                        connection,
                        ssl=self._context,
                        ssl_handshake_timeout=_outer(self._timeouts.handshake),
                        ssl_shutdown_timeout=self._timeouts.close,
                    )
                except OSError as exc:
                    raise _handshake_failure(exc) from exc
                challenge = Challenge.new()
                protocol.write_frame(FrameType.CHALLENGE, challenge.encode())
                frame = await _expect(protocol, FrameType.HELLO)
                verify_hello(
                    Hello.decode(frame.payload),
                    challenge,
                    self._identity.fingerprint,
                    self._peer_fingerprint,
                    self._token,
                )
                protocol.write_frame(FrameType.ACCEPT)
        except TimeoutError:
            error = _handshake_timeout(self._timeouts.handshake)
            _give_up(protocol, connection, error)
            raise error from None
        except ChannelError as error:
            _give_up(protocol, connection, error)
            raise
        except Exception as exc:
            raise _internal_failure(protocol, connection, exc) from exc
        except asyncio.CancelledError:
            _give_up(protocol, connection, ChannelError("stopped listening", ErrorCode.ABORTED))
            raise
        return Channel(protocol, self._peer_fingerprint, self._timeouts, self._max_frame_size)

    def _settle(self, task: asyncio.Task[Channel]) -> None:
        if self._result.done():
            return
        if task.cancelled():
            self._result.set_exception(ChannelError("stopped listening", ErrorCode.ABORTED))
        elif (failure := task.exception()) is not None:
            if not isinstance(failure, ChannelError):
                failure = ChannelError(
                    f"listening on port {self.port} failed: {failure}", ErrorCode.CONNECT
                )
            log.warning("data channel refused on port %s: %s", self.port, failure)
            self._result.set_exception(failure)
        else:
            self._result.set_result(task.result())

    async def accept(self, timeout: float | None = None) -> Channel:
        """The authenticated channel to the peer, or the ChannelError that ended its attempt.

        The first connection decides: the token is single-use, so a failed attempt ends the session.
        """
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self._result)
        except TimeoutError:
            raise ChannelError(
                f"no peer connected within {timeout:g} s", ErrorCode.TIMEOUT
            ) from None

    async def close(self) -> None:
        """Stop listening; a channel already accepted stays open."""
        # The waiting accept goes first: it must let go of the socket before the socket closes.
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, ChannelError):
                pass
        if self._socket is not None:
            self._socket.close()
        if not self._result.done():
            self._result.set_exception(ChannelError("stopped listening", ErrorCode.ABORTED))
        # Retrieve it so an unused failure does not end up as "exception never retrieved".
        if not self._result.cancelled():
            self._result.exception()

    async def __aenter__(self) -> Listener:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def listen(
    identity: DeviceIdentity,
    expected_peer_fingerprint: str,
    token: str,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    timeouts: Timeouts = Timeouts(),
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> Listener:
    """Listen for the one peer with this certificate fingerprint and token (port 0: the OS picks;
    read it from `Listener.port`)."""
    _check_pin_argument(expected_peer_fingerprint)
    listener = Listener(identity, expected_peer_fingerprint, token, timeouts, max_frame_size)
    try:
        listener._start(host, port)
    except OSError as exc:
        raise ChannelError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", ErrorCode.CONNECT
        ) from exc
    return listener


async def connect(
    identity: DeviceIdentity,
    host: str,
    port: int,
    expected_peer_fingerprint: str,
    token: str,
    *,
    timeouts: Timeouts = Timeouts(),
    max_frame_size: int = DEFAULT_MAX_FRAME_SIZE,
) -> Channel:
    """Connect to a listening peer, check its certificate against the pin, and authenticate."""
    _check_pin_argument(expected_peer_fingerprint)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeouts.connect):
            connection = await _open_socket(host, port)
    except TimeoutError:
        raise ChannelError(
            f"could not connect to {host}:{port} within {timeouts.connect:g} s", ErrorCode.TIMEOUT
        ) from None
    except OSError as exc:
        raise ChannelError(
            f"could not connect to {host}:{port}: {exc.strerror or exc}", ErrorCode.CONNECT
        ) from exc
    protocol = _FrameProtocol(max_frame_size)
    try:
        async with asyncio.timeout(timeouts.handshake):
            try:
                await loop.create_connection(
                    lambda: protocol,
                    sock=connection,
                    ssl=client_context(),
                    server_hostname="",  # no name to check: the certificate is pinned instead
                    ssl_handshake_timeout=_outer(timeouts.handshake),
                    ssl_shutdown_timeout=timeouts.close,
                )
            except OSError as exc:
                raise _handshake_failure(exc) from exc
            assert protocol.transport is not None
            ssl_object = protocol.transport.get_extra_info("ssl_object")
            check_server_certificate(
                ssl_object.getpeercert(binary_form=True), expected_peer_fingerprint
            )
            frame = await _expect(protocol, FrameType.CHALLENGE)
            hello = sign_hello(
                identity.private_key(),
                identity.certificate_der,
                Challenge.decode(frame.payload),
                expected_peer_fingerprint,
                token,
            )
            protocol.write_frame(FrameType.HELLO, hello.encode())
            await _expect(protocol, FrameType.ACCEPT)
    except TimeoutError:
        error = _handshake_timeout(timeouts.handshake)
        _give_up(protocol, connection, error)
        raise error from None
    except ChannelError as error:
        _give_up(protocol, connection, error)
        log.warning("data channel to %s:%s failed: %s", host, port, error)
        raise
    except Exception as exc:
        raise _internal_failure(protocol, connection, exc) from exc
    except asyncio.CancelledError:
        _give_up(
            protocol,
            connection,
            ChannelError("the connection attempt was cancelled", ErrorCode.ABORTED),
        )
        raise
    return Channel(protocol, expected_peer_fingerprint, timeouts, max_frame_size)


async def _expect(protocol: _FrameProtocol, kind: FrameType) -> Frame:
    frame = await protocol.next_frame(None)  # the caller's handshake timeout bounds the wait
    if frame.kind is kind:
        return frame
    if frame.kind is FrameType.ERROR:
        raise decode_error(frame.payload)
    raise ChannelError(f"expected a {kind.name} frame, got {frame.kind.name}", ErrorCode.PROTOCOL)


def _handshake_failure(exc: BaseException) -> ChannelError:
    if isinstance(exc, ssl.SSLError):
        return ChannelError(f"TLS handshake failed: {exc.reason or exc}", ErrorCode.PROTOCOL)
    return ChannelError(f"the peer vanished during the TLS handshake: {exc}", ErrorCode.GONE)


async def _open_socket(host: str, port: int) -> socket.socket:
    """A connected TCP socket to the first address of `host` that answers."""
    loop = asyncio.get_running_loop()
    failure: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in await loop.getaddrinfo(
        host, port, type=socket.SOCK_STREAM
    ):
        connection = socket.socket(family, kind, proto)
        connection.setblocking(False)
        try:
            await loop.sock_connect(connection, address)
            return connection
        except OSError as exc:
            connection.close()
            failure = exc
        except BaseException:
            connection.close()
            raise
    raise failure


def _give_up(protocol: _FrameProtocol, connection: socket.socket, error: ChannelError) -> None:
    """End a failed handshake: tell the peer if TLS is up, and free the socket in any case."""
    protocol.fail(error)
    if protocol.transport is None:
        connection.close()


def _internal_failure(
    protocol: _FrameProtocol, connection: socket.socket, exc: Exception
) -> ChannelError:
    """A bug of ours must still end the attempt cleanly on both sides, never leave it hanging."""
    log.exception("data channel handshake failed unexpectedly")
    error = ChannelError(f"internal error during the channel handshake: {exc!r}", ErrorCode.ABORTED)
    _give_up(protocol, connection, error)
    return error


def _handshake_timeout(seconds: float) -> ChannelError:
    return ChannelError(
        f"the channel handshake did not finish within {seconds:g} s", ErrorCode.TIMEOUT
    )


def _outer(seconds: float) -> float:
    """asyncio's own TLS handshake limit, kept just beyond ours so that ours fires and names the
    failure (asyncio's reads like a dropped connection)."""
    return seconds + 1.0


def _check_pin_argument(fingerprint: str) -> None:
    try:
        parse_fingerprint(fingerprint)
    except ValueError as exc:
        raise ChannelError(str(exc), ErrorCode.PINNING) from None
