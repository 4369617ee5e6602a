"""The location table: a user's devices found, refreshed, removed and expired one by one."""

from control_server.location import Binding, LocationTable
from protocols.sip.endpoint import Endpoint


def bound(device: str, expires_at: float, user: str = "alice", cseq: int = 1) -> Binding:
    return Binding(user=user, device=device, contact=f"sip:{user}@192.0.2.1;d={device}",
                   source=Endpoint("udp", "192.0.2.1", 5060), user_agent="ua",
                   registered_at=0.0, last_seen=0.0, expires_at=expires_at,
                   call_id=f"c-{device}", cseq=cseq)


def test_each_device_of_a_user_is_found_and_a_refresh_replaces_only_its_own():
    table = LocationTable(grace=0.0)
    phone, laptop, tablet = bound("phone", 60.0), bound("laptop", 60.0), bound("tablet", 60.0)
    assert table.put(phone) is None and table.put(laptop) is None and table.put(tablet) is None
    table.put(bound("phone", 30.0, user="bob"))
    assert len(table) == 4
    again = bound("laptop", 90.0, cseq=2)
    assert table.put(again) is laptop
    assert len(table) == 4
    assert table.get("alice", "laptop") is again and table.get("alice", "phone") is phone
    assert table.get("alice", "watch") is None and table.get("carol", "phone") is None
    assert {b.device for b in table.devices_of("alice")} == {"phone", "laptop", "tablet"}
    assert sorted(b.key for b in table.all()) == [("alice", "laptop"), ("alice", "phone"),
                                                   ("alice", "tablet"), ("bob", "phone")]


def test_removing_devices_one_by_one_leaves_the_others_and_then_nothing():
    table = LocationTable()
    for device in ("phone", "laptop", "tablet"):
        table.put(bound(device, 60.0))
    assert table.remove("alice", "watch") is None
    assert table.remove("alice", "laptop").device == "laptop"
    assert table.remove("alice", "phone").device == "phone"
    assert [b.device for b in table.devices_of("alice")] == ["tablet"]
    assert table.remove("alice", "phone") is None
    assert table.remove("alice", "tablet").device == "tablet"
    assert table.devices_of("alice") == [] and len(table) == 0 and table.all() == []


def test_expiry_drops_what_was_not_refreshed_and_keeps_the_rest():
    table = LocationTable(grace=10.0)
    table.put(bound("phone", 60.0))
    table.put(bound("laptop", 60.0))
    table.put(bound("phone", 60.0, user="bob"))
    table.put(bound("laptop", 200.0, cseq=2))  # refreshed before it fell due
    assert table.expire(65.0) == []
    gone = table.expire(71.0)
    assert sorted(b.key for b in gone) == [("alice", "phone"), ("bob", "phone")]
    assert [b.key for b in table.all()] == [("alice", "laptop")] and len(table) == 1
    assert table.expire(150.0) == []
    assert [b.key for b in table.expire(211.0)] == [("alice", "laptop")]
    assert len(table) == 0
