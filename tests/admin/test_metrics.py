"""`/metrics` from the server's plain numbers reads as prometheus_client's own objects would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from control_server.admin.metrics import MetricsExposition
from control_server.metrics import REGISTER_BUCKETS, ServerCounts, ServerMetrics

# On an edge, between edges, under the first and past the last.
OBSERVED = [0.00005, 0.0001, 0.0003, 0.001, 0.02, 0.1, 0.5, 3.0]
COUNTS = ServerCounts(counters={"registrations": 3}, requests={"REGISTER": 4}, online=2,
                      active_sessions=1, server_transactions=0, client_transactions=0)


def samples(text: bytes, family: str) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text.decode()) if f.name == family
            for s in f.samples if not s.name.endswith("_created")}


def test_register_latency_buckets_count_and_sum_match_a_prometheus_histogram():
    metrics = ServerMetrics()
    reference = CollectorRegistry()
    histogram = Histogram("sipsync_register_seconds", "Time to handle one REGISTER in the server",
                          buckets=REGISTER_BUCKETS, registry=reference)
    for seconds in OBSERVED:
        metrics.register_seconds.observe(seconds)
        histogram.observe(seconds)
    ours = MetricsExposition(lambda: COUNTS, metrics).render()
    assert samples(ours, "sipsync_register_seconds") == \
        samples(generate_latest(reference), "sipsync_register_seconds")


def test_sessions_ended_are_counted_by_outcome_and_status_as_a_prometheus_counter_would():
    metrics = ServerMetrics()
    reference = CollectorRegistry()
    counter = Counter("sipsync_sessions", "Sessions ended", ["outcome", "status"],
                      registry=reference)
    for outcome, status in [("ended", 200), ("ended", 200), ("failed", 486), ("failed", None)]:
        metrics.session_ended(outcome, status)
        counter.labels(outcome, str(status or "")).inc()
    ours = MetricsExposition(lambda: COUNTS, metrics).render()
    assert samples(ours, "sipsync_sessions") == samples(generate_latest(reference),
                                                        "sipsync_sessions")
    assert b"sipsync_sessions_created" in ours


def test_counts_are_read_at_scrape_time():
    metrics, counts = ServerMetrics(), [COUNTS]
    exposition = MetricsExposition(lambda: counts[0], metrics)
    first = samples(exposition.render(), "sipsync_online_devices")
    counts[0] = ServerCounts({}, {}, online=7, active_sessions=0, server_transactions=0,
                             client_transactions=0)
    assert first == {("sipsync_online_devices", ()): 2.0}
    assert samples(exposition.render(), "sipsync_online_devices") == \
        {("sipsync_online_devices", ()): 7.0}


def test_bans_are_counted_by_kind_and_throttled_requests_by_what_was_done():
    metrics = ServerMetrics()
    for kind in ("address", "user", "address", "flood"):
        metrics.ban_started(kind)
    counts = ServerCounts(counters={"throttle_delayed": 7, "throttle_dropped": 3}, requests={},
                          online=0, active_sessions=0, server_transactions=0,
                          client_transactions=0)
    ours = MetricsExposition(lambda: counts, metrics).render()
    assert samples(ours, "sipsync_bans") == {
        ("sipsync_bans_total", (("kind", "address"),)): 2.0,
        ("sipsync_bans_total", (("kind", "user"),)): 1.0,
        ("sipsync_bans_total", (("kind", "flood"),)): 1.0,
    }
    assert samples(ours, "sipsync_throttle_delayed") == {("sipsync_throttle_delayed_total", ()): 7}
    assert samples(ours, "sipsync_throttle_dropped") == {("sipsync_throttle_dropped_total", ()): 3}


def test_the_store_gauge_is_one_while_the_store_takes_writes_and_zero_while_it_is_away():
    metrics = ServerMetrics()
    exposition = MetricsExposition(lambda: COUNTS, metrics)
    assert samples(exposition.render(), "sipsync_store_up") == {("sipsync_store_up", ()): 1.0}
    metrics.store_up = False
    assert samples(exposition.render(), "sipsync_store_up") == {("sipsync_store_up", ()): 0.0}


def test_the_stores_rows_and_writer_time_are_counters_the_writer_time_in_seconds():
    counts = ServerCounts(counters={"store_bindings_written": 7, "store_writer_cpu_us": 2_500_000},
                          requests={}, online=0, active_sessions=0, server_transactions=0,
                          client_transactions=0)
    ours = MetricsExposition(lambda: counts, ServerMetrics()).render()
    assert samples(ours, "sipsync_store_bindings_written") == {
        ("sipsync_store_bindings_written_total", ()): 7}
    assert samples(ours, "sipsync_store_writer_cpu_seconds") == {
        ("sipsync_store_writer_cpu_seconds_total", ()): 2.5}
