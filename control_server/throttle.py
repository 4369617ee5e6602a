"""Password guessing and request floods, throttled as pike and htable do for Kamailio: failed
authentications counted per source address and per user, answers delayed and then refused for a
ban period, and requests counted per source address. Sans-I/O: every call takes `now`.

Trust is per (address, user): an address that once authenticated a user keeps trying that user
while the user is banned for failures elsewhere, so an attacker cannot lock a user's devices out
from another address. A ban of an address, for failures or a flood, covers everything from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# Answers to failed attempts past the slow-down point wait this long, doubling up to the cap.
FIRST_DELAY = 0.5


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    ban_after: int = 10  # failures within `window` from one address, or for one user, that ban
    window: float = 60.0
    slow_after: int = 3  # failures within `window` after which each failure is answered late
    max_delay: float = 4.0
    ban_seconds: float = 300.0
    flood_requests: int = 1000  # requests (any method) from one address per flood_window; 0: off
    flood_window: float = 5.0
    trust_seconds: float = 7 * 86400.0  # how long an address stays trusted after authenticating
    allowed: frozenset[str] = frozenset()  # addresses never banned: a SIP load balancer in front


class SlidingCount:
    """Events in the last `window` seconds, estimated from two fixed windows (the previous one
    weighted by how much of it still overlaps): constant memory per key, whatever the rate."""

    __slots__ = ("window", "start", "current", "previous", "last")

    def __init__(self, window: float, now: float) -> None:
        self.window = window
        self.start = now
        self.current = 0
        self.previous = 0
        self.last = now

    def _roll(self, now: float) -> None:
        passed = now - self.start
        if passed >= 2 * self.window:
            self.previous, self.current, self.start = 0, 0, now
        elif passed >= self.window:
            self.previous, self.current = self.current, 0
            self.start += self.window

    def add(self, now: float) -> float:
        """Count one event; returns `value(now)` after it (rolled once: every arrival adds)."""
        self._roll(now)
        self.current += 1
        self.last = now
        overlap = max(0.0, 1.0 - (now - self.start) / self.window)
        return self.previous * overlap + self.current

    def value(self, now: float) -> float:
        self._roll(now)
        overlap = max(0.0, 1.0 - (now - self.start) / self.window)
        return self.previous * overlap + self.current


class BanKind(Enum):
    ADDRESS = "address"  # too many failed authentications from one address
    USER = "user"  # too many failed authentications for one user, from wherever
    FLOOD = "flood"  # too many requests from one address


@dataclass(frozen=True, slots=True)
class Ban:
    kind: BanKind
    who: str  # the address or the user
    until: float
    count: int  # the failures or requests that led to it


@dataclass(frozen=True, slots=True)
class Penalty:
    """What one failed authentication costs: how long its answer waits, whether it gets one at
    all (not when it started a ban on its address or user), and whether to log it (the first
    failure in a window per address, so a guessing run does not fill the log)."""

    delay: float = 0.0
    log: bool = True
    silent: bool = False


class Throttle:
    def __init__(self, policy: ThrottlePolicy = ThrottlePolicy()) -> None:
        self.policy = policy
        self.by_address: dict[str, SlidingCount] = {}
        self.by_user: dict[str, SlidingCount] = {}
        self.requests: dict[str, SlidingCount] = {}
        self.banned_addresses: dict[str, Ban] = {}
        self.banned_users: dict[str, Ban] = {}
        self.trusted: dict[tuple[str, str], float] = {}  # (address, user) -> trusted until
        self._new_bans: list[Ban] = []

    # -- where requests arrive -------------------------------------------------------------------

    def arrival(self, address: str, now: float) -> bool:
        """Count a request from `address`: False when it is to be dropped unanswered, as one
        from a banned address, or one too many, is."""
        policy = self.policy
        if address in policy.allowed:
            return True
        if self._ban_of(self.banned_addresses, address, now) is not None:
            return False
        if not policy.flood_requests:
            return True
        counter = self.requests.get(address)
        if counter is None:
            counter = self.requests[address] = SlidingCount(policy.flood_window, now)
        count = counter.add(now)
        if count > policy.flood_requests:
            del self.requests[address]
            self._ban(self.banned_addresses, BanKind.FLOOD, address, count, now)
            return False
        return True

    # -- where digest verification happens -------------------------------------------------------

    def may_try(self, address: str, user: str, now: float) -> bool:
        """False when `user` is banned and `address` never authenticated them: drop the
        attempt unheard, so a right guess during the ban tells nothing."""
        if self._ban_of(self.banned_users, user, now) is None:
            return True
        return self._is_trusted(address, user, now)

    def failed(self, address: str, user: str, now: float) -> Penalty:
        policy = self.policy
        by_address = 0.0
        first_here = True
        banned = False
        if address not in policy.allowed:
            counter = self.by_address.get(address)
            if counter is None:
                counter = self.by_address[address] = SlidingCount(policy.window, now)
            first_here = counter.value(now) < 1
            by_address = counter.add(now)
            if by_address >= policy.ban_after:
                self._ban(self.banned_addresses, BanKind.ADDRESS, address, by_address, now)
                banned = True
                del self.by_address[address]
        counter = self.by_user.get(user)
        if counter is None:
            counter = self.by_user[user] = SlidingCount(policy.window, now)
        by_user = counter.add(now)
        if (by_user >= policy.ban_after
                and self._ban_of(self.banned_users, user, now) is None):
            self._ban(self.banned_users, BanKind.USER, user, by_user, now)
            banned = banned or not self._is_trusted(address, user, now)
            del self.by_user[user]
        worst = max(by_address, by_user)
        delay = 0.0
        if worst > policy.slow_after:
            delay = min(policy.max_delay, FIRST_DELAY * 2 ** (worst - policy.slow_after - 1))
        return Penalty(delay=delay, log=first_here, silent=banned)

    def succeeded(self, address: str, user: str, now: float) -> None:
        # Behind an allowed load balancer every user would be trusted from it: nobody is.
        if address not in self.policy.allowed:
            self.trusted[(address, user)] = now + self.policy.trust_seconds

    def take_new_bans(self, now: float) -> list[Ban]:
        """The bans started since the last call, for the server to log, count and announce;
        `now` for a throttle that holds some back (`shared_state.SharedThrottle`)."""
        bans, self._new_bans = self._new_bans, []
        return bans

    def describe(self, ban: Ban, now: float) -> str:
        """A ban as a log line says it."""
        policy = self.policy
        if ban.kind is BanKind.FLOOD:
            why = f"{ban.count} requests in {policy.flood_window:g} s"
        else:
            why = f"{ban.count} failed authentications in {policy.window:g} s"
        who = "user" if ban.kind is BanKind.USER else "address"
        return f"{who} {ban.who} for {ban.until - now:g} s: {why}"

    # -- housekeeping ----------------------------------------------------------------------------

    def forget_idle(self, now: float) -> None:
        """Drop counters with nothing in their window and bans and trust that ran out, so a
        flood of addresses costs memory only while it lasts."""
        for table, idle in ((self.by_address, self.policy.window),
                            (self.by_user, self.policy.window),
                            (self.requests, self.policy.flood_window)):
            for key in [k for k, c in table.items() if now - c.last > 2 * idle]:
                del table[key]
        for bans in (self.banned_addresses, self.banned_users):
            for key in [k for k, b in bans.items() if b.until <= now]:
                del bans[key]
        for key in [k for k, until in self.trusted.items() if until <= now]:
            del self.trusted[key]

    def _is_trusted(self, address: str, user: str, now: float) -> bool:
        until = self.trusted.get((address, user))
        return until is not None and until > now

    def _ban_of(self, bans: dict[str, Ban], key: str, now: float) -> Ban | None:
        ban = bans.get(key)
        if ban is None:
            return None
        if ban.until <= now:
            del bans[key]
            return None
        return ban

    def _ban(self, bans: dict[str, Ban], kind: BanKind, who: str, count: float,
             now: float) -> None:
        ban = bans[who] = Ban(kind, who, now + self.policy.ban_seconds, round(count))
        self._new_bans.append(ban)
