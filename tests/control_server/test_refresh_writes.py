"""The rule that keeps refreshes off the store: what is written at once, which refreshes wait,
and that a row written vouches for every refresh skipped after it, whenever the server stops."""

from __future__ import annotations

from dataclasses import replace

import pytest

from control_server.store.refresh_writes import RefreshWrites
from protocols.sip.endpoint import Endpoint

from .store_engines import binding

INTERVAL = 60.0
RULE = RefreshWrites(lag=1.0)


def registered(at: float = 1000.0):
    return binding("alice", "phone", at=at, expires=at + INTERVAL)


def refreshed(previous, at: float, interval: float = INTERVAL, **changes):
    return replace(previous, last_seen=at, expires_at=at + interval, cseq=previous.cseq + 1,
                   **changes)


def test_a_new_binding_is_written():
    assert RULE.must_write(None, registered())


def test_a_refresh_within_the_window_of_its_registration_is_not_written():
    first = registered()
    assert not RULE.must_write(first, refreshed(first, 1030.0))
    assert not RULE.must_write(first, refreshed(first, 1059.9, call_id="another call"))


def test_the_first_refresh_of_each_window_is_written():
    first = registered()
    second = refreshed(first, 1048.0)
    third = refreshed(second, 1096.0)
    assert not RULE.must_write(first, second)
    assert RULE.must_write(second, third)  # 96 s after the registration: the second window
    assert not RULE.must_write(third, refreshed(third, 1119.0))


@pytest.mark.parametrize("change", [
    {"contact": "sip:alice@10.0.0.2:5070"},
    {"source": Endpoint("udp", "127.0.0.1", 5999)},
    {"source": Endpoint("tcp", "127.0.0.1", 5070)},
    {"user_agent": "another agent"},
    {"node": "two"},
])
def test_a_refresh_that_changes_where_or_what_the_device_is_is_written_at_once(change):
    first = registered()
    assert RULE.must_write(first, refreshed(first, 1001.0, **change))


def test_a_refresh_that_asks_for_another_interval_is_written_at_once():
    first = registered()
    assert RULE.must_write(first, refreshed(first, 1001.0, interval=3600.0))


def test_a_binding_loaded_from_the_store_is_written_at_its_first_refresh():
    first = registered()
    loaded = replace(first, expires_at=RULE.stored_expiry(first))
    assert RULE.must_write(loaded, refreshed(loaded, 1010.0))


def test_with_no_lag_every_refresh_is_written_with_its_own_expiry():
    rule = RefreshWrites(lag=0.0)
    first = registered()
    assert rule.must_write(first, refreshed(first, 1001.0))
    assert rule.stored_expiry(first) == first.expires_at


def test_a_negative_lag_is_refused():
    with pytest.raises(ValueError, match="not negative"):
        RefreshWrites(lag=-1.0)


@pytest.mark.parametrize("lag", [0.25, 0.5, 1.0, 2.0, 5.0])
@pytest.mark.parametrize("every", [5.0, 30.0, 48.0, 59.0])
def test_whenever_the_server_stops_the_store_holds_a_refreshing_device_at_least_as_long(
        lag, every):
    """Ten intervals of refreshes: after each one, the last row written must keep the device
    registered until its true expiry, and list it at most `lag` intervals past it."""
    rule = RefreshWrites(lag=lag)
    current = registered()
    stored = rule.stored_expiry(current)
    written = 1
    refreshes = int(10 * INTERVAL / every)
    for n in range(1, refreshes + 1):
        following = refreshed(current, current.registered_at + n * every)
        if rule.must_write(current, following):
            stored = rule.stored_expiry(following)
            written += 1
        current = following
        assert current.expires_at <= stored <= current.expires_at + lag * INTERVAL
    # One row per window, whatever the refresh rate (and the registration's own row).
    assert written <= min(refreshes, 10 / lag) + 1
