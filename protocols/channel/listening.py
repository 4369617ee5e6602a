"""Listening for the one peer a session descriptor announced: `listen()` and its `Listener`.

A listener accepts a single connection (the token is single-use) and hands it to the handshake
as the TLS server (establishing.py).
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
from protocols.channel.tls import server_context

log = logging.getLogger(__name__)


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
        return await establish_channel(
            connection,
            Role.LISTENER,
            self._context,
            lambda: Handshake.listener(
                self._identity.fingerprint, self._peer_fingerprint, self._token
            ),
            self._peer_fingerprint,
            self._timeouts,
            self._max_frame_size,
            cancelled_reason="stopped listening",
        )

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
    check_pin_argument(expected_peer_fingerprint)
    listener = Listener(identity, expected_peer_fingerprint, token, timeouts, max_frame_size)
    try:
        listener._start(host, port)
    except OSError as exc:
        raise ChannelError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}", ErrorCode.CONNECT
        ) from exc
    return listener
