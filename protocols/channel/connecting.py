"""Connecting to the peer that listens for us: `connect()`, the TCP connection, then the
handshake as the TLS client (establishing.py).
"""

from __future__ import annotations

import asyncio
import logging
import socket

from protocols.channel.channel import Channel
from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.establishing import check_pin_argument, establish_channel
from protocols.channel.framing import DEFAULT_MAX_FRAME_SIZE
from protocols.channel.handshake import Handshake, Role
from protocols.channel.identity import DeviceIdentity
from protocols.channel.timeouts import Timeouts
from protocols.channel.tls import client_context

log = logging.getLogger(__name__)


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
    check_pin_argument(expected_peer_fingerprint)
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
    try:
        return await establish_channel(
            connection,
            Role.CONNECTOR,
            client_context(),
            lambda: Handshake.connector(
                identity.private_key(),
                identity.certificate_der,
                expected_peer_fingerprint,
                token,
            ),
            expected_peer_fingerprint,
            timeouts,
            max_frame_size,
            cancelled_reason="the connection attempt was cancelled",
        )
    except ChannelError as error:
        log.warning("data channel to %s:%s failed: %s", host, port, error)
        raise


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
