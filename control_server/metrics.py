"""What the server measures on its SIP path, as plain numbers with no exporter: how long a
REGISTER and a session set-up take, how sessions end, and the bans the throttle started. The
admin edge reads these for Prometheus (`control_server/admin/metrics.py`), with the counters."""

from __future__ import annotations

import bisect
import time
from dataclasses import dataclass

# REGISTER is answered in about 0.1 ms in process; an INVITE waits for a device to answer.
REGISTER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Latency:
    """Observations counted by the first bucket edge they do not exceed, with their sum."""

    def __init__(self, buckets: tuple[float, ...]) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)  # the last one counts what passed every edge
        self.sum = 0.0
        self.since = time.time()

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass(slots=True)
class Tally:
    """How many times something happened, since the first time."""

    since: float
    count: int = 0


class ServerMetrics:
    def __init__(self) -> None:
        self.register_seconds = Latency(REGISTER_BUCKETS)
        self.setup_seconds = Latency(SETUP_BUCKETS)
        self.sessions_ended: dict[tuple[str, str], Tally] = {}  # by (outcome, SIP status or "")
        self.bans: dict[str, Tally] = {}  # by kind: address, user, flood
        self.store_up = True  # False while the store cannot be written (PostgreSQL away)

    def ban_started(self, kind: str) -> None:
        tally = self.bans.get(kind)
        if tally is None:
            tally = self.bans[kind] = Tally(time.time())
        tally.count += 1

    def session_ended(self, outcome: str, status: int | None) -> None:
        key = (outcome, str(status or ""))
        tally = self.sessions_ended.get(key)
        if tally is None:
            tally = self.sessions_ended[key] = Tally(time.time())
        tally.count += 1


@dataclass(frozen=True, slots=True)
class ServerCounts:
    """The server's counters and sizes at one moment, for `/api/status` and `/metrics`."""

    counters: dict[str, int]
    requests: dict[str, int]  # by method
    online: int
    active_sessions: int
    server_transactions: int
    client_transactions: int
