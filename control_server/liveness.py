"""When a server of a cluster counts as gone, without sockets or a database: each server's row in
the store says when it was last alive (by the store's clock) and how long it may stay silent; the
others read the rows and the times, and this says which of them are gone.

The times all come from the store's clock, so that two machines whose clocks disagree never take
each other for dead: a server's silence is measured between two readings of one clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True, slots=True)
class HeartbeatPolicy:
    """How often a server says it is alive, and how many heartbeats it may miss."""

    interval: float = 1.0
    missed: int = 3

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.missed < 1:
            raise ValueError("a heartbeat needs an interval above 0 and at least one to miss")

    @property
    def timeout(self) -> float:
        """Silence longer than this, and the server is gone."""
        return self.interval * self.missed


@dataclass(frozen=True, slots=True)
class Member:
    """One server's row: its incarnation (new at each start or return), when it was last alive
    and how long it allowed itself to be silent, both by the store's clock."""

    node: str
    incarnation: int
    alive_at: float
    timeout: float
    gone_at: float | None = None


def silent(members: Iterable[Member], now: float, me: str,
           watching_since: float | None = None) -> list[Member]:
    """The servers, other than `me`, silent for longer than they allowed and not yet taken
    for gone. Each server's own timeout counts: one that beats slowly is not taken for dead by
    one that beats fast. Only the silence since `watching_since` counts (see `Watch`)."""
    return [m for m in members
            if m.node != me and m.gone_at is None
            and now - max(m.alive_at, watching_since or m.alive_at) > m.timeout]


class Watch:
    """Since when this server has seen the store without a gap. A silence that began while
    this server could not reach the store either is no evidence: when PostgreSQL restarts,
    every server's heartbeat stops at once, and the first one back must give the others the
    time to beat again before it takes them for gone."""

    def __init__(self, policy: HeartbeatPolicy) -> None:
        self.policy = policy
        self.since: float | None = None  # the first of our heartbeats without a gap
        self.last: float | None = None  # our latest heartbeat

    def beat(self, now: float) -> None:
        """Our heartbeat landed at `now` (the store's time). After a gap longer than our own
        timeout (the store was away, or this process stalled) the watch starts again."""
        if self.last is None or now - self.last > self.policy.timeout:
            self.since = now
        self.last = now

    def lost(self) -> None:
        """Our heartbeat did not land."""
        self.last = None

    def silent(self, members: Iterable[Member], now: float, me: str) -> list[Member]:
        if self.since is None:
            return []
        return silent(members, now, me, self.since)


def silence_limit(member: Member, now: float) -> float:
    """The last time `member` may have been alive for it to be gone at `now`: the condition
    the store checks again when it ends the server's work, so that a heartbeat written since
    the reading wins."""
    return now - member.timeout


def gone_reason(node: str) -> str:
    """What the history says of a session whose server stopped under it."""
    return f"server {node} stopped"


class Standing(Enum):
    """What a server finds of its own row when its heartbeat did not land."""

    DECLARED_GONE = "declared gone"  # the others took it for dead: it rejoins, anew
    NAME_TAKEN = "name taken"  # another live server runs under the same node name


def standing(row: Member | None, incarnation: int) -> Standing:
    """Why a heartbeat of `incarnation` found no live row of its own. A row that is missing
    (an admin removed it) counts as taken for gone: the server joins again."""
    if row is None or row.incarnation == incarnation or row.gone_at is not None:
        return Standing.DECLARED_GONE
    return Standing.NAME_TAKEN
