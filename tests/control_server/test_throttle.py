"""The throttle on a clock the test moves: failed logins slow answers down and then ban an
address or a user, a trusted address keeps its user, floods ban, bans end."""

from __future__ import annotations

import pytest

from control_server.throttle import BanKind, SlidingCount, Throttle, ThrottlePolicy

POLICY = ThrottlePolicy(ban_after=10, slow_after=3, window=60.0, max_delay=4.0,
                        ban_seconds=300.0, flood_requests=100, flood_window=5.0)
ATTACKER, PHONE, ELSEWHERE = "192.0.2.66", "198.51.100.7", "203.0.113.9"


def fail(throttle: Throttle, times: int, *, address=ATTACKER, user="alice", start=0.0,
         step=0.1) -> list[float]:
    """The delays the throttle gives `times` failures, `step` seconds apart."""
    return [throttle.failed(address, user, start + i * step).delay for i in range(times)]


def test_a_sliding_count_forgets_what_left_its_window():
    count = SlidingCount(10.0, 0.0)
    for second in range(10):
        count.add(float(second))
    assert count.value(9.9) == 10
    assert count.value(15.0) == pytest.approx(5.0)  # half the previous window still overlaps
    assert count.value(25.0) == 0


def test_answers_slow_down_past_the_slow_point_doubling_to_the_cap():
    assert fail(Throttle(POLICY), 9) == [0, 0, 0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_the_tenth_failure_bans_the_address_and_the_user_for_five_minutes():
    throttle = Throttle(POLICY)
    fail(throttle, 9)
    assert throttle.failed(ATTACKER, "alice", 0.9).silent  # the banning guess gets no answer
    bans = {(ban.kind, ban.who, ban.until) for ban in throttle.take_new_bans(0.0)}
    assert bans == {(BanKind.ADDRESS, ATTACKER, 300.9), (BanKind.USER, "alice", 300.9)}
    assert throttle.take_new_bans(0.0) == []  # each ban is announced once
    assert not throttle.arrival(ATTACKER, 1.0)
    assert not throttle.may_try(ELSEWHERE, "alice", 1.0)
    assert throttle.may_try(ELSEWHERE, "bob", 1.0) and throttle.arrival(ELSEWHERE, 1.0)


def test_a_ban_ends_after_its_period():
    throttle = Throttle(POLICY)
    fail(throttle, 10)
    assert not throttle.arrival(ATTACKER, 300.8)
    assert throttle.arrival(ATTACKER, 301.0)
    assert throttle.may_try(ATTACKER, "alice", 301.0)
    assert throttle.failed(ATTACKER, "alice", 301.0).delay == 0  # counting starts afresh


def test_failures_spread_wider_than_the_window_never_ban():
    throttle = Throttle(POLICY)
    fail(throttle, 50, step=15.0)  # four a minute
    assert throttle.take_new_bans(0.0) == []
    assert throttle.arrival(ATTACKER, 800.0)


def test_an_address_that_authenticated_a_user_keeps_trying_them_through_a_user_ban():
    throttle = Throttle(POLICY)
    throttle.succeeded(PHONE, "alice", 0.0)
    for i in range(10):  # ten addresses, one guess each: only the user is banned
        throttle.failed(f"192.0.2.{i}", "alice", 1.0 + i)
    assert [ban.kind for ban in throttle.take_new_bans(0.0)] == [BanKind.USER]
    assert not throttle.failed(PHONE, "alice", 15.0).silent  # a trusted mistype is answered
    assert throttle.may_try(PHONE, "alice", 20.0)
    assert not throttle.may_try(ELSEWHERE, "alice", 20.0)
    assert throttle.may_try(PHONE, "bob", 20.0)


def test_trust_is_per_user_and_runs_out():
    throttle = Throttle(ThrottlePolicy(trust_seconds=100.0, ban_seconds=1000.0))
    throttle.succeeded(PHONE, "alice", 0.0)
    fail(throttle, 10, user="bob", address=ELSEWHERE)
    assert not throttle.may_try(PHONE, "bob", 5.0)
    fail(throttle, 10, user="alice", address=ELSEWHERE, start=10.0)
    assert throttle.may_try(PHONE, "alice", 50.0)
    assert not throttle.may_try(PHONE, "alice", 150.0)


def test_only_the_first_failure_in_a_window_from_an_address_is_logged():
    throttle = Throttle(POLICY)
    logged = [throttle.failed(ATTACKER, f"user{i}", i * 0.1).log for i in range(5)]
    assert logged == [True, False, False, False, False]
    assert throttle.failed(ATTACKER, "user9", 200.0).log


def test_a_flood_from_one_address_bans_it_and_no_other():
    throttle = Throttle(POLICY)
    admitted = [throttle.arrival(ATTACKER, i * 0.01) for i in range(150)]
    assert admitted == [True] * 100 + [False] * 50
    (ban,) = throttle.take_new_bans(0.0)
    assert (ban.kind, ban.who, ban.count) == (BanKind.FLOOD, ATTACKER, 101)
    assert throttle.arrival(ELSEWHERE, 1.5)
    assert not throttle.arrival(ATTACKER, 200.0) and throttle.arrival(ATTACKER, 302.0)


def test_a_steady_rate_under_the_flood_limit_passes():
    throttle = Throttle(POLICY)
    assert all(throttle.arrival(ATTACKER, i * 0.06) for i in range(2000))  # 16.7/s for 2 min


def test_an_allowed_load_balancer_is_never_banned_but_its_users_are():
    throttle = Throttle(ThrottlePolicy(flood_requests=10, allowed=frozenset({ATTACKER})))
    assert all(throttle.arrival(ATTACKER, 0.0) for _ in range(100))
    fail(throttle, 10)
    assert [ban.kind for ban in throttle.take_new_bans(0.0)] == [BanKind.USER]
    assert throttle.arrival(ATTACKER, 1.0)
    throttle.succeeded(ATTACKER, "alice", 2.0)  # no trust through a balancer
    assert not throttle.may_try(ATTACKER, "alice", 3.0)


def test_a_cracker_with_two_thousand_words_needs_hours():
    """The fastest a single-address cracker can go: every guess as soon as it is allowed,
    waiting out each answer's delay and each ban."""
    throttle = Throttle(ThrottlePolicy())
    now, guesses = 0.0, 0
    while guesses < 2000:
        if not throttle.arrival(ATTACKER, now) or not throttle.may_try(ATTACKER, "alice", now):
            now += 1.0
            continue
        now += throttle.failed(ATTACKER, "alice", now).delay
        guesses += 1
    assert now > 10 * 3600


def test_idle_counters_bans_and_trust_are_forgotten():
    throttle = Throttle(POLICY)
    throttle.succeeded(PHONE, "alice", 0.0)
    fail(throttle, 10)
    throttle.arrival(ELSEWHERE, 0.0)
    throttle.forget_idle(10 * 86400.0)
    assert not (throttle.by_address or throttle.by_user or throttle.requests
                or throttle.banned_addresses or throttle.banned_users or throttle.trusted)
