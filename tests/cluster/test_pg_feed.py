"""The feed between servers over a real PostgreSQL: LISTEN/NOTIFY carries each event to the
other servers, in order, and never back to its sender."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from control_server.cluster_feed import AuthFailed, BindingUp, DirectoryChanged
from control_server.location import Binding
from control_server.pg_feed import MAX_PAYLOAD, PostgresFeed
from protocols.sip.endpoint import Endpoint

BINDING = Binding("ann", "phone", "sip:ann@192.0.2.1:5070", Endpoint("tcp", "192.0.2.1", 5070),
                  "phone", 1.0, 1.0, 61.0, "c1", 1, node="server-a")


class Heard:
    def __init__(self) -> None:
        self.events: list = []
        self._changed = asyncio.Event()

    def __call__(self, event) -> None:
        self.events.append(event)
        self._changed.set()

    async def count(self, n: int, timeout: float = 5.0) -> list:
        async with asyncio.timeout(timeout):
            while len(self.events) < n:
                self._changed.clear()
                await self._changed.wait()
        return self.events


async def test_events_reach_the_other_servers_in_order_and_not_their_sender(postgres_url):
    a, b, c = (PostgresFeed(postgres_url, name) for name in ("server-a", "server-b", "server-c"))
    heard = {feed.node: Heard() for feed in (a, b, c)}
    for feed in (a, b, c):
        await feed.start(heard[feed.node])
    try:
        sent = [BindingUp(BINDING, new_device=True), AuthFailed("192.0.2.66", "ann", 2.0),
                DirectoryChanged(3.0)]
        for event in sent:
            a.publish(event)
        assert await heard["server-b"].count(3) == sent
        assert await heard["server-c"].count(3) == sent
        b.publish(DirectoryChanged(4.0))
        assert (await heard["server-a"].count(1)) == [DirectoryChanged(4.0)]
        # Sent after b's own was delivered to a: b hears it after anything b could hear of its
        # own, which it does not.
        a.publish(DirectoryChanged(5.0))
        assert await heard["server-b"].count(4) == sent + [DirectoryChanged(5.0)]
    finally:
        for feed in (a, b, c):
            await feed.close()


async def test_an_event_too_large_for_a_notification_is_counted_not_sent(postgres_url):
    feed = PostgresFeed(postgres_url, "server-a")
    await feed.start(lambda event: None)
    try:
        feed.publish(AuthFailed("192.0.2.66", "x" * MAX_PAYLOAD, 1.0))
        await feed.drained()
        assert feed.too_large == 1
    finally:
        await feed.close()


def test_a_node_name_is_one_word():
    with pytest.raises(ValueError):
        PostgresFeed("postgresql://nowhere", "two words")


async def test_a_feed_whose_connections_were_dropped_connects_again_and_sends_what_waited(
        postgres_url):
    """PostgreSQL drops both of a's connections, as at a restart or a network cut."""
    a, b = PostgresFeed(postgres_url, "server-a"), PostgresFeed(postgres_url, "server-b")
    heard_a, heard_b = Heard(), Heard()
    restored = asyncio.Event()
    await a.start(heard_a, restored.set)
    await b.start(heard_b)
    admin = await asyncpg.connect(postgres_url)
    try:
        pids = [a._listening.get_server_pid(), a._sending.get_server_pid()]
        await admin.execute("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid",
                            pids)
        sent = [DirectoryChanged(1.0), DirectoryChanged(2.0), DirectoryChanged(3.0)]
        for event in sent:
            a.publish(event)
        assert await heard_b.count(3) == sent  # all of them, in order
        async with asyncio.timeout(5):
            await restored.wait()  # the server is told it may have missed something
        b.publish(DirectoryChanged(4.0))
        assert await heard_a.count(1) == [DirectoryChanged(4.0)]
    finally:
        await admin.close()
        for feed in (a, b):
            await feed.close()


async def test_events_published_together_share_notifications_and_keep_their_order(postgres_url):
    """A thousand events in a burst, as registrations at a high rate: far fewer notifications
    than events, each under PostgreSQL's payload limit, the same event twice in a row kept."""
    a, b = PostgresFeed(postgres_url, "server-a"), PostgresFeed(postgres_url, "server-b")
    heard = Heard()
    payloads: list[str] = []
    watcher = await asyncpg.connect(postgres_url)
    await watcher.add_listener(a.channel, lambda *args: payloads.append(args[-1]))
    await a.start(lambda event: None)
    await b.start(heard)
    try:
        sent = [DirectoryChanged(float(i // 2)) for i in range(1000)]
        for event in sent:
            a.publish(event)
        assert await heard.count(1000) == sent
        assert len(payloads) < 100
        assert max(len(p.encode()) for p in payloads) <= MAX_PAYLOAD
    finally:
        await watcher.close()
        for feed in (a, b):
            await feed.close()


async def test_an_unreadable_event_in_a_notification_drops_only_itself(postgres_url, caplog):
    b = PostgresFeed(postgres_url, "server-b")
    heard = Heard()
    await b.start(heard)
    sender = await asyncpg.connect(postgres_url)
    try:
        good = DirectoryChanged(1.0)
        other = PostgresFeed(postgres_url, "server-a")
        body = other.announcement(good)[1].partition(" ")[2]
        await sender.execute("SELECT pg_notify($1, $2)", b.channel,
                             f"server-a {body}\nnot an event\n{body}")
        assert await heard.count(2) == [good, good]
        assert "dropped an event from server-a" in caplog.text
    finally:
        await sender.close()
        await b.close()
