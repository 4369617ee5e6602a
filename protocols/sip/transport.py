"""SIP over asyncio: UDP and TCP on the same port, IPv4 or IPv6.

Only moves bytes. Every message received is handed to one callback with the Endpoint it came
from; `send` reaches an Endpoint, reusing the TCP connection a device opened to us (RFC 3261
18.2.2), or opening one when there is none.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable

from .endpoint import Endpoint
from .message import SipParseError
from .stream import StreamFramer

log = logging.getLogger(__name__)

Receiver = Callable[[bytes, Endpoint], None]
# Offered data for a TCP endpoint this process holds no connection to: True when it took it
# (another worker of the server holds that connection and writes it there).
Carrier = Callable[[bytes, Endpoint], bool]


# Sources whose Endpoint is kept for their next datagram; past this many, the table starts over.
SOURCES_REMEMBERED = 4096


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, receive: Receiver) -> None:
        self._receive = receive
        # One Endpoint per source address, not one per datagram: a device, or a balancer in
        # front of many, sends from the same address again and again.
        self._sources: dict[tuple, Endpoint] = {}

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        source = self._sources.get(addr)
        if source is None:
            if len(self._sources) >= SOURCES_REMEMBERED:
                self._sources.clear()
            source = self._sources[addr] = Endpoint("udp", addr[0], addr[1])
        self._receive(data, source)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for a gone device are routine on UDP.
        log.debug("UDP error: %s", exc)


class _Stream(asyncio.Protocol):
    def __init__(self, transport_set: SipTransport, outbound: Endpoint | None = None) -> None:
        self._owner = transport_set
        self._framer = StreamFramer()
        self._transport: asyncio.Transport | None = None
        self.peer: Endpoint | None = outbound

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = transport  # type: ignore[assignment]
        if self.peer is None:
            host, port = transport.get_extra_info("peername")[:2]
            self.peer = Endpoint("tcp", host, port)
        self._owner._streams[self.peer] = self

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        try:
            messages = self._framer.feed(data)
        except SipParseError as exc:
            log.warning("closing TCP connection from %s: %s", self.peer, exc)
            self.close()
            return
        for message in messages:
            self._owner._receive(message, self.peer)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self._owner._streams.get(self.peer) is self:
            del self._owner._streams[self.peer]


class SipTransport:
    """The UDP socket and TCP listener of one host:port."""

    def __init__(self, receive: Receiver) -> None:
        self._receive = receive
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._streams: dict[Endpoint, _Stream] = {}
        self._connecting: dict[Endpoint, list[bytes]] = {}
        self.host = ""
        self.port = 0
        self.carry: Carrier | None = None

    async def adopt(self, udp_sock: socket.socket, tcp_sock: socket.socket) -> None:
        """Serve sockets bound (and shared with other workers) by someone else: see
        `bind_shared`."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Stream(self), sock=tcp_sock)
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self._receive), sock=udp_sock
        )
        self.host, self.port = udp_sock.getsockname()[:2]

    def holds(self, destination: Endpoint) -> bool:
        """Whether a TCP connection to the endpoint is open here."""
        return destination in self._streams

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        """Bind UDP and TCP on host:port; port 0 picks one free for both."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(20):
            udp_sock = socket.socket(family, socket.SOCK_DGRAM)
            if reuse_port:
                udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            # A deep receive buffer rides out bursts instead of dropping them.
            udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
            udp_sock.bind((host, port))
            chosen = udp_sock.getsockname()[1]
            try:
                self._server = await loop.create_server(
                    lambda: _Stream(self),
                    host,
                    chosen,
                    family=family,
                    reuse_address=True,
                    reuse_port=reuse_port or None,
                )
            except OSError:
                udp_sock.close()
                if port:
                    raise
                continue
            break
        else:
            raise OSError(f"no port free for both UDP and TCP on {host}")
        self._udp, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self._receive), sock=udp_sock
        )
        self.host, self.port = host, chosen

    def send(self, data: bytes, destination: Endpoint) -> None:
        if (destination.reliable and self.carry is not None
                and destination not in self._streams and self.carry(data, destination)):
            return
        self.send_here(data, destination)

    def send_here(self, data: bytes, destination: Endpoint) -> None:
        """Send from this process, over a new connection when none is open here."""
        if destination.transport == "udp":
            if self._udp is not None:
                self._udp.sendto(data, (destination.host, destination.port))
            return
        stream = self._streams.get(destination)
        if stream is not None:
            stream.write(data)
            return
        pending = self._connecting.get(destination)
        if pending is not None:
            pending.append(data)
            return
        self._connecting[destination] = [data]
        asyncio.get_running_loop().create_task(self._connect(destination))

    async def _connect(self, destination: Endpoint) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, stream = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Stream(self, destination), destination.host, destination.port
                ),
                timeout=5.0,
            )
        except (OSError, asyncio.TimeoutError) as exc:
            log.info("cannot open TCP to %s: %s", destination, exc)
            self._connecting.pop(destination, None)
            return
        for data in self._connecting.pop(destination, []):
            stream.write(data)

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()
        for stream in list(self._streams.values()):
            stream.close()
        if self._server is not None:
            await self._server.wait_closed()


def bind_shared(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP socket and a listening TCP socket on one host:port (port 0 picks one free for
    both), bound once to be read by several worker processes."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(20):
        udp_sock = socket.socket(family, socket.SOCK_DGRAM)
        udp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        udp_sock.bind((host, port))
        chosen = udp_sock.getsockname()[1]
        tcp_sock = socket.socket(family, socket.SOCK_STREAM)
        tcp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp_sock.bind((host, chosen))
        except OSError:
            udp_sock.close()
            tcp_sock.close()
            if port:
                raise
            continue
        tcp_sock.listen(1024)
        for sock in (udp_sock, tcp_sock):
            sock.setblocking(False)
            sock.set_inheritable(True)
        return udp_sock, tcp_sock
    raise OSError(f"no port free for both UDP and TCP on {host}")
