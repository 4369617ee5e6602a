"""Prometheus metrics of one control server, in a registry of its own (several servers can run
in one process, as in tests). Plain counters the hot path already keeps are read at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# REGISTER is answered in about 0.1 ms in process; an INVITE waits for a device to answer.
_REGISTER_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1)
_SETUP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class _Snapshot(Collector):
    """Reads the server's own counters and sizes when Prometheus scrapes, not on every message."""

    def __init__(self, read: Callable[[], dict]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        state = self._read()
        counters = state["counters"]
        for name, key, text in (
            ("sipsync_registrations", "registrations", "REGISTERs that bound a device"),
            ("sipsync_auth_failures", "auth_failures", "REGISTERs refused for wrong credentials"),
            ("sipsync_messages_received", "received", "SIP messages received"),
            ("sipsync_messages_malformed", "malformed", "SIP messages that did not parse"),
        ):
            yield CounterMetricFamily(name, text, value=counters.get(key, 0))
        requests = CounterMetricFamily("sipsync_sip_requests", "SIP requests received, by method",
                                       labels=["method"])
        for method, count in sorted(state["requests"].items()):
            requests.add_metric([method], count)
        yield requests
        yield GaugeMetricFamily("sipsync_online_devices", "Devices registered now",
                                value=state["online"])
        yield GaugeMetricFamily("sipsync_active_sessions", "Sessions not yet ended",
                                value=state["active_sessions"])
        transactions = GaugeMetricFamily("sipsync_sip_transactions",
                                         "SIP transactions in progress", labels=["side"])
        transactions.add_metric(["server"], state["server_transactions"])
        transactions.add_metric(["client"], state["client_transactions"])
        yield transactions


class ServerMetrics:
    def __init__(self, read_state: Callable[[], dict]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Snapshot(read_state))
        self.sessions = Counter(
            "sipsync_sessions", "Sessions ended, by outcome (ended or failed) and SIP status",
            ["outcome", "status"], registry=self.registry,
        )
        self.register_seconds = Histogram(
            "sipsync_register_seconds", "Time to handle one REGISTER in the server",
            buckets=_REGISTER_BUCKETS, registry=self.registry,
        )
        self.setup_seconds = Histogram(
            "sipsync_session_setup_seconds", "INVITE to 200 OK through the proxy",
            buckets=_SETUP_BUCKETS, registry=self.registry,
        )

    def session_ended(self, outcome: str, status: int | None) -> None:
        self.sessions.labels(outcome, str(status or "")).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
