"""Presence subscriptions without sockets: who sees which device, full state first, changes after."""

import pytest

from control_server.presence import MAX_EXPIRES, MIN_EXPIRES, Presence, Sharing
from protocols.sip.reginfo import ContactEvent, DeviceState

DEVICES = [("alice", "laptop"), ("alice", "phone"), ("bob", "tablet"), ("bob", "desktop"),
           ("carol", "phone")]
# bob shared his tablet with alice; carol shared nothing.
SHARES = {("bob", "tablet"): {"alice"}}


class World:
    def __init__(self):
        self.online = {("alice", "phone"), ("bob", "tablet"), ("bob", "desktop")}
        self.presence = Presence(Sharing.of(DEVICES, SHARES), self.describe)

    def describe(self, key):
        online = key in self.online
        return DeviceState(key[0], key[1], online=online,
                           event=ContactEvent.REGISTERED if online else ContactEvent.EXPIRED,
                           contact=f"sip:{key[0]}@127.0.0.1;device={key[1]}" if online else "")


def named(notify):
    return sorted((d.user, d.device, d.online) for d in notify.body.devices)


@pytest.fixture
def world():
    return World()


def test_the_first_notify_carries_every_device_the_subscriber_may_sync_with(world):
    answer = world.presence.subscribe("s1", ("alice", "laptop"), "alice", None, 600, now=0.0)
    assert answer.status == 200 and answer.expires == 600
    assert answer.notify.body.full and answer.notify.body.version == 0
    assert named(answer.notify) == [("alice", "laptop", False), ("alice", "phone", True),
                                    ("bob", "tablet", True)]


def test_an_unshared_device_and_an_unknown_one_get_the_same_403(world):
    unshared = world.presence.subscribe("s1", ("alice", "laptop"), "bob", "desktop", 600, 0.0)
    unknown = world.presence.subscribe("s2", ("alice", "laptop"), "bob", "toaster", 600, 0.0)
    nobody = world.presence.subscribe("s3", ("alice", "laptop"), "zed", None, 600, 0.0)
    private = world.presence.subscribe("s4", ("alice", "laptop"), "carol", None, 600, 0.0)
    assert {(a.status, a.reason) for a in (unshared, unknown, nobody, private)} == {
        (403, "Not allowed to watch this resource")}
    assert len(world.presence) == 0


def test_watching_a_user_who_shared_a_device_shows_only_that_device(world):
    answer = world.presence.subscribe("s1", ("alice", "laptop"), "bob", None, 600, 0.0)
    assert named(answer.notify) == [("bob", "tablet", True)]


def test_a_change_is_told_only_to_those_who_may_see_the_device(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 0.0)
    world.presence.subscribe("c", ("carol", "phone"), "carol", None, 600, 0.0)
    world.presence.subscribe("b", ("bob", "desktop"), "bob", None, 600, 0.0)
    world.online.discard(("bob", "desktop"))
    notifies = world.presence.device_changed(("bob", "desktop"), 5.0)
    assert [(n.subscription.id, named(n)) for n in notifies] == [
        ("b", [("bob", "desktop", False)])]  # alice never hears of bob's desktop
    world.online.add(("bob", "tablet"))
    told = sorted(n.subscription.id for n in world.presence.device_changed(("bob", "tablet"), 6.0))
    assert told == ["a", "b"]


def test_later_notifies_carry_only_the_change_with_a_rising_version(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 0.0)
    world.online.discard(("alice", "phone"))
    (notify,) = world.presence.device_changed(("alice", "phone"), 1.0)
    assert not notify.body.full and notify.body.version == 1
    assert named(notify) == [("alice", "phone", False)]


def test_a_refresh_gets_the_state_again_and_moves_the_expiry(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 0.0)
    answer = world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 500.0)
    assert answer.notify.body.full and answer.notify.body.version == 1
    assert world.presence.expire(700.0) == []
    assert world.presence.next_deadline() == 1100.0


def test_a_subscription_not_refreshed_expires(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 60, 0.0)
    assert world.presence.expire(59.9) == []
    (ended,) = world.presence.expire(60.0)
    assert ended.terminated and ended.reason == "timeout"
    assert len(world.presence) == 0
    assert world.presence.device_changed(("alice", "phone"), 61.0) == []


def test_expires_zero_ends_a_subscription_with_a_final_notify(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 0.0)
    answer = world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 0, 1.0)
    assert answer.status == 200 and answer.notify.terminated
    assert len(world.presence) == 0


def test_expiry_is_held_between_the_bounds(world):
    short = world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 1, 0.0)
    long = world.presence.subscribe("b", ("alice", "phone"), "alice", None, 10**6, 0.0)
    assert (short.expires, long.expires) == (MIN_EXPIRES, MAX_EXPIRES)


def test_the_subscribers_binding_going_ends_its_subscriptions(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 0.0)
    world.presence.subscribe("b", ("alice", "laptop"), "bob", None, 600, 0.0)
    world.presence.subscribe("c", ("alice", "phone"), "alice", None, 600, 0.0)
    ended = world.presence.subscriber_gone(("alice", "laptop"), 3.0)
    assert sorted(n.subscription.id for n in ended) == ["a", "b"]
    assert all(n.terminated and n.reason == "deactivated" for n in ended)
    assert list(world.presence.subscriptions) == ["c"]


def test_a_share_removed_tells_the_watcher_once_and_nothing_after(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 0.0)
    (notify,) = world.presence.sharing_changed(Sharing.of(DEVICES, {}), 1.0)
    assert [(d.device, d.event, d.reason) for d in notify.body.devices] == [
        ("tablet", ContactEvent.REJECTED, "no longer shared")]
    world.online.discard(("bob", "tablet"))
    assert world.presence.device_changed(("bob", "tablet"), 2.0) == []


def test_a_new_share_appears_to_the_watcher(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 0.0)
    shares = {**SHARES, ("carol", "phone"): {"alice"}}
    (notify,) = world.presence.sharing_changed(Sharing.of(DEVICES, shares), 1.0)
    assert named(notify) == [("carol", "phone", False)]


def test_a_device_made_by_its_first_register_is_seen_at_once(world):
    world.presence.subscribe("a", ("alice", "laptop"), "alice", None, 600, 0.0)
    world.presence.sharing.add_device(("alice", "tablet"))
    world.online.add(("alice", "tablet"))
    (notify,) = world.presence.device_changed(("alice", "tablet"), 1.0)
    assert named(notify) == [("alice", "tablet", True)]
