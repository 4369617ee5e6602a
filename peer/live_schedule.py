"""When a live dataset syncs with a partner, decided without I/O: triggers in, sessions to start out.

Each (dataset, partner) pair is a `Link`. A local change, the partner coming online and the
daemon's own start make a link *wanted*; a wanted link whose partner is online and that is not
busy becomes due once its debounce (for changes) or back-off (after a failure) has passed. The
daemon asks `due(now)` for the sessions to start, runs them, and reports how each ended. Time is
always passed in, so every rule is tested with a fake clock.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class PartnerDirection(Enum):
    """What flows between this device and one partner, as Syncthing's folder types."""

    TWO_WAY = "two-way"
    SEND_ONLY = "send-only"        # our changes go to the partner; theirs never come back
    RECEIVE_ONLY = "receive-only"  # the partner's changes come to us; ours never leave

    @property
    def sends(self) -> bool:
        return self is not PartnerDirection.RECEIVE_ONLY


@dataclass(frozen=True, slots=True)
class Timing:
    quiet: float = 0.15       # a change starts a session once writes have paused this long...
    max_delay: float = 0.75   # ...or this long after the first change, whatever comes first
    retry_first: float = 1.0  # back-off after a failure: doubles from here...
    retry_max: float = 300.0  # ...up to this, with jitter
    glare_short: float = 0.3  # crossing INVITEs (491): the side that yields waits longer
    glare_long: float = 2.1


@dataclass(frozen=True, slots=True)
class LinkKey:
    dataset: str
    partner: str  # USER/DEVICE


class Trigger(Enum):
    LOCAL_CHANGE = "local change"
    PARTNER_ONLINE = "partner online"
    START = "daemon start"
    RETRY = "retry"
    AFTER_SESSION = "change during the last session"


@dataclass(frozen=True, slots=True)
class StartSync:
    """Start a session for this link now (the daemon checks first whether anything is pending)."""

    key: LinkKey
    trigger: Trigger


@dataclass(eq=False)
class Link:
    key: LinkKey
    direction: PartnerDirection
    partner_online: bool = False
    online_since: float | None = None
    offline_since: float | None = None
    wanted: Trigger | None = None
    first_change_at: float | None = None
    last_change_at: float | None = None
    changed_during_session: bool = False
    running: bool = False       # a session we started
    answering: bool = False     # a session the partner started
    failures: int = 0
    retry_at: float = 0.0
    last_error: str | None = None
    last_synced_at: float | None = None

    def ready_at(self, timing: Timing) -> float | None:
        """When this link is due, or None while it waits for something else than time."""
        if self.wanted is None or not self.partner_online or self.running or self.answering:
            return None
        at = self.retry_at
        if self.first_change_at is not None and self.last_change_at is not None:
            at = max(at, min(self.last_change_at + timing.quiet,
                             self.first_change_at + timing.max_delay))
        return at


