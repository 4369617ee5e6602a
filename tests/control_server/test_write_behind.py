"""What the server keeps for the store while it is away: later news of a device, a session or a
subscription replaces earlier news, so the kept batch stays one row per thing."""

from __future__ import annotations

from control_server.store.write_behind import PendingWrites

from .store_engines import binding, session


def test_a_device_bound_again_keeps_only_its_latest_binding():
    pending = PendingWrites()
    pending.add(bound=[binding("alice", "phone", at=1.0)])
    pending.add(bound=[binding("alice", "phone", at=2.0)])
    assert [b.registered_at for b in pending.bound.values()] == [2.0] and len(pending) == 1


def test_going_offline_cancels_a_kept_binding_and_coming_back_cancels_the_offline():
    pending = PendingWrites()
    pending.add(bound=[binding("alice", "phone")])
    pending.add(unbound=[("alice", "phone")])
    assert pending.bound == {} and pending.unbound == {("alice", "phone")}
    pending.add(bound=[binding("alice", "phone", at=5.0)])
    assert pending.unbound == set() and list(pending.bound) == [("alice", "phone")]


def test_a_session_keeps_its_latest_record_and_new_devices_are_all_kept():
    pending = PendingWrites()
    pending.add(sessions=[session("c1", ended=None, state="established")],
                new_devices=[("alice", "phone", 1.0)])
    pending.add(sessions=[session("c1", ended=3.0)], new_devices=[("bob", "pad", 2.0)])
    assert [r.ended_at for r in pending.sessions.values()] == [3.0]
    assert pending.new_devices == [("alice", "phone", 1.0), ("bob", "pad", 2.0)]


def test_an_ended_subscription_drops_its_kept_state_and_nothing_kept_is_false():
    pending = PendingWrites()
    assert not pending
    pending.add(subscriptions=[("s1", "{}", 10.0)])
    pending.add(ended_subscriptions=["s1"])
    assert pending.subscriptions == {} and pending.ended_subscriptions == {"s1"} and pending


def test_a_device_that_ended_twice_while_kept_keeps_its_latest_last_seen_time():
    pending = PendingWrites()
    pending.add(unbound=[("alice", "phone")], ended_seen={("alice", "phone"): 9.0})
    pending.add(unbound=[("alice", "phone")], ended_seen={("alice", "phone"): 4.0})
    assert pending.ended_seen == {("alice", "phone"): 9.0} and len(pending) == 2
