"""The server as a whole, as the admin API sees it when several workers serve it: every worker's
devices and sessions and their summed counters, built from the events on the feed. It fits
`control_server.admin.view.ServerView`; sans-I/O but for `reload_directory`, which asks the
workers to reload."""

from __future__ import annotations

import time
from collections.abc import Callable
from .cluster_feed import (BanStarted, BindingDown, BindingUp, DirectoryChanged, NodeReport,
                           SessionUpdate, SharedEvent)
from .events import Banned, DeviceOffline, DeviceOnline, EventBus, SessionChanged
from .location import Binding, LocationTable
from .metrics import ServerCounts, ServerMetrics, Tally
from .peer_sessions import PeerSessions
from .sessions import SessionRecord
from .shared_state import flows_lost_with


class ClusterView:
    def __init__(self, realm: str, sip_address: tuple[str, int],
                 publish: Callable[[SharedEvent], None], grace: float = 10.0) -> None:
        self.realm = realm
        self.started_at = time.time()
        self.events = EventBus()
        self.metrics = ServerMetrics()
        self._sip_address = sip_address
        self._publish = publish  # to every worker
        self.location = LocationTable(grace=grace)
        self.sessions = PeerSessions()
        self.reports: dict[str, NodeReport] = {}

    # -- what the workers tell -------------------------------------------------------------------

    def apply(self, event: SharedEvent) -> None:
        now = time.time()
        if isinstance(event, BindingUp):
            binding = event.binding
            if self.location.put(binding) is None and self.events.listening:
                self.events.publish(DeviceOnline(binding, now))
        elif isinstance(event, BindingDown):
            if self.location.remove(event.user, event.device) is not None:
                self._offline(event.user, event.device, event.reason, now)
        elif isinstance(event, SessionUpdate):
            self.sessions.update(event.record, event.node)
            if self.events.listening:
                self.events.publish(SessionChanged(event.record, now))
        elif isinstance(event, BanStarted):
            if self.events.listening:
                self.events.publish(Banned(event.ban, now))
        elif isinstance(event, NodeReport):
            self.reports[event.node] = event
            self._sum_metrics()

    def node_gone(self, node: str, reason: str) -> list[SessionRecord]:
        """A worker died, or another server of the cluster: its TCP devices and its sessions
        went with it. Returns those sessions, ended as failed with `reason`."""
        now = time.time()
        self.reports.pop(node, None)
        for binding in flows_lost_with(self.location.all(), node):
            self.location.remove(binding.user, binding.device)
            self._offline(binding.user, binding.device, "went offline", now)
        ended = self.sessions.node_gone(node, now, reason)
        if self.events.listening:
            for record in ended:
                self.events.publish(SessionChanged(record, now))
        return ended

    def expire(self, now: float) -> None:
        """Registrations not refreshed: every worker drops them by itself, and so does this."""
        for binding in self.location.expire(now):
            self._offline(binding.user, binding.device, "went offline", now)

    def _offline(self, user: str, device: str, reason: str, now: float) -> None:
        if self.events.listening:
            self.events.publish(DeviceOffline(user, device, reason, now))

    def _sum_metrics(self) -> None:
        # In place: the metrics exposition holds this object.
        metrics = self.metrics
        snapshots = [r.metrics for r in self.reports.values() if r.metrics]
        for name in ("register_seconds", "setup_seconds"):
            latency = getattr(metrics, name)
            counts = [0] * len(latency.counts)
            total = 0.0
            for snapshot in snapshots:
                worker_counts, worker_sum = snapshot[name]
                counts = [a + b for a, b in zip(counts, worker_counts)]
                total += worker_sum
            latency.counts, latency.sum = counts, total
        ended: dict[tuple[str, str], int] = {}
        bans: dict[str, int] = {}
        for snapshot in snapshots:
            for outcome, status, count in snapshot["sessions_ended"]:
                ended[(outcome, status)] = ended.get((outcome, status), 0) + count
            for kind, count in snapshot["bans"].items():
                bans[kind] = bans.get(kind, 0) + count
        for table, sums in ((metrics.sessions_ended, ended), (metrics.bans, bans)):
            for key, count in sums.items():
                tally = table.get(key)
                if tally is None:
                    tally = table[key] = Tally(time.time())
                tally.count = max(tally.count, count)  # a restarted worker starts from 0

    # -- what the admin API reads ----------------------------------------------------------------

    @property
    def sip_address(self) -> tuple[str, int]:
        return self._sip_address

    def counts(self) -> ServerCounts:
        counters: dict[str, int] = {}
        requests: dict[str, int] = {}
        server_transactions = client_transactions = 0
        for report in self.reports.values():
            for name, value in report.counts.counters.items():
                counters[name] = counters.get(name, 0) + value
            for name, value in report.counts.requests.items():
                requests[name] = requests.get(name, 0) + value
            server_transactions += report.counts.server_transactions
            client_transactions += report.counts.client_transactions
        return ServerCounts(counters=counters, requests=requests, online=len(self.location),
                            active_sessions=len(self.sessions),
                            server_transactions=server_transactions,
                            client_transactions=client_transactions)

    def online_bindings(self) -> list[Binding]:
        return sorted(self.location.all(), key=lambda b: b.key)

    def binding(self, user: str, device: str) -> Binding | None:
        return self.location.get(user, device)

    def active_sessions(self) -> list[SessionRecord]:
        return sorted(self.sessions.active(), key=lambda s: s.started_at)

    async def reload_directory(self) -> None:
        self._publish(DirectoryChanged(time.time()))

    def nodes(self) -> list[str]:
        return sorted(self.reports)