class LiveSchedule:
    def __init__(self, me: str, timing: Timing = Timing(), rng: random.Random | None = None) -> None:
        self.me = me  # our own USER/DEVICE: breaks glare ties the same way on both sides
        self.timing = timing
        self._rng = rng or random.Random()
        self.links: dict[LinkKey, Link] = {}

    # -- what the daemon keeps in sync ------------------------------------------------------------

    def add(self, dataset: str, partner: str, direction: PartnerDirection,
            online: bool = False, now: float = 0.0) -> Link:
        key = LinkKey(dataset, partner)
        link = self.links.get(key)
        if link is None:
            link = self.links[key] = Link(key, direction)
            self._set_online(link, online, now)
        link.direction = direction
        return link

    def remove(self, dataset: str, partner: str) -> None:
        self.links.pop(LinkKey(dataset, partner), None)

    # -- triggers ---------------------------------------------------------------------------------

    def started(self, now: float) -> None:
        """The daemon's start: every link checks what changed while it was away."""
        for link in self.links.values():
            self._want(link, Trigger.START)

    def local_change(self, dataset: str, now: float) -> None:
        for link in self.links.values():
            if link.key.dataset != dataset or not link.direction.sends:
                continue  # local changes never leave over a receive-only link
            if link.running or link.answering:
                link.changed_during_session = True
                continue
            if link.first_change_at is None:
                link.first_change_at = now
            link.last_change_at = now
            self._want(link, Trigger.LOCAL_CHANGE)

    def partner_presence(self, partner: str, online: bool, now: float) -> None:
        for link in self.links.values():
            if link.key.partner != partner or link.partner_online == online:
                continue
            self._set_online(link, online, now)
            if online:
                # What changed on either side while it was away flows now: the partner's own
                # changes come from its side, ours from here.
                link.retry_at = 0.0
                link.failures = 0
                self._want(link, Trigger.PARTNER_ONLINE)

    # -- sessions ---------------------------------------------------------------------------------

    def due(self, now: float) -> list[StartSync]:
        """The sessions to start now; each link is marked running until `ended` is called."""
        starts = []
        for link in self.links.values():
            at = link.ready_at(self.timing)
            if at is None or at > now:
                continue
            starts.append(StartSync(link.key, link.wanted or Trigger.RETRY))
            link.running = True
            link.wanted = None
            link.first_change_at = link.last_change_at = None
            link.changed_during_session = False
        return starts

    def next_deadline(self) -> float | None:
        times = [at for link in self.links.values()
                 if (at := link.ready_at(self.timing)) is not None]
        return min(times) if times else None

    def nothing_to_do(self, key: LinkKey, now: float) -> None:
        """The daemon found both sides already agree: no session was started."""
        link = self.links.get(key)
        if link is None:
            return
        link.running = False
        link.failures = 0
        link.last_error = None
        link.last_synced_at = now
        self._after_session(link)

    def ended(self, key: LinkKey, ok: bool, now: float, reason: str | None = None,
              glare: bool = False) -> None:
        """A session we started ended; a failure is retried with back-off, for ever."""
        link = self.links.get(key)
        if link is None:
            return
        link.running = False
        if ok:
            link.failures = 0
            link.last_error = None
            link.last_synced_at = now
            self._after_session(link)
            return
        link.wanted = link.wanted or Trigger.RETRY
        if glare:
            # RFC 3261 14.1 lets the owner of the Call-ID retry sooner; here both sides know
            # each other's names, so the lower one retries first and the other yields.
            wait = self.timing.glare_short if self.me < key.partner else self.timing.glare_long
            link.retry_at = now + wait * (1 + self._rng.random())
            return
        link.failures += 1
        link.last_error = reason
        backoff = min(self.timing.retry_max, self.timing.retry_first * 2 ** (link.failures - 1))
        link.retry_at = now + backoff * (0.5 + self._rng.random() / 2)

    def answering(self, key: LinkKey, busy: bool, now: float, ok: bool = True) -> None:
        """The partner started a session for this link (busy=True) or it ended (busy=False).

        What we wanted before it began waits for it; afterwards the daemon's pending check
        tells whether that session already carried it (a two-way one does), so nothing goes
        back for changes that came from the partner."""
        link = self.links.get(key)
        if link is None:
            return
        link.answering = busy
        if busy:
            if link.wanted is not None:
                link.changed_during_session = True
                link.wanted = None
                link.first_change_at = link.last_change_at = None
            return
        if ok:
            link.last_synced_at = now
        self._after_session(link)

    # -- helpers ----------------------------------------------------------------------------------

    def _after_session(self, link: Link) -> None:
        if link.changed_during_session:
            link.changed_during_session = False
            self._want(link, Trigger.AFTER_SESSION)

    def _want(self, link: Link, trigger: Trigger) -> None:
        # A receive-only link never starts a session: the partner sends when it has changes.
        if link.wanted is None and link.direction.sends:
            link.wanted = trigger

    @staticmethod
    def _set_online(link: Link, online: bool, now: float) -> None:
        link.partner_online = online
        if online:
            link.online_since, link.offline_since = now, None
        else:
            link.online_since, link.offline_since = None, now
