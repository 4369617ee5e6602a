"""`/metrics`: the server's counters, sizes and latencies in the Prometheus text format, read when
Prometheus scrapes, in a registry of this API's own (several servers can run in one process, as in
tests). The numbers themselves are kept by the server (`control_server/metrics.py`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ..metrics import Latency, ServerCounts, ServerMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _ServerCollector(Collector):
    def __init__(self, counts: Callable[[], ServerCounts], metrics: ServerMetrics) -> None:
        self._counts = counts
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        state = self._counts()
        counters = state.counters
        for name, key, text in (
            ("sipsync_registrations", "registrations", "REGISTERs that bound a device"),
            ("sipsync_auth_failures", "auth_failures", "REGISTERs refused for wrong credentials"),
            ("sipsync_messages_received", "received", "SIP messages received"),
            ("sipsync_messages_malformed", "malformed", "SIP messages that did not parse"),
            ("sipsync_throttle_delayed", "throttle_delayed",
             "Answers to failed authentications sent late by the throttle"),
            ("sipsync_throttle_dropped", "throttle_dropped",
             "Requests dropped unanswered: banned address or user, or a flood"),
            ("sipsync_store_bindings_written", "store_bindings_written",
             "Binding rows written to the store: new, changed, or a refresh opening a window"),
        ):
            yield CounterMetricFamily(name, text, value=counters.get(key, 0))
        yield CounterMetricFamily("sipsync_store_writer_cpu_seconds",
                                  "CPU time of the thread writing to the store",
                                  value=counters.get("store_writer_cpu_us", 0) / 1e6)
        requests = CounterMetricFamily("sipsync_sip_requests", "SIP requests received, by method",
                                       labels=["method"])
        for method, count in sorted(state.requests.items()):
            requests.add_metric([method], count)
        yield requests
        yield GaugeMetricFamily("sipsync_online_devices", "Devices registered now",
                                value=state.online)
        yield GaugeMetricFamily("sipsync_active_sessions", "Sessions not yet ended",
                                value=state.active_sessions)
        transactions = GaugeMetricFamily("sipsync_sip_transactions",
                                         "SIP transactions in progress", labels=["side"])
        transactions.add_metric(["server"], state.server_transactions)
        transactions.add_metric(["client"], state.client_transactions)
        yield transactions
        yield GaugeMetricFamily("sipsync_store_up",
                                "1 while the store takes the server's writes, 0 while it is away",
                                value=int(self._metrics.store_up))

        sessions = CounterMetricFamily(
            "sipsync_sessions", "Sessions ended, by outcome (ended or failed) and SIP status",
            labels=["outcome", "status"],
        )
        for (outcome, status), tally in list(self._metrics.sessions_ended.items()):
            sessions.add_metric([outcome, status], tally.count, created=tally.since)
        yield sessions
        bans = CounterMetricFamily(
            "sipsync_bans", "Bans started, by kind (address or user for failed logins, flood)",
            labels=["kind"],
        )
        for kind, tally in list(self._metrics.bans.items()):
            bans.add_metric([kind], tally.count, created=tally.since)
        yield bans
        yield from _histogram("sipsync_register_seconds",
                              "Time to handle one REGISTER in the server",
                              self._metrics.register_seconds)
        yield from _histogram("sipsync_session_setup_seconds", "INVITE to 200 OK through the proxy",
                              self._metrics.setup_seconds)


def _histogram(name: str, text: str, latency: Latency) -> Iterable[Metric]:
    cumulative, buckets = 0, []
    for edge, count in zip((*latency.buckets, float("inf")), latency.counts):
        cumulative += count
        buckets.append((floatToGoString(edge), cumulative))
    yield HistogramMetricFamily(name, text, buckets=buckets, sum_value=latency.sum)
    # What prometheus_client's own Histogram adds: when counting began.
    yield GaugeMetricFamily(f"{name}_created", text, value=latency.since)


class MetricsExposition:
    def __init__(self, counts: Callable[[], ServerCounts], metrics: ServerMetrics) -> None:
        # One collector in a registry of its own: there are no names to check against, so
        # the server is read at the first scrape and not before.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_ServerCollector(counts, metrics))

    def render(self) -> bytes:
        return generate_latest(self.registry)
