"""Between the workers of one machine, point to point: a message one worker's socket read but
another owns is handed to the owner, and data for a TCP flow another worker holds is carried to
it. One Unix datagram per message, straight from worker to worker (the supervisor relays state
events, not traffic)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from protocols.sip.endpoint import Endpoint

log = logging.getLogger(__name__)


class HandoffKind(Enum):
    MESSAGE = b"M"  # a SIP message received from `endpoint`, for its owner to handle
    CARRY = b"C"  # bytes to write on the TCP connection to `endpoint`, held by the receiver


@dataclass(frozen=True, slots=True)
class Handoff:
    kind: HandoffKind
    origin: int  # the worker that sends it
    endpoint: Endpoint
    data: bytes


_HEAD = struct.Struct(">cHcHB")
_TRANSPORTS = {"udp": b"u", "tcp": b"t", "tls": b"s"}
_NAMES = {v: k for k, v in _TRANSPORTS.items()}


def pack(handoff: Handoff) -> bytes:
    host = handoff.endpoint.host.encode()
    head = _HEAD.pack(handoff.kind.value, handoff.origin,
                      _TRANSPORTS[handoff.endpoint.transport], handoff.endpoint.port, len(host))
    return head + host + handoff.data


def unpack(datagram: bytes) -> Handoff:
    """A handoff from its datagram; ValueError when it is not one."""
    try:
        kind, origin, transport, port, size = _HEAD.unpack_from(datagram)
        start = _HEAD.size
        host = datagram[start:start + size].decode()
        endpoint = Endpoint(_NAMES[transport], host, port)
        return Handoff(HandoffKind(kind), origin, endpoint, datagram[start + size:])
    except (struct.error, KeyError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a handoff: {exc}") from None


def socket_path(run_dir: Path, index: int) -> Path:
    return run_dir / f"w{index}.sock"


class HandoffSocket:
    """This worker's Unix datagram socket: receives handoffs, sends them to other workers."""

    def __init__(self, run_dir: Path, index: int, receive: Callable[[Handoff], None]) -> None:
        self.run_dir = run_dir
        self.index = index
        self._receive = receive
        self._sock: socket.socket | None = None
        self.dropped = 0  # handoffs a full peer socket refused

    def start(self) -> None:
        path = socket_path(self.run_dir, self.index)
        path.unlink(missing_ok=True)  # left by the worker this one replaces
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind(os.fspath(path))
        sock.setblocking(False)
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._readable)

    def send(self, to: int, handoff: Handoff) -> None:
        assert self._sock is not None
        try:
            self._sock.sendto(pack(handoff), os.fspath(socket_path(self.run_dir, to)))
        except (BlockingIOError, FileNotFoundError, ConnectionRefusedError) as exc:
            # The owner is restarting or overrun: the sender retransmits, as after a UDP loss.
            self.dropped += 1
            log.debug("handoff to w%d dropped: %s", to, exc)

    def _readable(self) -> None:
        assert self._sock is not None
        while True:
            try:
                datagram = self._sock.recv(1 << 17)
            except (BlockingIOError, InterruptedError):
                return
            try:
                handoff = unpack(datagram)
            except ValueError as exc:
                log.warning("dropped a handoff: %s", exc)
                continue
            try:
                self._receive(handoff)
            except Exception:
                log.exception("failed handling a handoff from w%d", handoff.origin)

    def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
