"""The feed that keeps the nodes of one server (workers now, servers of a cluster later) on one
state: typed events, their wire form, and one interface with its local transport.

A node publishes what it changed (a binding, a failed login, a ban, a session) and applies what
the others published; nobody asks anybody. The local transport is a stream to the supervisor,
which relays every event to the other workers; a PostgreSQL LISTEN/NOTIFY transport fits the
same `Feed` interface for servers on several machines.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from protocols.sip.endpoint import Endpoint

from .location import Binding
from .metrics import ServerCounts
from .sessions import SessionRecord
from .throttle import Ban, BanKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BindingUp:
    """A device registered or refreshed through `binding.node`."""

    binding: Binding
    new_device: bool = False  # the REGISTER created the device: the store may not hold it yet


@dataclass(frozen=True, slots=True)
class BindingDown:
    """A device unregistered (or was taken off) at `node`."""

    user: str
    device: str
    node: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class AuthFailed:
    """A failed digest login, counted by every node so a guesser gains nothing by spreading."""

    address: str
    user: str
    at: float


@dataclass(frozen=True, slots=True)
class AuthSucceeded:
    address: str
    user: str
    at: float


@dataclass(frozen=True, slots=True)
class Arrivals:
    """Requests counted per source address at one node since its last report (flood limit)."""

    counts: dict[str, int]
    at: float


@dataclass(frozen=True, slots=True)
class BanStarted:
    ban: Ban


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """A session's record as the node running it has it now."""

    record: SessionRecord
    node: str


@dataclass(frozen=True, slots=True)
class NodeReport:
    """A node's counters and measurements, sent each second; the admin side sums them."""

    node: str
    counts: ServerCounts
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DirectoryChanged:
    """An admin changed users or devices: reload now rather than at the next poll."""

    at: float


@dataclass(frozen=True, slots=True)
class NodeGone:
    """A node stopped: the TCP flows it held are gone with it."""

    node: str


@dataclass(frozen=True, slots=True)
class SubscriptionsOrphaned:
    """From a supervisor to its workers: the server found another gone and dropped its
    subscriptions; each worker tells the watchers of those its Call-IDs give it."""

    rows: tuple[tuple[str, str], ...]  # (id, stored state)


@dataclass(frozen=True, slots=True)
class ServerRejoined:
    """From a supervisor to its workers: the cluster took the server for gone while it was cut
    off from the store, and it is back; what the workers run is to be written and told again."""

    node: str


SharedEvent = (BindingUp | BindingDown | AuthFailed | AuthSucceeded | Arrivals | BanStarted
               | SessionUpdate | NodeReport | DirectoryChanged | NodeGone
               | SubscriptionsOrphaned | ServerRejoined)

_EVENT_TYPES = {cls.__name__: cls for cls in (
    BindingUp, BindingDown, AuthFailed, AuthSucceeded, Arrivals, BanStarted, SessionUpdate,
    NodeReport, DirectoryChanged, NodeGone, SubscriptionsOrphaned, ServerRejoined)}


# -- the wire form: one JSON object per event --------------------------------------------------

def encode(event: SharedEvent) -> bytes:
    body = {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}
    body["type"] = type(event).__name__
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes) -> SharedEvent:
    """An event from its wire form; ValueError when it is not one."""
    try:
        body = json.loads(data)
        cls = _EVENT_TYPES[body.pop("type")]
        if cls is BindingUp:
            return BindingUp(_binding(body["binding"]), bool(body["new_device"]))
        if cls is BanStarted:
            return BanStarted(_ban(body["ban"]))
        if cls is SessionUpdate:
            return SessionUpdate(SessionRecord(**body["record"]), body["node"])
        if cls is NodeReport:
            return NodeReport(body["node"], ServerCounts(**body["counts"]), body["metrics"])
        if cls is SubscriptionsOrphaned:
            return SubscriptionsOrphaned(tuple((str(i), str(s)) for i, s in body["rows"]))
        return cls(**body)
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a shared event: {exc}") from None


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _binding(body: dict) -> Binding:
    source = body.pop("source")
    return Binding(source=Endpoint(source["transport"], source["host"], source["port"]), **body)


def _ban(body: dict) -> Ban:
    return Ban(BanKind(body["kind"]), body["who"], body["until"], body["count"])


# -- the interface and its local transport -----------------------------------------------------

Receiver = Callable[[SharedEvent], None]


class Feed(Protocol):
    """Where a node publishes its events and hears everyone else's (never its own)."""

    def publish(self, event: SharedEvent) -> None: ...

    async def start(self, receive: Receiver) -> None: ...

    async def close(self) -> None: ...


class LocalFeed:
    """The feed over a connected stream socket to the supervisor: one event per line."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self.lost = asyncio.Event()  # the supervisor went away

    def publish(self, event: SharedEvent) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(encode(event) + b"\n")

    async def start(self, receive: Receiver) -> None:
        reader, self._writer = await asyncio.open_unix_connection(sock=self._sock, limit=1 << 24)
        self._reader_task = asyncio.create_task(self._read(reader, receive))

    async def _read(self, reader: asyncio.StreamReader, receive: Receiver) -> None:
        try:
            while line := await reader.readline():
                try:
                    event = decode(line)
                except ValueError as exc:
                    log.warning("dropped a feed line: %s", exc)
                    continue
                try:
                    receive(event)
                except Exception:
                    log.exception("failed applying %s", type(event).__name__)
        finally:
            self.lost.set()

    async def close(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            await asyncio.gather(self._reader_task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
