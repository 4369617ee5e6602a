"""The directory's device set answers as a set of (user, device) pairs does."""

from control_server.device_set import DeviceSet


def test_pairs_added_one_by_one_or_in_bulk_are_members_once():
    devices = DeviceSet([("alice", "phone"), ("bob", "nas"), ("alice", "phone")])
    devices.add(("alice", "laptop"))
    devices.add(("alice", "laptop"))
    devices |= {("bob", "nas"), ("bob", "attic"), ("carol", "tv")}
    assert len(devices) == 5
    assert set(devices) == {("alice", "phone"), ("alice", "laptop"), ("bob", "nas"),
                            ("bob", "attic"), ("carol", "tv")}
    assert devices.names_of("alice") == ("phone", "laptop")
    assert devices.names_of("dave") == ()


def test_a_pair_is_not_found_under_another_user_nor_by_a_wrong_shape():
    devices = DeviceSet([("alice", "phone")])
    assert ("alice", "phone") in devices
    assert ("bob", "phone") not in devices
    assert ("alice", "pho") not in devices
    assert "alice" not in devices and ("alice",) not in devices


def test_discarding_the_last_device_of_a_user_forgets_the_user():
    devices = DeviceSet([("alice", "phone"), ("alice", "laptop")])
    devices.discard(("alice", "phone"))
    devices.discard(("alice", "tablet"))
    assert list(devices) == [("alice", "laptop")] and len(devices) == 1
    devices.discard(("alice", "laptop"))
    assert len(devices) == 0 and devices.names_of("alice") == ()
    assert devices == set()


def test_the_held_name_of_a_device_is_the_sets_own_string_and_an_unknown_one_is_itself():
    laptop = "".join(["lap", "top"])
    devices = DeviceSet([("alice", "phone"), ("alice", laptop)])
    other = "".join(["lap", "top"])
    assert devices.held_name("alice", other) is laptop
    assert devices.held_name("bob", other) is other
    assert devices.held_name("alice", "tablet") == "tablet"
