"""The whole server as the admin API sees it over several workers, and the handoffs between
workers on the wire; no sockets."""

from __future__ import annotations

import pytest

from control_server.cluster_feed import (BindingDown, BindingUp, DirectoryChanged, NodeReport,
                                         SessionUpdate)
from control_server.cluster_view import ClusterView
from control_server.events import DeviceOffline, DeviceOnline, SessionChanged
from control_server.handoff import Handoff, HandoffKind, pack, unpack
from control_server.location import Binding
from control_server.metrics import ServerCounts
from control_server.sessions import SessionRecord
from protocols.sip.endpoint import Endpoint


def binding(device: str, node: str, transport: str = "udp") -> Binding:
    return Binding("ann", device, "sip:ann@127.0.0.1:5070", Endpoint(transport, "127.0.0.1", 5070),
                   "phone", 1.0, 1.0, 4e9, "c1", 1, node=node)


def report(node: str, registrations: int, register_counts: list[int]) -> NodeReport:
    counts = ServerCounts({"registrations": registrations}, {"REGISTER": registrations}, 0, 0,
                          2, 1)
    metrics = {"register_seconds": [register_counts, 0.5], "setup_seconds": [[0] * 14, 0.0],
               "sessions_ended": [["ended", "200", 1]], "bans": {}}
    return NodeReport(node, counts, metrics)


def session(call_id: str, ended: bool = False) -> SessionRecord:
    return SessionRecord(call_id, "ann/laptop", "ann/phone", "files", "rsync", "photos",
                         "ended" if ended else "established", 200, "", 1.0, 2.0,
                         3.0 if ended else None)


def test_the_view_shows_every_workers_devices_and_sessions_and_sums_their_counters():
    sent = []
    view = ClusterView("sipsync", ("127.0.0.1", 5060), sent.append)
    heard = []
    view.events.subscribe(heard.append)
    view.apply(BindingUp(binding("laptop", "w0")))
    view.apply(BindingUp(binding("phone", "w1", "tcp")))
    view.apply(SessionUpdate(session("c1"), "w1"))
    view.apply(report("w0", 3, [1] * 10))
    view.apply(report("w1", 4, [2] * 10))
    assert [b.device for b in view.online_bindings()] == ["laptop", "phone"]
    counts = view.counts()
    assert counts.counters["registrations"] == 7 and counts.online == 2
    assert counts.active_sessions == 1 and counts.server_transactions == 4
    assert view.metrics.register_seconds.counts == [3] * 10
    assert view.metrics.sessions_ended[("ended", "200")].count == 2
    assert [type(e) for e in heard] == [DeviceOnline, DeviceOnline, SessionChanged]


def test_a_dead_worker_takes_its_tcp_devices_and_sessions_out_of_the_view():
    view = ClusterView("sipsync", ("127.0.0.1", 5060), lambda e: None)
    view.apply(BindingUp(binding("laptop", "w1")))
    view.apply(BindingUp(binding("phone", "w1", "tcp")))
    view.apply(SessionUpdate(session("c1"), "w1"))
    ended = view.node_gone("w1", "worker w1 stopped")
    assert [b.device for b in view.online_bindings()] == ["laptop"]
    assert view.active_sessions() == []
    assert [(r.call_id, r.state, r.reason) for r in ended] == [("c1", "failed",
                                                                "worker w1 stopped")]
    assert ended[0].ended_at is not None


def test_an_unregistered_device_and_an_ended_session_leave_the_view():
    view = ClusterView("sipsync", ("127.0.0.1", 5060), lambda e: None)
    heard = []
    view.events.subscribe(heard.append)
    view.apply(BindingUp(binding("laptop", "w0")))
    view.apply(BindingDown("ann", "laptop", "w0", "device unregistered", 5.0))
    view.apply(SessionUpdate(session("c1"), "w0"))
    view.apply(SessionUpdate(session("c1", ended=True), "w0"))
    assert view.online_bindings() == [] and view.active_sessions() == []
    assert isinstance(heard[1], DeviceOffline) and heard[1].reason == "device unregistered"


async def test_an_admin_reload_is_asked_of_every_worker():
    sent = []
    view = ClusterView("sipsync", ("127.0.0.1", 5060), sent.append)
    await view.reload_directory()
    assert [type(e) for e in sent] == [DirectoryChanged]


@pytest.mark.parametrize("endpoint", [Endpoint("udp", "127.0.0.1", 5070),
                                      Endpoint("tcp", "::1", 65535)])
def test_a_handoff_survives_its_datagram(endpoint):
    handoff = Handoff(HandoffKind.MESSAGE, 3, endpoint, b"REGISTER sip:x SIP/2.0\r\n\r\n")
    assert unpack(pack(handoff)) == handoff


def test_a_datagram_that_is_no_handoff_is_refused():
    with pytest.raises(ValueError):
        unpack(b"X\x00")
