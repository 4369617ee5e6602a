"""The shared state of a server made of several workers, without sockets: who owns a message,
which worker holds a TCP flow, the throttle's counts across workers, and the feed's events on
the wire."""

from __future__ import annotations

from control_server.cluster_bridge import outward
from control_server.cluster_feed import (AuthFailed, BanStarted, BindingDown, BindingUp,
                                         DirectoryChanged, NodeReport, ServerRejoined,
                                         SessionUpdate, SubscriptionsOrphaned, decode, encode)
from control_server.location import Binding
from control_server.metrics import ServerCounts
from control_server.sessions import SessionRecord
from control_server.shared_state import (FlowTable, Membership, SharedThrottle, call_id_of,
                                         flows_lost_with, owner_of)
from control_server.throttle import BanKind, ThrottlePolicy
from protocols.sip.endpoint import Endpoint

REGISTER = (b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n"
            b"From: <sip:ann@x>;tag=1\r\nTo: <sip:ann@x>\r\nCall-ID: abc@host\r\n"
            b"CSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")
POLICY = ThrottlePolicy(ban_after=10, slow_after=3, window=60.0, ban_seconds=300.0,
                        flood_requests=100, flood_window=5.0)


def binding(device: str, node: str, transport: str = "udp", port: int = 5070) -> Binding:
    return Binding("ann", device, f"sip:ann@127.0.0.1:{port}", Endpoint(transport, "127.0.0.1", port),
                   "phone", 1.0, 1.0, 61.0, "c1", 1, node=node)


def test_the_call_id_is_read_from_the_raw_message_in_long_or_compact_form():
    assert call_id_of(REGISTER) == b"abc@host"
    assert call_id_of(REGISTER.replace(b"Call-ID:", b"i:")) == b"abc@host"
    assert call_id_of(REGISTER.replace(b"Call-ID:", b"cALL-iD :")) == b"abc@host"


def test_a_call_id_in_the_body_does_not_count():
    headless = REGISTER.replace(b"Call-ID: abc@host\r\n", b"")
    assert call_id_of(headless + b"Call-ID: body@x\r\n") is None


def test_every_worker_agrees_on_the_owner_and_the_owners_spread():
    owners = [owner_of(f"call-{n}".encode(), 4) for n in range(1000)]
    assert owners == [owner_of(f"call-{n}".encode(), 4) for n in range(1000)]
    assert all(owners.count(i) > 150 for i in range(4))
    me = Membership(index=owners[0], count=4, incarnation=7)
    assert me.owns("call-0") and me.node == f"w{owners[0]}"


def test_the_flow_table_names_the_worker_holding_a_tcp_connection_but_never_udp():
    flows = FlowTable("w0")
    tcp, udp = Endpoint("tcp", "127.0.0.1", 5070), Endpoint("udp", "127.0.0.1", 5070)
    flows.learn(tcp, "w1")
    flows.learn(udp, "w1")
    assert flows.holder(tcp) == "w1" and flows.holder(udp) is None
    flows.learn(tcp, "w0")  # it reconnected to us
    assert flows.holder(tcp) is None
    flows.learn(tcp, "w1")
    flows.forget_node("w1")
    assert flows.holder(tcp) is None


def test_a_stopped_worker_takes_only_its_tcp_devices_with_it():
    kept, lost, other = binding("a", "w1"), binding("b", "w1", "tcp"), binding("c", "w0", "tcp")
    assert flows_lost_with([kept, lost, other], "w1") == [lost]


class Workers:
    """Throttles of several workers joined as the feed joins them: each publishes, the
    others apply."""

    def __init__(self, count: int) -> None:
        self.throttles: list[SharedThrottle] = []
        for index in range(count):
            self.throttles.append(SharedThrottle(POLICY, self._relay(index), f"w{index}"))

    def _relay(self, index: int):
        def publish(event) -> None:
            for other, throttle in enumerate(self.throttles):
                if other != index:
                    throttle.apply(decode(encode(event)))
        return publish


def test_guesses_spread_over_two_workers_are_banned_at_the_same_count_as_on_one():
    workers = Workers(2)
    for n in range(9):
        assert not workers.throttles[n % 2].failed("192.0.2.66", "ann", float(n) / 10).silent
    assert workers.throttles[1].failed("192.0.2.66", "ann", 0.9).silent  # the tenth guess
    for throttle in workers.throttles:
        assert not throttle.arrival("192.0.2.66", 1.0)  # banned at both
    # Announced once, by the worker that saw the tenth guess.
    assert workers.throttles[0].take_new_bans(1.0) == []
    assert {b.kind for b in workers.throttles[1].take_new_bans(1.0)} == {BanKind.ADDRESS,
                                                                         BanKind.USER}
    assert workers.throttles[0].take_new_bans(60.0) == []  # not later either


