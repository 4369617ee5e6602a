"""A server's heartbeat in the store its cluster shares, and the sweep that finds the servers
gone silent: every interval this server says it is alive, then ends the work of any other
silent past its timeout (`store.membership` makes sure only one server does, once).

Why a row with a time rather than the alternatives: a heartbeat on the feed is heard only by
those listening at that moment, so a server starting after another died would never learn it;
an advisory lock dies with its connection when a process is killed, but a machine that vanishes
or a network cut leaves the connection open for as long as TCP keepalive allows (hours by
default). A row is there for whoever reads it, and its time, by the store's clock, ages the same
for every reader whatever their own clocks say.

A server cut off from the store cannot tell "cut off" from "the others are gone", and the
others cannot tell it from dead: they take it for gone once its row is old enough. Nothing is
lost by that. Taking a server for gone only ends what is still open (a history row is never
deleted or rewritten), and the server keeps every write of its own while the store is away.
When it is back, its heartbeat finds its row taken: it joins again as a new incarnation, and
writes and tells again everything it still runs, which replaces what the others presumed."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .cluster_feed import NodeGone, SharedEvent
from .liveness import HeartbeatPolicy, Member, Standing, Watch, gone_reason, standing
from .store import Store, StoreUnavailable
from .store.membership import Announcement, GoneServersWork, MembershipStore

log = logging.getLogger("sipsync.heartbeat")


class Heartbeat:
    """On a store connection and a thread of its own, so that a long flush of the server's
    writes never holds a heartbeat back."""

    def __init__(self, database: Store, node: str, incarnation: int,
                 policy: HeartbeatPolicy, announcement: Callable[[SharedEvent], Announcement],
                 gone: Callable[[str, GoneServersWork], None],
                 rejoined: Callable[[], None]) -> None:
        self.node = node
        self.incarnation = incarnation
        self.policy = policy
        self._announcement = announcement
        self._gone = gone  # another server was found gone, and this one ended its work
        self._rejoined = rejoined  # this one was taken for gone, and is back
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="heartbeat")
        self._store = MembershipStore(database)
        self._task: asyncio.Task | None = None
        self.watch = Watch(policy)
        self._store_away = False
        self._name_taken_by: int | None = None

    async def join(self) -> Member | None:
        """Take this node's place in the store; returns the row of its previous incarnation.
        If that one was never taken for gone, the others hear it is, now."""
        previous = await self._call(self._store.join, self.node, self.incarnation,
                                    self.policy.timeout,
                                    self._announcement(NodeGone(self.node)))
        self._task = asyncio.create_task(self._beat())
        return previous

    async def close(self, leave: bool = False) -> None:
        """Stop beating; with `leave`, take this server for gone first (a clean stop), so the
        others drop what it showed and its watchers subscribe again at once, not after the
        timeout."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if leave:
            await self._leave()
        await self._call(self._store.close)
        self._thread.shutdown(wait=True)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.policy.interval)
            try:
                await self.once()
            except StoreUnavailable as exc:
                self.watch.lost()
                if not self._store_away:
                    log.warning("no heartbeat: %s", exc)
                self._store_away = True
            except Exception:
                log.exception("the heartbeat failed")

    async def once(self) -> None:
        """One heartbeat, then one sweep for servers gone silent."""
        if not await self._call(self._store.heartbeat, self.node, self.incarnation):
            if not await self._stand_again():
                return
        if self._store_away:
            log.info("heartbeat written again")
            self._store_away = False
        now, members = await self._call(self._store.members)
        self.watch.beat(now)
        for member in self.watch.silent(members, now, self.node):
            reason = gone_reason(member.node)
            ended = await self._call(self._store.declare_gone, member, now, reason,
                                     self._announcement(NodeGone(member.node)))
            if ended is None:
                continue  # another server did it, or it came back
            log.warning("server %s silent for %.1f s (timeout %g s): taken for gone, "
                        "%d open session(s) ended, %d subscription(s) dropped", member.node,
                        now - member.alive_at, member.timeout, len(ended.sessions),
                        len(ended.subscriptions))
            self._gone(member.node, ended)

    async def _leave(self) -> None:
        try:
            ended = await self._call(self._store.leave, self.node, self.incarnation,
                                     gone_reason(self.node),
                                     self._announcement(NodeGone(self.node)))
        except StoreUnavailable as exc:
            log.warning("stopping without telling the store (%s): the others take this server "
                        "for gone after %g s", exc, self.policy.timeout)
            return
        if ended is not None:
            log.info("left the cluster: %d open session(s) ended, %d stored subscription(s) "
                     "dropped", len(ended.sessions), len(ended.subscriptions))

    async def _stand_again(self) -> bool:
        """Our row is not ours any more: join again if the others took us for gone."""
        row = await self._call(self._store.member, self.node)
        if standing(row, self.incarnation) is Standing.NAME_TAKEN:
            assert row is not None
            if row.incarnation != self._name_taken_by:  # once, not at every beat
                log.error("another server runs as node %r (incarnation %d, ours %d): give "
                          "each server a name of its own", self.node, row.incarnation,
                          self.incarnation)
            self._name_taken_by = row.incarnation
            return False
        self.incarnation = secrets.randbits(31) + 1
        # Nothing to announce: whoever took us for gone announced it.
        await self._call(self._store.join, self.node, self.incarnation, self.policy.timeout)
        log.warning("this server was taken for gone while the store was away: back as "
                    "incarnation %d, writing again what it runs", self.incarnation)
        self._rejoined()
        return True

    async def _call(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, function, *args)
