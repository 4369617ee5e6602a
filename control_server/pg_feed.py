"""The feed's transport between servers on several machines: PostgreSQL LISTEN/NOTIFY on one
channel, the same `cluster_feed.Feed` the workers of one machine use over their supervisor.

Every server listens on the channel and publishes with pg_notify; a notification names the node
that sent it, so a server skips its own. PostgreSQL keeps the order of one sender's
notifications, and delivers them only to listeners connected at the time: a server that
reconnects starts from the store, as a restarted worker starts from its supervisor's snapshot.

A connection PostgreSQL drops (a restart, a network cut) is opened again: what the server
publishes meanwhile waits in order and is sent once it is back; what the others sent meanwhile
is lost to this listener, and the server is told so (`restored`) to read the store again.

Events waiting together travel in one notification, one per line (an event's JSON holds no
newline): at a thousand registrations a second, one commit and one wake-up of every listener
per event was most of what PostgreSQL did for the feed. Events are not sent as several
pg_notify in one transaction: PostgreSQL folds identical payloads of one transaction into one,
which would lose a repeated event between two others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable

import asyncpg

from .cluster_feed import Receiver, SharedEvent, decode, encode
from .store.postgres import CONNECT_SECONDS, CONNECTION_LOST

log = logging.getLogger(__name__)

CHANNEL = "sipsync_feed"
# PostgreSQL refuses a notification payload of 8000 bytes or more.
MAX_PAYLOAD = 7999
# Events kept while PostgreSQL is away; past that they are dropped (the store has the state).
MAX_WAITING = 100_000
# How long the first of several events waits for the others to share its notification.
LINGER_SECONDS = 0.005
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0, 5.0)  # between attempts to connect again; then the last
LISTENER_CHECK_SECONDS = 0.5
# A query on a connection the server dropped while it was idle may fail with asyncpg's own
# InternalClientError (another operation in progress) rather than as a lost connection.
SEND_FAILED = (*CONNECTION_LOST, asyncpg.InternalClientError)


class PostgresFeed:
    def __init__(self, url: str, node: str, channel: str = CHANNEL) -> None:
        if " " in node or not node:
            raise ValueError(f"a node name is one word, not {node!r}")
        self.url = url
        self.node = node
        self.channel = channel
        self._prefix = node.encode() + b" "  # a notification's payload: sender, space, events
        self._listening: asyncpg.Connection | None = None
        self._sending: asyncpg.Connection | None = None
        self._outbox: deque[bytes] = deque()  # encoded events, oldest first
        self._waiting = asyncio.Event()  # set while the outbox holds events
        self._handed_over = asyncio.Event()  # set when everything published was sent
        self._handed_over.set()
        self._tasks: list[asyncio.Task] = []
        self._receive: Receiver = lambda event: None
        self._restored: Callable[[], None] | None = None
        self._sending_away = False
        self.too_large = 0  # events not sent: over the payload limit
        self.dropped = 0  # events not sent: too many waiting while PostgreSQL was away

    def publish(self, event: SharedEvent) -> None:
        body = encode(event)
        if len(self._prefix) + len(body) > MAX_PAYLOAD:
            self.too_large += 1
            log.warning("%s of %d bytes is too large for the feed: not sent",
                        type(event).__name__, len(body))
            return
        if len(self._outbox) >= MAX_WAITING:
            if not self.dropped:
                log.error("%d events wait for PostgreSQL: dropping the newer ones",
                          MAX_WAITING)
            self.dropped += 1
            return
        self._outbox.append(body)
        self._waiting.set()
        self._handed_over.clear()

    def announcement(self, event: SharedEvent) -> tuple[str, str]:
        """The channel and payload of `event` from this node, for a store transaction to send
        with its change (heard only if it commits); for small events (NodeGone)."""
        return self.channel, self._payload_of(encode(event)).decode()

    def _payload_of(self, bodies: bytes) -> bytes:
        return self._prefix + bodies

    async def start(self, receive: Receiver,
                    restored: Callable[[], None] | None = None) -> None:
        """Listen and send; `restored` is called when the listener is back after a lost
        connection. PostgreSQL away at the start is an error for the caller."""
        self._receive, self._restored = receive, restored
        # One connection only listens, so a notification is never held up behind our sends.
        await self._listen()
        self._sending = await asyncpg.connect(self.url, timeout=CONNECT_SECONDS)
        self._tasks = [asyncio.create_task(self._send()),
                       asyncio.create_task(self._keep_listening())]

    def _heard(self, connection, pid, channel, payload: str) -> None:
        sender, _, bodies = payload.partition(" ")
        if sender == self.node:
            return
        for body in bodies.split("\n"):
            try:
                event = decode(body.encode())
            except ValueError as exc:
                log.warning("dropped an event from %s: %s", sender, exc)
                continue
            try:
                self._receive(event)
            except Exception:
                log.exception("failed applying %s from %s", type(event).__name__, sender)

    async def _listen(self) -> None:
        connection = await asyncpg.connect(self.url, timeout=CONNECT_SECONDS)
        try:
            await connection.add_listener(self.channel, self._heard)
        except BaseException:
            connection.terminate()
            raise
        self._listening = connection

    async def _keep_listening(self) -> None:
        away = False
        while True:
            await asyncio.sleep(LISTENER_CHECK_SECONDS)
            if self._listening is not None and not self._listening.is_closed():
                continue
            try:
                await self._listen()
            except CONNECTION_LOST as exc:
                if not away:
                    log.error("the feed stopped listening: %s", exc)
                away = True
                continue
            away = False
            log.warning("the feed listens again; what the others sent meanwhile was missed")
            if self._restored is not None:
                try:
                    self._restored()
                except Exception:
                    log.exception("failed catching up after the feed was away")

    async def _send(self) -> None:
        while True:
            await self._waiting.wait()
            await asyncio.sleep(LINGER_SECONDS)
            await self._deliver(self._next_payload())
            if not self._outbox:
                self._waiting.clear()
                self._handed_over.set()

    def _next_payload(self) -> str:
        """The oldest waiting events that fit in one notification, taken from the outbox."""
        lines = [self._outbox.popleft()]
        size = len(self._prefix) + len(lines[0])
        while self._outbox and size + 1 + len(self._outbox[0]) <= MAX_PAYLOAD:
            lines.append(self._outbox.popleft())
            size += 1 + len(lines[-1])
        return self._payload_of(b"\n".join(lines)).decode()

    async def _deliver(self, payload: str) -> None:
        """Send one notification, connecting again as often as it takes: the events after it
        wait behind it, so that the others hear them in order."""
        delays = iter(RETRY_SECONDS)
        while True:
            try:
                if self._sending is None or self._sending.is_closed():
                    self._sending = await asyncpg.connect(self.url, timeout=CONNECT_SECONDS)
                await self._sending.execute("SELECT pg_notify($1, $2)", self.channel, payload)
            except SEND_FAILED as exc:
                if not self._sending_away:
                    log.error("the feed cannot send: %s; events wait", exc)
                self._sending_away = True
                if self._sending is not None:
                    self._sending.terminate()
                    self._sending = None
                await asyncio.sleep(next(delays, RETRY_SECONDS[-1]))
                continue
            except asyncpg.PostgresError as exc:
                log.error("PostgreSQL refused a feed event: %s", exc)
            if self._sending_away:
                log.warning("the feed sends again; %d event(s) waiting", len(self._outbox))
                self._sending_away = False
            return

    async def drained(self, timeout: float | None = None) -> bool:
        """Wait until everything published so far was handed to PostgreSQL (or `timeout`
        passed: False)."""
        try:
            await asyncio.wait_for(self._handed_over.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for connection in (self._listening, self._sending):
            if connection is not None and not connection.is_closed():
                try:
                    await connection.close(timeout=CONNECT_SECONDS)
                except CONNECTION_LOST:
                    connection.terminate()