def test_a_ban_two_crossing_failures_complete_is_announced_once_all_the_same():
    outboxes: list[list] = [[], []]
    throttles = [SharedThrottle(POLICY, outboxes[i].append, f"w{i}") for i in (0, 1)]

    def deliver() -> None:
        for index, outbox in enumerate(outboxes):
            while outbox:
                throttles[1 - index].apply(decode(encode(outbox.pop(0))))

    for n in range(8):
        throttles[n % 2].failed("192.0.2.66", "ann", n / 10)
        deliver()
    # The ninth and tenth guesses each reach a worker before the other's failure does.
    throttles[0].failed("192.0.2.66", "ann", 0.8)
    throttles[1].failed("192.0.2.66", "ann", 0.9)
    deliver()
    assert all(not t.arrival("192.0.2.66", 1.0) for t in throttles)  # banned at both
    assert [t.take_new_bans(1.0) for t in throttles] == [[], []]  # nobody's own failure did it
    announced = throttles[0].take_new_bans(1.2)  # the first in line
    assert {b.kind for b in announced} == {BanKind.ADDRESS, BanKind.USER}
    deliver()
    assert throttles[1].take_new_bans(2.0) == []  # told in time, the second stays quiet


def test_a_flood_counts_the_requests_every_worker_saw():
    workers = Workers(2)
    first, second = workers.throttles
    for n in range(60):
        assert first.arrival("192.0.2.9", n * 0.01)
    second.apply(first.take_arrivals(0.6))
    allowed = [second.arrival("192.0.2.9", 0.6 + n * 0.01) for n in range(60)]
    assert allowed.count(True) == 40  # the limit is 100 for both together
    assert not first.arrival("192.0.2.9", 1.5)  # the ban the second started reached the first


def test_a_ban_heard_from_another_worker_is_installed_but_not_announced_again():
    throttle = SharedThrottle(POLICY, lambda event: None, "w1")
    other = SharedThrottle(POLICY, lambda event: throttle.apply(event), "w0")
    for n in range(10):
        other.failed("198.51.100.1", f"user{n}", n * 0.1)  # ten users, one address
    assert not throttle.arrival("198.51.100.1", 2.0)
    assert throttle.take_new_bans(60.0) == []


def test_the_feed_events_survive_the_wire():
    record = SessionRecord("c1", "ann/laptop", "ann/phone", "files", "rsync", "photos",
                           "established", 200, "", 1.0, 2.0, None, {"done": 3})
    events = [
        BindingUp(binding("laptop", "w1", "tcp"), new_device=True),
        BindingDown("ann", "laptop", "w1", "device unregistered", 3.0),
        AuthFailed("192.0.2.66", "ann", 4.0),
        SessionUpdate(record, "w0"),
        NodeReport("w1", ServerCounts({"received": 3}, {"REGISTER": 2}, 1, 0, 0, 0),
                   {"bans": {"user": 1}}),
        SubscriptionsOrphaned((("s1", '{"call_id": "c"}'), ("s2", "{}"))),
        ServerRejoined("server1"),
    ]
    assert [decode(encode(event)) for event in events] == events
    ban = SharedThrottle(POLICY, lambda e: None)
    ban._ban(ban.banned_users, BanKind.USER, "ann", 10, 5.0)
    assert decode(encode(BanStarted(ban.banned_users["ann"]))).ban.kind is BanKind.USER


def test_a_workers_events_reach_the_other_servers_under_the_servers_name():
    record = SessionRecord("c1", "ann/laptop", "ann/phone", "files", "rsync", "photos",
                           "established", 200, "", 1.0, 2.0, None)
    up = outward(BindingUp(binding("laptop", "w1", "tcp"), new_device=True), "server1")
    assert (up.binding.node, up.new_device, up.binding.device) == ("server1", True, "laptop")
    down = outward(BindingDown("ann", "laptop", "w1", "device unregistered", 3.0), "server1")
    assert down == BindingDown("ann", "laptop", "server1", "device unregistered", 3.0)
    assert outward(SessionUpdate(record, "w0"), "server1") == SessionUpdate(record, "server1")
    failed = AuthFailed("192.0.2.66", "ann", 4.0)
    assert outward(failed, "server1") is failed  # no node in it
    # A worker's counters and an admin's reload stay inside the server.
    assert outward(DirectoryChanged(5.0), "server1") is None
    assert outward(NodeReport("w0", ServerCounts({}, {}, 0, 0, 0, 0)), "server1") is None


def test_another_servers_flow_is_never_carried_to_a_worker():
    flows = FlowTable("w0")
    tcp = Endpoint("tcp", "127.0.0.1", 5070)
    flows.learn(tcp, "server2")
    assert flows.holder(tcp) is None  # sent on our own
