"""From a connected TCP socket to an authenticated Channel, for either role: TLS from the first
byte, then the handshake machine (handshake.py) driven over the frame stream, all within the
handshake timeout. Listening and connecting differ only in how they come by the socket.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from protocols.channel.channel import Channel
from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.frame_stream import FrameStream
from protocols.channel.handshake import Handshake, HandshakeFailed, PeerVerified, Role
from protocols.channel.identity import parse_fingerprint
from protocols.channel.timeouts import Timeouts

log = logging.getLogger(__name__)


async def establish_channel(
    connection: socket.socket,
    role: Role,
    context: ssl.SSLContext,
    new_handshake: Callable[[], Handshake],
    peer_fingerprint: str,
    timeouts: Timeouts,
    max_frame_size: int,
    *,
    cancelled_reason: str,
) -> Channel:
    """The channel over `connection` once TLS and the handshake succeed; a ChannelError if not,
    with the peer told why when the connection still stands, and the socket freed either way.

    `new_handshake` is called once TLS is up (it may read the device key).
    """
    stream = FrameStream(max_frame_size)
    try:
        async with asyncio.timeout(timeouts.handshake):
            try:
                # TLS from the first byte; a failed handshake raises here, where we can name it.
                await _start_tls(stream, connection, role, context, timeouts)
            except OSError as exc:
                raise _tls_failure(exc) from exc
            await _run_handshake(stream, new_handshake())
    except TimeoutError:
        error = ChannelError(
            f"the channel handshake did not finish within {timeouts.handshake:g} s",
            ErrorCode.TIMEOUT,
        )
        _give_up(stream, connection, error)
        raise error from None
    except ChannelError as error:
        _give_up(stream, connection, error)
        raise
    except Exception as exc:
        raise _internal_failure(stream, connection, exc) from exc
    except asyncio.CancelledError:
        _give_up(stream, connection, ChannelError(cancelled_reason, ErrorCode.ABORTED))
        raise
    return Channel(stream, peer_fingerprint, timeouts, max_frame_size)


def check_pin_argument(fingerprint: str) -> None:
    """Refuse a pin that is not a fingerprint before any connection is made."""
    try:
        parse_fingerprint(fingerprint)
    except ValueError as exc:
        raise ChannelError(str(exc), ErrorCode.PINNING) from None


async def _start_tls(
    stream: FrameStream,
    connection: socket.socket,
    role: Role,
    context: ssl.SSLContext,
    timeouts: Timeouts,
) -> None:
    loop = asyncio.get_running_loop()
    handshake_limit = _outer(timeouts.handshake)
    if role is Role.LISTENER:
        await loop.connect_accepted_socket(
            lambda: stream,
            connection,
            ssl=context,
            ssl_handshake_timeout=handshake_limit,
            ssl_shutdown_timeout=timeouts.close,
        )
    else:
        await loop.create_connection(
            lambda: stream,
            sock=connection,
            ssl=context,
            server_hostname="",  # no name to check: the certificate is pinned instead
            ssl_handshake_timeout=handshake_limit,
            ssl_shutdown_timeout=timeouts.close,
        )


async def _run_handshake(stream: FrameStream, handshake: Handshake) -> PeerVerified:
    """Move frames between the stream and the machine until it has an outcome."""
    assert stream.transport is not None
    ssl_object = stream.transport.get_extra_info("ssl_object")
    outgoing = handshake.connection_made(ssl_object.getpeercert(binary_form=True))
    while True:
        for frame in outgoing:
            stream.write_frame(frame.kind, frame.payload)
        if isinstance(handshake.outcome, PeerVerified):
            return handshake.outcome
        if isinstance(handshake.outcome, HandshakeFailed):
            # The machine's own ERROR frame, if any, has just been written: close without another.
            stream.end(handshake.outcome.error)
            raise handshake.outcome.error
        # The caller's handshake timeout bounds the wait.
        outgoing = handshake.receive_frame(await stream.next_frame(None))


def _tls_failure(exc: BaseException) -> ChannelError:
    if isinstance(exc, ssl.SSLError):
        return ChannelError(f"TLS handshake failed: {exc.reason or exc}", ErrorCode.PROTOCOL)
    return ChannelError(f"the peer vanished during the TLS handshake: {exc}", ErrorCode.GONE)


def _give_up(stream: FrameStream, connection: socket.socket, error: ChannelError) -> None:
    """End a failed handshake: tell the peer if TLS is up, and free the socket in any case."""
    stream.fail(error)
    if stream.transport is None:
        connection.close()


def _internal_failure(
    stream: FrameStream, connection: socket.socket, exc: Exception
) -> ChannelError:
    """A bug of ours must still end the attempt cleanly on both sides, never leave it hanging."""
    log.exception("data channel handshake failed unexpectedly")
    error = ChannelError(f"internal error during the channel handshake: {exc!r}", ErrorCode.ABORTED)
    _give_up(stream, connection, error)
    return error


def _outer(seconds: float) -> float:
    """asyncio's own TLS handshake limit, kept just beyond ours so that ours fires and names the
    failure (asyncio's reads like a dropped connection)."""
    return seconds + 1.0
