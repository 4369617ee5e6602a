"""The feed's transport between servers on several machines: PostgreSQL LISTEN/NOTIFY on one
channel, the same `cluster_feed.Feed` the workers of one machine use over their supervisor.

Every server listens on the channel and publishes with pg_notify; a notification names the node
that sent it, so a server skips its own. PostgreSQL keeps the order of one sender's
notifications, and delivers them only to listeners connected at the time: a server that
reconnects starts from the store, as a restarted worker starts from its supervisor's snapshot.

A connection PostgreSQL drops (a restart, a network cut) is opened again: what the server
publishes meanwhile waits in order and is sent once it is back; what the others sent meanwhile
is lost to this listener, and the server is told so (`restored`) to read the store again.
"""

from __future__ import annotations

import asyncio
import logging
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
        self._listening: asyncpg.Connection | None = None
        self._sending: asyncpg.Connection | None = None
        self._outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._tasks: list[asyncio.Task] = []
        self._receive: Receiver = lambda event: None
        self._restored: Callable[[], None] | None = None
        self._sending_away = False
        self.too_large = 0  # events not sent: over the payload limit
        self.dropped = 0  # events not sent: too many waiting while PostgreSQL was away

    def publish(self, event: SharedEvent) -> None:
        payload = self._payload(event)
        if len(payload) > MAX_PAYLOAD:
            self.too_large += 1
            log.warning("%s of %d bytes is too large for the feed: not sent",
                        type(event).__name__, len(payload))
            return
        if self._outbox.qsize() >= MAX_WAITING:
            if not self.dropped:
                log.error("%d events wait for PostgreSQL: dropping the newer ones",
                          MAX_WAITING)
            self.dropped += 1
            return
        self._outbox.put_nowait(payload)

    def announcement(self, event: SharedEvent) -> tuple[str, str]:
        """The channel and payload of `event` from this node, for a store transaction to send
        with its change (heard only if it commits); for small events (NodeGone)."""
        return self.channel, self._payload(event).decode()

    def _payload(self, event: SharedEvent) -> bytes:
        return self.node.encode() + b" " + encode(event)

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
        sender, _, body = payload.partition(" ")
        if sender == self.node:
            return
        try:
            event = decode(body.encode())
        except ValueError as exc:
            log.warning("dropped a notification from %s: %s", sender, exc)
            return
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
            payload = await self._outbox.get()
            try:
                await self._deliver(payload.decode())
            finally:
                self._outbox.task_done()

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
                log.warning("the feed sends again; %d event(s) waiting",
                            self._outbox.qsize())
                self._sending_away = False
            return

    async def drained(self, timeout: float | None = None) -> bool:
        """Wait until everything published so far was handed to PostgreSQL (or `timeout`
        passed: False)."""
        try:
            await asyncio.wait_for(self._outbox.join(), timeout)
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
