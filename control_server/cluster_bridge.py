"""A server of N workers as one server of a cluster on PostgreSQL: its supervisor speaks for it.

The workers share their state over the supervisor's relay (`workers.Supervisor`); the servers
of a cluster share theirs over LISTEN/NOTIFY (`pg_feed`) and know each other by a heartbeat
(`heartbeat`). The bridge joins the two: what a worker publishes goes to the other servers
under the server's name (a binding held by worker w1 is, for them, held by this server), what
they publish reaches every worker, and the heartbeat beats and judges for the server as a
whole. Worker names stay inside the server; the others never see them.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Callable

from .cluster_feed import (AuthFailed, AuthSucceeded, Arrivals, BanStarted, BindingDown,
                           BindingUp, NodeGone, ServerRejoined, SessionUpdate,
                           SharedEvent, SubscriptionsOrphaned)
from .liveness import HeartbeatPolicy
from .server_link import DRAIN_SECONDS, cluster_ties
from .store.membership import GoneServersWork

log = logging.getLogger("sipsync.cluster_bridge")

# What the other servers need of a worker's events: the state they share. A worker's counters
# and an admin's reload stay inside (each server hears the store's own notice of the latter).
_CROSSING = (BindingUp, BindingDown, AuthFailed, AuthSucceeded, Arrivals, BanStarted,
             SessionUpdate)


def outward(event: SharedEvent, server: str) -> SharedEvent | None:
    """A worker's event as the other servers are to hear it, or None if it stays inside."""
    if not isinstance(event, _CROSSING):
        return None
    if isinstance(event, BindingUp):
        return dataclasses.replace(event, binding=dataclasses.replace(event.binding, node=server))
    if isinstance(event, (BindingDown, SessionUpdate)):
        return dataclasses.replace(event, node=server)
    return event


class ClusterBridge:
    def __init__(self, url: str, node: str, policy: HeartbeatPolicy,
                 deliver: Callable[[SharedEvent], None]) -> None:
        self.node = node
        self._deliver = deliver  # to every worker and the supervisor's view
        self.feed, self.heartbeat = cluster_ties(url, node, secrets.randbits(31) + 1, policy,
                                                 self._found_gone, self._rejoined)

    async def start(self) -> None:
        """Before the workers start: our place first, so a server taking our previous run for
        gone cannot end a session a worker has already begun."""
        await self.heartbeat.join()
        await self.feed.start(self._deliver, self._feed_restored)

    def publish(self, event: SharedEvent) -> None:
        """A worker's event, for the other servers."""
        crossing = outward(event, self.node)
        if crossing is not None:
            self.feed.publish(crossing)

    async def stop(self) -> None:
        """After the workers stopped and wrote what they kept: what they published reaches the
        others, then the server leaves, so the others hear of it after everything it did."""
        if not await self.feed.drained(DRAIN_SECONDS):
            log.warning("stopped with events the feed could not send")
        await self.feed.close()
        await self.heartbeat.close(leave=True)

    # -- what the heartbeat finds ----------------------------------------------------------------

    def _found_gone(self, node: str, ended: GoneServersWork) -> None:
        # Every worker drops what it showed of that server; the owner of each of its watchers'
        # subscriptions (by Call-ID) tells the watcher to subscribe again.
        self._deliver(NodeGone(node))
        if ended.subscriptions:
            self._deliver(SubscriptionsOrphaned(tuple(ended.subscriptions)))

    def _rejoined(self) -> None:
        self._deliver(ServerRejoined(self.node))

    def _feed_restored(self) -> None:
        log.info("the feed between servers is back: the others' changes made meanwhile show "
                 "at their next change")
