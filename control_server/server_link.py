"""What ties one server of a cluster to the others on its PostgreSQL store: the shared events
(bindings, logins, bans, sessions) over LISTEN/NOTIFY (`pg_feed`), as workers of one machine
share them over their supervisor (`worker.WorkerLink`), and the heartbeat by which the others
learn that it stopped (`heartbeat`). Each server keeps its own sockets: the balancer in front
(deploy/kamailio) carries a device's traffic, so any server reaches any device through it and
no message needs handing over."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from protocols.sip.endpoint import Endpoint

from .cluster_feed import NodeGone, NodeReport, SharedEvent
from .heartbeat import Heartbeat
from .liveness import HeartbeatPolicy
from .pg_feed import PostgresFeed
from .shared_state import SharedThrottle
from .store import open_database
from .store.membership import GoneServersWork

if TYPE_CHECKING:
    from .server import ControlServer

log = logging.getLogger("sipsync.server_link")

DRAIN_SECONDS = 5.0  # at a stop, for the feed to send what waits (PostgreSQL may be away)


def cluster_ties(url: str, node: str, incarnation: int, policy: HeartbeatPolicy,
                 found_gone: Callable[[str, GoneServersWork], None],
                 rejoined: Callable[[], None]) -> tuple[PostgresFeed, Heartbeat]:
    """The feed and the heartbeat of one server of a cluster, whether one process or a
    supervisor of workers speaks for it: the heartbeat announces on the feed."""
    feed = PostgresFeed(url, node.replace(" ", "_"))
    heartbeat = Heartbeat(open_database("", url), node, incarnation, policy, feed.announcement,
                          found_gone, rejoined)
    return feed, heartbeat


@dataclass(frozen=True)
class ServerMembership:
    """This server among the cluster's: its store name, and a number its nonces carry so that
    only its own replay guard counts them (another server answers them as stale)."""

    node: str
    incarnation: int


class ServerLink:
    supervised = False  # no supervisor: the server closes its own interrupted sessions
    hands_over = True  # a clean stop sends its watchers to the other servers

    def __init__(self, url: str, node: str, policy: HeartbeatPolicy = HeartbeatPolicy()) -> None:
        self.membership = ServerMembership(node, secrets.randbits(31) + 1)
        self.feed, self.heartbeat = cluster_ties(url, node, self.membership.incarnation, policy,
                                                 self._found_gone, self._rejoined)
        self._server: ControlServer | None = None

    async def attach(self, server: ControlServer) -> None:
        self._server = server
        # Our place first: a server taking our previous incarnation for gone must not end a
        # session this one has already begun.
        await self.heartbeat.join()
        await server.driver.start(server.config.sip_host, server.config.sip_port)
        await self.feed.start(self._heard, self._feed_restored)

    async def detach(self) -> None:
        if not await self.feed.drained(DRAIN_SECONDS):
            log.warning("stopped with events the feed could not send")
        await self.feed.close()

    async def leave(self) -> None:
        """After the server's last write: the store takes it for gone now, and the others
        hear it at once rather than after the timeout."""
        await self.heartbeat.close(leave=True)

    def publish(self, event: SharedEvent) -> None:
        self.feed.publish(event)

    def holder_of(self, source: Endpoint) -> str:
        return self.membership.node

    def owns_subscription(self, row: tuple[str, str]) -> bool:
        return True  # the store gave this server its own only

    def report(self, server: ControlServer, now: float) -> None:
        assert isinstance(server.throttle, SharedThrottle)
        arrivals = server.throttle.take_arrivals(now)
        if arrivals is not None:
            self.publish(arrivals)

    def _heard(self, event: SharedEvent) -> None:
        if self._server is not None and not isinstance(event, NodeReport):
            self._server.apply_shared(event)

    def _found_gone(self, node: str, ended: GoneServersWork) -> None:
        # The announcement went out with the store's change; our own listener skips it.
        if self._server is not None:
            self._server.apply_shared(NodeGone(node))
            self._server.subscriptions_orphaned(ended.subscriptions)

    def _rejoined(self) -> None:
        if self._server is not None:
            self._server.rejoined()

    def _feed_restored(self) -> None:
        if self._server is not None:
            self._server.read_peer_sessions()
