"""When a server of a cluster counts as gone, with the store's times passed in: no database."""

from __future__ import annotations

import pytest

from control_server.liveness import (HeartbeatPolicy, Member, Standing, Watch, gone_reason,
                                     silence_limit, silent, standing)

POLICY = HeartbeatPolicy(interval=1.0, missed=3)


def member(node: str, alive_at: float, timeout: float = 3.0, gone_at: float | None = None,
           incarnation: int = 1) -> Member:
    return Member(node, incarnation, alive_at, timeout, gone_at)


def test_a_server_silent_for_longer_than_its_timeout_is_gone_and_one_that_just_beat_is_not():
    members = [member("a", 100.0), member("b", 102.5)]
    assert silent(members, 103.0, "me") == []
    assert [m.node for m in silent(members, 103.01, "me")] == ["a"]
    assert [m.node for m in silent(members, 106.0, "me")] == ["a", "b"]


def test_the_timeout_is_three_heartbeats_by_default_and_a_policy_must_make_sense():
    assert HeartbeatPolicy().timeout == 3.0
    assert HeartbeatPolicy(interval=0.5, missed=4).timeout == 2.0
    with pytest.raises(ValueError):
        HeartbeatPolicy(interval=0.0)
    with pytest.raises(ValueError):
        HeartbeatPolicy(missed=0)


def test_each_server_is_judged_by_its_own_timeout_not_the_judges():
    slow = member("slow", 100.0, timeout=30.0)
    assert silent([slow], 110.0, "fast") == []
    assert silent([slow], 130.5, "fast") == [slow]


def test_a_server_never_takes_itself_or_one_already_gone_for_gone():
    members = [member("me", 0.0), member("old", 0.0, gone_at=5.0)]
    assert silent(members, 100.0, "me") == []


def test_the_store_checks_again_that_the_server_was_silent_up_to_its_timeout():
    found = member("a", 100.0)
    assert silence_limit(found, 104.0) == 101.0
    # A heartbeat written after the reading (alive_at 102) is later than the limit: it wins.
    assert not 102.0 < silence_limit(found, 104.0)


def test_a_watch_counts_no_silence_before_its_first_heartbeat():
    watch = Watch(POLICY)
    others = [member("a", 0.0)]
    assert watch.silent(others, 100.0, "me") == []  # no heartbeat of ours yet
    watch.beat(100.0)
    assert watch.silent(others, 100.0, "me") == []
    assert watch.silent(others, 102.9, "me") == []
    assert watch.silent(others, 103.1, "me") == others


def test_after_the_store_was_away_the_others_get_a_timeout_to_beat_again():
    """PostgreSQL restarted: every heartbeat stopped at once, and ours is back first."""
    watch = Watch(POLICY)
    watch.beat(100.0)
    watch.beat(101.0)
    watch.lost()
    others = [member("a", 101.0)]  # its last beat before the outage
    watch.beat(120.0)
    assert watch.silent(others, 120.0, "me") == []
    assert watch.silent(others, 122.0, "me") == []
    assert watch.silent(others, 123.5, "me") == others  # it had its chance


def test_a_gap_in_our_own_heartbeats_starts_the_watch_again_even_without_an_error():
    """This process stalled: its own silence proves nothing of the others'."""
    watch = Watch(POLICY)
    watch.beat(100.0)
    watch.beat(110.0)  # ten seconds since our last beat
    assert watch.silent([member("a", 101.0)], 110.0, "me") == []
    watch.beat(111.0)  # a regular beat does not start it again
    assert watch.since == 110.0


def test_a_heartbeat_that_finds_its_row_taken_tells_gone_from_a_name_used_twice():
    assert standing(member("me", 1.0, gone_at=2.0, incarnation=7), 7) is Standing.DECLARED_GONE
    assert standing(None, 7) is Standing.DECLARED_GONE
    assert standing(member("me", 1.0, incarnation=8), 7) is Standing.NAME_TAKEN
    # Another incarnation under our name that was itself taken for gone: we take the place.
    assert standing(member("me", 1.0, gone_at=2.0, incarnation=8), 7) is Standing.DECLARED_GONE


def test_the_history_says_which_server_stopped():
    assert gone_reason("server1") == "server server1 stopped"
