"""The server's typed events, as the admin's event stream shows them; no sockets."""

from __future__ import annotations

from control_server.admin.events import EventHub, admin_event
from control_server.events import Banned, DeviceOffline, DeviceOnline, EventBus, SessionChanged
from control_server.location import Binding
from control_server.sessions import SessionRecord
from control_server.throttle import Ban, BanKind
from protocols.sip.endpoint import Endpoint

PHONE = Binding(user="ann", device="phone", contact="sip:ann@127.0.0.1:5070",
                source=Endpoint("udp", "127.0.0.1", 5070), user_agent="ua", registered_at=10.0,
                last_seen=10.0, expires_at=70.0, call_id="c", cseq=1)


def record(state: str, *, established: float | None = None, ended: float | None = None,
           progress: dict | None = None) -> SessionRecord:
    return SessionRecord(call_id="s1", caller="ann/laptop", callee="ann/phone",
                         data_type="files", protocol="rsync", dataset="photos", state=state,
                         status=200 if established else None, reason="", started_at=1.0,
                         established_at=established, ended_at=ended, progress=progress or {})


def test_a_session_record_is_started_then_progress_then_ended_by_its_state():
    assert admin_event(SessionChanged(record("proceeding"), 2.0))[0] == "session.started"
    assert admin_event(SessionChanged(record("established", established=2.0), 3.0))[0] == \
        "session.progress"
    kind, row = admin_event(SessionChanged(
        record("ended", established=2.0, ended=6.0, progress={"bytes": 400}), 6.0))
    assert kind == "session.ended"
    assert (row["duration"], row["rate"]) == (4.0, 100.0)  # from the answer to the end


def test_a_device_online_shows_its_address_and_expiry_countdown():
    kind, row = admin_event(DeviceOnline(PHONE, 40.0))
    assert kind == "device.online"
    assert (row["address"], row["expires_in"], row["user_agent"]) == ("udp:127.0.0.1:5070", 30.0,
                                                                      "ua")


def test_a_device_offline_says_why():
    assert admin_event(DeviceOffline("ann", "phone", "went offline", 5.0)) == (
        "device.offline", {"user": "ann", "device": "phone", "reason": "went offline"})


def test_a_ban_names_its_kind_whom_until_when_and_the_count_behind_it():
    ban = Ban(BanKind.ADDRESS, "192.0.2.66", 310.0, 10)
    assert admin_event(Banned(ban, 10.0)) == (
        "security.banned", {"kind": "address", "who": "192.0.2.66", "until": 310.0, "count": 10})


async def test_a_subscriber_gets_the_server_events_from_the_bus_until_it_unsubscribes():
    bus, hub = EventBus(), EventHub()
    assert not bus.listening
    stop = bus.subscribe(hub.receive)
    with hub.subscribe() as subscription:
        bus.publish(DeviceOnline(PHONE, 40.0))
        event = await subscription.next(timeout=1.0)
        assert event is not None and (event.kind, event.at) == ("device.online", 40.0)
        stop()
        assert not bus.listening
        bus.publish(DeviceOffline("ann", "phone", "went offline", 41.0))
        assert subscription.queue.empty()
