"""The feed's transport between servers on several machines: PostgreSQL LISTEN/NOTIFY on one
channel, the same `cluster_feed.Feed` the workers of one machine use over their supervisor.

Every server listens on the channel and publishes with pg_notify; a notification names the node
that sent it, so a server skips its own. PostgreSQL keeps the order of one sender's
notifications, and delivers them only to listeners connected at the time: a server that
reconnects starts from the store, as a restarted worker starts from its supervisor's snapshot.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from .cluster_feed import Receiver, SharedEvent, decode, encode

log = logging.getLogger(__name__)

CHANNEL = "sipsync_feed"
# PostgreSQL refuses a notification payload of 8000 bytes or more.
MAX_PAYLOAD = 7999


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
        self._sender: asyncio.Task | None = None
        self.too_large = 0  # events not sent: over the payload limit

    def publish(self, event: SharedEvent) -> None:
        payload = self._payload(event)
        if len(payload) > MAX_PAYLOAD:
            self.too_large += 1
            log.warning("%s of %d bytes is too large for the feed: not sent",
                        type(event).__name__, len(payload))
            return
        self._outbox.put_nowait(payload)

    def announcement(self, event: SharedEvent) -> tuple[str, str]:
        """The channel and payload of `event` from this node, for a store transaction to send
        with its change (heard only if it commits); for small events (NodeGone)."""
        return self.channel, self._payload(event).decode()

    def _payload(self, event: SharedEvent) -> bytes:
        return self.node.encode() + b" " + encode(event)

    async def start(self, receive: Receiver) -> None:
        def heard(connection, pid, channel, payload: str) -> None:
            sender, _, body = payload.partition(" ")
            if sender == self.node:
                return
            try:
                event = decode(body.encode())
            except ValueError as exc:
                log.warning("dropped a notification from %s: %s", sender, exc)
                return
            try:
                receive(event)
            except Exception:
                log.exception("failed applying %s from %s", type(event).__name__, sender)

        # One connection only listens, so a notification is never held up behind our sends.
        self._listening = await asyncpg.connect(self.url)
        await self._listening.add_listener(self.channel, heard)
        self._sending = await asyncpg.connect(self.url)
        self._sender = asyncio.create_task(self._send())

    async def _send(self) -> None:
        assert self._sending is not None
        while True:
            payload = await self._outbox.get()
            try:
                await self._sending.execute("SELECT pg_notify($1, $2)", self.channel,
                                            payload.decode())
            finally:
                self._outbox.task_done()

    async def drained(self) -> None:
        """Wait until everything published so far was handed to PostgreSQL."""
        await self._outbox.join()

    async def close(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            await asyncio.gather(self._sender, return_exceptions=True)
        for connection in (self._listening, self._sending):
            if connection is not None:
                await connection.close()
