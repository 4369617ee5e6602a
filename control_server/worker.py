"""One worker of `sipsync-server --workers N`: a control server on the SIP sockets its
supervisor bound, tied to the other workers by the feed (state) and handoffs (traffic).

Run by the supervisor (`python -m control_server.worker`), never by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import socket
import sys
import time
from pathlib import Path

from protocols.sip.endpoint import Endpoint

from .cluster_feed import (BindingUp, Feed, LocalFeed, NodeGone, NodeReport, ServerRejoined,
                           SharedEvent, SubscriptionsOrphaned)
from .config import ServerConfig, load_config
from .handoff import Handoff, HandoffKind, HandoffSocket
from .server import ControlServer
from .shared_state import (FlowTable, Membership, SharedThrottle, call_id_of, node_index,
                           owner_of)
from .store import is_store_url

log = logging.getLogger("sipsync.worker")


class WorkerLink:
    """What ties one worker's control server to the others: it hands each message to the
    worker owning its Call-ID, carries data to TCP flows other workers hold, and publishes and
    applies the shared events."""

    supervised = True  # the supervisor closes the sessions a previous run left open

    def __init__(self, membership: Membership, feed: Feed, run_dir: Path,
                 udp_sock: socket.socket, tcp_sock: socket.socket,
                 hands_over: bool = False) -> None:
        self.membership = membership
        # In a cluster a clean stop sends the watchers to the other servers; alone, the
        # subscriptions stay stored for the next run.
        self.hands_over = hands_over
        self.feed = feed
        self.flows = FlowTable(membership.node)
        self.handoffs = HandoffSocket(run_dir, membership.index, self._handed)
        self._udp_sock = udp_sock
        self._tcp_sock = tcp_sock
        self._server: ControlServer | None = None
        self.handed_on = 0  # messages this worker's sockets read for another worker

    async def attach(self, server: ControlServer) -> None:
        self._server = server
        driver = server.driver
        await driver.adopt(self._udp_sock, self._tcp_sock)
        driver.dispatch = self._dispatch
        driver.transport.carry = self._carry
        self.handoffs.start()
        for binding in server.location.all():
            self.flows.learn(binding.source, binding.node)
        await self.feed.start(self._heard)

    async def detach(self) -> None:
        await self.feed.close()
        self.handoffs.close()

    async def leave(self) -> None:
        """Nothing of its own: the server's workers stop with their supervisor."""

    def publish(self, event: SharedEvent) -> None:
        self.feed.publish(event)

    def holder_of(self, source: Endpoint) -> str:
        """The node holding the flow a message came over."""
        if not source.reliable:
            return self.membership.node
        return self.flows.holder(source) or self.membership.node

    def owns_subscription(self, row: tuple[str, str]) -> bool:
        """Whether a stored presence subscription is this worker's to keep (by its Call-ID)."""
        try:
            call_id = json.loads(row[1])["call_id"]
        except (ValueError, KeyError, TypeError):
            return self.membership.index == 0  # unreadable: one worker reports dropping it
        return self.membership.owns(str(call_id))

    def report(self, server: ControlServer, now: float) -> None:
        assert isinstance(server.throttle, SharedThrottle)
        arrivals = server.throttle.take_arrivals(now)
        if arrivals is not None:
            self.publish(arrivals)
        self.publish(NodeReport(self.membership.node, server.counts(),
                                metrics_snapshot(server)))

    # -- traffic ---------------------------------------------------------------------------------

    def _dispatch(self, data: bytes, source: Endpoint) -> bool:
        call_id = call_id_of(data)
        if call_id is None:
            return False  # malformed: answered (400) where it arrived
        owner = owner_of(call_id, self.membership.count)
        if owner == self.membership.index:
            return False
        self.handed_on += 1
        self.handoffs.send(owner, Handoff(HandoffKind.MESSAGE, self.membership.index, source,
                                          data))
        return True

    def _carry(self, data: bytes, destination: Endpoint) -> bool:
        holder = self.flows.holder(destination)
        index = node_index(holder) if holder is not None else None
        if index is None or index == self.membership.index:
            return False
        self.handoffs.send(index, Handoff(HandoffKind.CARRY, self.membership.index,
                                          destination, data))
        return True

    def _handed(self, handoff: Handoff) -> None:
        assert self._server is not None
        driver = self._server.driver
        if handoff.kind is HandoffKind.MESSAGE:
            if handoff.endpoint.reliable:
                self.flows.learn(handoff.endpoint, f"w{handoff.origin}")
            driver.handle(handoff.data, handoff.endpoint)
        else:
            # Ours to carry: over the connection held here, or (when it closed) a new one,
            # as a process of its own would do.
            driver.transport.send_here(handoff.data, handoff.endpoint)

    # -- state -----------------------------------------------------------------------------------

    def _heard(self, event: SharedEvent) -> None:
        assert self._server is not None
        if isinstance(event, NodeReport):
            return  # for the supervisor's view
        if isinstance(event, SubscriptionsOrphaned):
            self._server.subscriptions_orphaned(
                [row for row in event.rows if self.owns_subscription(row)])
            return
        if isinstance(event, ServerRejoined):
            self._server.rejoined()
            return
        if isinstance(event, BindingUp):
            self.flows.learn(event.binding.source, event.binding.node)
        elif isinstance(event, NodeGone):
            self.flows.forget_node(event.node)
        self._server.apply_shared(event)


