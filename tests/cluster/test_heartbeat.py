"""Heartbeats of several servers on a real PostgreSQL: a silent one is taken for gone by exactly
one of the others, announced on the feed's channel; one restarted in time is not; one cut off
from the store and back joins again and is told to write again what it runs."""

from __future__ import annotations

import asyncio

from control_server.cluster_feed import NodeGone, decode
from control_server.heartbeat import Heartbeat
from control_server.liveness import HeartbeatPolicy
from control_server.pg_feed import PostgresFeed
from control_server.store import StateStore, open_database

from ..waiting import wait_until_async
from .test_membership_store import session
from .unreachable_store import Unreachable

POLICY = HeartbeatPolicy(interval=0.2, missed=3)


class Server:
    """One server's heartbeat, with what it was told: servers it found gone, its returns."""

    def __init__(self, url: str, node: str, incarnation: int = 1) -> None:
        self.found_gone: list[tuple[str, list]] = []
        self.rejoined = 0
        self.feed = PostgresFeed(url, node)
        self.heartbeat = Heartbeat(open_database("", url), node, incarnation, POLICY,
                                   self.feed.announcement, self._gone, self._rejoined)

    def _gone(self, node: str, ended) -> None:
        self.found_gone.append((node, ended))

    def _rejoined(self) -> None:
        self.rejoined += 1

    def silence(self) -> None:
        """As a SIGKILL would: no more heartbeats, and no goodbye."""
        assert self.heartbeat._task is not None
        self.heartbeat._task.cancel()

    def cut_off(self) -> Unreachable:
        """Its store calls fail from now on, while it keeps running, until told otherwise."""
        return Unreachable.around(self.heartbeat)




async def listen(url: str) -> tuple[list, PostgresFeed]:
    heard: list = []
    feed = PostgresFeed(url, "listener")
    await feed.start(heard.append)
    return heard, feed


async def test_a_silent_server_is_taken_for_gone_by_exactly_one_other_and_announced(postgres_url):
    StateStore(open_database("", postgres_url)).write_batch([], [], [session("a-open")], [], "a")
    heard, listener = await listen(postgres_url)
    a, b, c = (Server(postgres_url, node) for node in ("a", "b", "c"))
    for server in (a, b, c):
        await server.heartbeat.join()
    try:
        await asyncio.sleep(POLICY.timeout)  # all beating: nobody is gone
        assert b.found_gone == c.found_gone == []
        a.silence()
        await wait_until_async(lambda: b.found_gone or c.found_gone, timeout=POLICY.timeout * 4,
                               what="a taken for gone")
        await asyncio.sleep(POLICY.timeout)  # time for a second declaration, if it came
        found = b.found_gone + c.found_gone
        assert [(node, [r.call_id for r in ended.sessions]) for node, ended in found] == [
            ("a", ["a-open"])]
        assert [e for e in heard if isinstance(e, NodeGone)] == [NodeGone("a")]
    finally:
        for server in (b, c):
            await server.heartbeat.close()
        await listener.close()


async def test_a_server_restarted_within_the_timeout_announces_its_old_self_and_stays(
        postgres_url):
    heard, listener = await listen(postgres_url)
    first, watcher = Server(postgres_url, "a", incarnation=1), Server(postgres_url, "b")
    await first.heartbeat.join()
    await watcher.heartbeat.join()
    try:
        first.silence()
        again = Server(postgres_url, "a", incarnation=2)
        previous = await again.heartbeat.join()
        assert previous is not None and previous.incarnation == 1
        await wait_until_async(lambda: NodeGone("a") in heard, what="the old incarnation gone")
        await asyncio.sleep(POLICY.timeout * 2)
        assert watcher.found_gone == []  # the new one beats: nothing to end
        await again.heartbeat.close()
    finally:
        await watcher.heartbeat.close()
        await listener.close()


async def test_a_server_taken_for_gone_while_cut_off_joins_again_as_a_new_incarnation(
        postgres_url):
    cut_off, other = Server(postgres_url, "a"), Server(postgres_url, "b")
    await cut_off.heartbeat.join()
    await other.heartbeat.join()
    try:
        store = cut_off.cut_off()
        await wait_until_async(lambda: other.found_gone, timeout=POLICY.timeout * 4,
                               what="a taken for gone")
        old = cut_off.heartbeat.incarnation
        assert cut_off.rejoined == 0 and cut_off.found_gone == []  # it judged nobody
        store.cut = False
        await wait_until_async(lambda: cut_off.rejoined, timeout=POLICY.timeout * 2,
                               what="a back as a new incarnation")
        assert cut_off.heartbeat.incarnation != old
        await asyncio.sleep(POLICY.timeout * 2)
        assert len(other.found_gone) == 1  # the new incarnation is left alone
        assert cut_off.found_gone == []  # nor did the returning one take b for gone
    finally:
        await other.heartbeat.close()
        await cut_off.heartbeat.close()


def test_a_gone_announcement_is_a_feed_event_from_the_announcer():
    channel, payload = PostgresFeed("postgresql://nowhere", "b").announcement(NodeGone("a"))
    sender, _, body = payload.partition(" ")
    assert (channel, sender, decode(body.encode())) == ("sipsync_feed", "b", NodeGone("a"))
