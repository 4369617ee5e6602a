"""The shared-state logic of a server made of several nodes, without sockets: which node owns a
message, which node holds a TCP flow, and a throttle whose counts every node shares.

A message belongs to the node its Call-ID hashes to (Kamailio's dispatcher hashes the same way
in front of a cluster), so one node holds every transaction, dialog, session and nonce-count
of a call or a registration, whichever node's socket read the datagram.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from protocols.sip.endpoint import Endpoint

from .cluster_feed import AuthFailed, AuthSucceeded, Arrivals, BanStarted, SharedEvent
from .location import Binding
from .throttle import Ban, BanKind, Penalty, Throttle, ThrottlePolicy

# The Call-ID header, long or compact form, at the start of a line of the header section.
_CALL_ID = re.compile(rb"(?:^|\n)(?:call-id|i)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def call_id_of(data: bytes) -> bytes | None:
    """The Call-ID of a raw SIP message, read without parsing the rest; None if it has none."""
    head = data.split(b"\r\n\r\n", 1)[0]
    match = _CALL_ID.search(head)
    if match is None:
        return None
    value = match.group(1).strip()
    return value or None


def owner_of(call_id: bytes, nodes: int) -> int:
    """The index of the node that handles everything of this Call-ID: stable across
    processes and restarts (crc32, not Python's salted hash)."""
    return zlib.crc32(call_id) % nodes


@dataclass(frozen=True, slots=True)
class Membership:
    """Who this node is among the server's nodes."""

    index: int
    count: int
    incarnation: int  # unique per start of a node: its nonces name it

    @property
    def node(self) -> str:
        return node_name(self.index)

    def owns(self, call_id: bytes | str) -> bool:
        if isinstance(call_id, str):
            call_id = call_id.encode()
        return owner_of(call_id, self.count) == self.index


def node_name(index: int) -> str:
    return f"w{index}"


def node_index(node: str) -> int | None:
    """The worker index a node name gives, or None for a name that is not a worker's."""
    if node.startswith("w") and node[1:].isdigit():
        return int(node[1:])
    return None


class FlowTable:
    """Which node holds the TCP connection to an endpoint, for endpoints this node does not:
    learned from the bindings others published and from messages handed over to us."""

    def __init__(self, me: str) -> None:
        self.me = me
        self._holder: dict[Endpoint, str] = {}

    def learn(self, endpoint: Endpoint, node: str) -> None:
        # Another server's flow is never carried to: it is sent on our own (through the
        # balancer in front), and its address may even be one of ours by chance.
        if not endpoint.reliable or node_index(node) is None:
            return
        if node == self.me:
            self._holder.pop(endpoint, None)
        else:
            self._holder[endpoint] = node

    def holder(self, endpoint: Endpoint) -> str | None:
        """The other node to carry data to this endpoint, or None: send it ourselves."""
        return self._holder.get(endpoint)

    def forget_node(self, node: str) -> None:
        for endpoint in [e for e, n in self._holder.items() if n == node]:
            del self._holder[endpoint]


def flows_lost_with(bindings: list[Binding], node: str) -> list[Binding]:
    """The bindings a stopped node took with it: those over a connection it held. A UDP
    device stays reachable from any node's socket."""
    return [b for b in bindings if b.node == node and b.source.reliable]


# How long a node waits, per place in line, before it announces a ban that another node's
# failure completed here: long beside the feed's few milliseconds, short beside a log reader.
CLAIM_STAGGER = 0.25


def claim_rank(node: str) -> int:
    """A node's place in line to announce a ban nobody announced: a worker's index, or for a
    server of a cluster a small number its name gives (two servers of one number may both
    announce a ban, in a race that is rare already)."""
    index = node_index(node)
    return index if index is not None else zlib.crc32(node.encode()) % 4


class SharedThrottle(Throttle):
    """The throttle with every node's failures, trusts and bans in its counts: each one found
    here is published, each one heard is applied as if it happened here, so spreading guesses
    over nodes gains an attacker nothing. Request counts for the flood limit travel in batches
    (`take_arrivals`), as one event per request would cost more than the request.

    A ban is announced (logged, counted, put on the admin stream) by one node. Usually that is
    the node whose own failure completed it. When two failures cross on the feed, every node's
    ban is completed by another's failure. Each node then keeps its ban unclaimed for a while
    that grows with its rank, and the first one whose wait ends announces it and tells the
    others."""

    def __init__(self, policy: ThrottlePolicy, publish: Callable[[SharedEvent], None],
                 node: str = "w0") -> None:
        super().__init__(policy)
        self._publish = publish
        self._arrivals: dict[str, int] = {}
        self._applying = False
        self._claim_delay = CLAIM_STAGGER * (claim_rank(node) + 1)
        self._unclaimed: dict[tuple[BanKind, str], tuple[Ban, float]] = {}

    def arrival(self, address: str, now: float) -> bool:
        if address not in self.policy.allowed and self.policy.flood_requests:
            self._arrivals[address] = self._arrivals.get(address, 0) + 1
        return super().arrival(address, now)

    def failed(self, address: str, user: str, now: float) -> Penalty:
        if not self._applying:
            self._publish(AuthFailed(address, user, now))
        return super().failed(address, user, now)

    def succeeded(self, address: str, user: str, now: float) -> None:
        if not self._applying:
            self._publish(AuthSucceeded(address, user, now))
        super().succeeded(address, user, now)

    def _ban(self, bans: dict[str, Ban], kind: BanKind, who: str, count: float,
             now: float) -> None:
        super()._ban(bans, kind, who, count, now)
        if self._applying:
            self._unclaimed[kind, who] = (bans[who], now + self._claim_delay)
        else:
            self._publish(BanStarted(bans[who]))

    def take_new_bans(self, now: float) -> list[Ban]:
        bans = super().take_new_bans(now)
        for key, (ban, due) in list(self._unclaimed.items()):
            if due <= now:
                del self._unclaimed[key]
                if ban.until > now:
                    bans.append(ban)
                    self._publish(BanStarted(ban))
        return bans

    def take_arrivals(self, now: float) -> Arrivals | None:
        """The requests counted since the last call, as one event for the others."""
        if not self._arrivals:
            return None
        counts, self._arrivals = self._arrivals, {}
        return Arrivals(counts, now)

    # -- what the others found -------------------------------------------------------------------

    def apply(self, event: SharedEvent) -> None:
        """Count another node's failure, trust, requests or ban here. A ban that another
        node's failure completes is started here, and announced here only if no other node
        has announced it when this one's wait ends. A flood is the sum of every node's
        requests, so whichever node sees the sum cross the limit starts and announces the ban."""
        if isinstance(event, Arrivals):
            for address, count in event.counts.items():
                self._count_requests(address, count, event.at)
            return
        announced = len(self._new_bans)
        self._applying = True
        try:
            if isinstance(event, AuthFailed):
                super().failed(event.address, event.user, event.at)
            elif isinstance(event, AuthSucceeded):
                super().succeeded(event.address, event.user, event.at)
            elif isinstance(event, BanStarted):
                ban = event.ban
                self._unclaimed.pop((ban.kind, ban.who), None)  # announced there
                table = self.banned_users if ban.kind is BanKind.USER else self.banned_addresses
                current = table.get(ban.who)
                if current is None or current.until < ban.until:
                    table[ban.who] = ban
        finally:
            self._applying = False
            del self._new_bans[announced:]

    def _count_requests(self, address: str, count: int, now: float) -> None:
        if address in self.policy.allowed or not self.policy.flood_requests:
            return
        for _ in range(count):
            if not super().arrival(address, now):
                break