def metrics_snapshot(server: ControlServer) -> dict:
    """The worker's measurements as plain numbers, for the supervisor to sum."""
    metrics = server.metrics
    return {
        "register_seconds": [metrics.register_seconds.counts, metrics.register_seconds.sum],
        "setup_seconds": [metrics.setup_seconds.counts, metrics.setup_seconds.sum],
        "sessions_ended": [[outcome, status, tally.count]
                           for (outcome, status), tally in metrics.sessions_ended.items()],
        "bans": {kind: tally.count for kind, tally in metrics.bans.items()},
    }


# -- the process -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--incarnation", type=int, required=True)
    parser.add_argument("--udp-fd", type=int, required=True)
    parser.add_argument("--tcp-fd", type=int, required=True)
    parser.add_argument("--feed-fd", type=int, required=True)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--config", required=True, help="the server's settings as JSON")
    args = parser.parse_args(argv)
    config = load_config(None, json.loads(args.config), environ={})
    membership = Membership(args.index, args.count, args.incarnation)
    logging.basicConfig(
        level=config.log_level.upper(),
        format=f"%(asctime)s %(levelname)s {membership.node} %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    udp_sock = socket.socket(fileno=args.udp_fd)
    tcp_sock = socket.socket(fileno=args.tcp_fd)
    feed_sock = socket.socket(fileno=args.feed_fd)
    asyncio.run(_serve(config, membership, args.run_dir, udp_sock, tcp_sock, feed_sock))
    return 0


async def _serve(config: ServerConfig, membership: Membership, run_dir: Path,
                 udp_sock: socket.socket, tcp_sock: socket.socket,
                 feed_sock: socket.socket) -> None:
    feed = LocalFeed(feed_sock)
    link = WorkerLink(membership, feed, run_dir, udp_sock, tcp_sock,
                      hands_over=is_store_url(config.store))
    server = ControlServer(config, cluster=link)
    await server.start()
    link.report(server, time.time())  # the supervisor's sign that this worker serves
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # A Ctrl-C reaches the whole process group: the supervisor alone decides, and stops us.
    loop.add_signal_handler(signal.SIGINT, lambda: None)
    lost = asyncio.create_task(feed.lost.wait())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([lost, stopped], return_when=asyncio.FIRST_COMPLETED)
    if lost.done() and not stop.is_set():
        log.warning("the supervisor went away: stopping")
    for task in (lost, stopped):
        task.cancel()
    await server.stop()


if __name__ == "__main__":
    sys.exit(main())
