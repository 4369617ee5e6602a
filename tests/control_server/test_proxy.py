"""The proxy's decisions, without sockets: authentication, authorization, lookup, forking,
response selection, CANCEL, in-dialog routing."""

from __future__ import annotations

import pytest

from control_server.location import Binding
from control_server.proxy import Proxy, ProxyPolicy
from control_server.message_bodies import read_progress
from control_server.sessions import INTERRUPTED_REASON, SessionRecord, SessionRegistry
from protocols.sip.endpoint import Endpoint
from protocols.sip.message import SipRequest, parse_message, response_to
from protocols.sip.effects import Transmit
from protocols.sip.transaction import TransactionLayer
from session_xml import PROGRESS_CONTENT_TYPE, Phase, ProgressReport, build_progress

from .sip_client import answer, build

CALLER = Endpoint("udp", "127.0.0.1", 5072)
ME = Endpoint("udp", "127.0.0.1", 5060)


def bind(location, user, device, port):
    location.put(Binding(user, device, f"sip:{user}@127.0.0.1:{port}",
                         Endpoint("udp", "127.0.0.1", port), "ua", 0.0, 0.0, 9e9, "c", 1))


@pytest.fixture
def proxy(auth, directory, location):
    directory.devices |= {("alice", "laptop"), ("alice", "phone"), ("alice", "tablet"),
                          ("bob", "desk")}
    bind(location, "alice", "phone", 6001)
    bind(location, "alice", "tablet", 6002)
    return Proxy(TransactionLayer(), auth, directory, location, SessionRegistry(), ME,
                 ProxyPolicy(ring_timeout=60.0))


def invite(proxy, *, caller="alice", password=None, target="sip:alice@sipsync;device=phone",
           device="laptop", now=0.0, call_id="call1"):
    """INVITE, answer the 407, INVITE again; returns the effects of the second."""
    password = password or f"{caller}-pw"
    params = f";device={device}"
    first = build("INVITE", target, user=caller, call_id=call_id, from_params=params,
                  to=f"<{target}>")
    txn, _ = proxy.layer.receive_request(first, CALLER, now)
    effects = proxy.invite(txn, now)
    challenge = parse_message(effects[-1].data)
    assert challenge.status_code == 407
    value = challenge.headers.get("proxy-authenticate")[0]
    credentials = answer(value, user=caller, password=password, method="INVITE",
                         uri="sip:127.0.0.1:5060", header="Proxy-Authorization")
    second = build("INVITE", target, user=caller, call_id=call_id, from_params=params,
                   to=f"<{target}>", cseq=2, headers=[credentials])
    txn, _ = proxy.layer.receive_request(second, CALLER, now)
    return txn, proxy.invite(txn, now)


def sent(effects, port=None):
    return [parse_message(e.data) for e in effects
            if isinstance(e, Transmit) and (port is None or e.destination.port == port)]


def test_an_invite_gets_100_at_once_then_407(proxy):
    first = build("INVITE", "sip:alice@sipsync;device=phone", user="alice")
    txn, _ = proxy.layer.receive_request(first, CALLER, 0.0)
    statuses = [m.status_code for m in sent(proxy.invite(txn, 0.0))]
    assert statuses == [100, 407]


def test_an_authenticated_invite_is_forwarded_to_the_device_with_via_and_record_route(proxy):
    _, effects = invite(proxy)
    forwarded = sent(effects, 6001)
    assert len(forwarded) == 1
    request = forwarded[0]
    assert isinstance(request, SipRequest) and request.uri == "sip:alice@127.0.0.1:6001"
    assert request.via[0].port == 5060 and len(request.via) == 2
    assert "received=127.0.0.1" in request.headers.get("via")[1]
    assert request.headers.get_first("record-route") == "<sip:127.0.0.1:5060;transport=udp;lr>"
    assert request.headers.get("proxy-authorization") == []
    assert request.headers.get_first("max-forwards") == "69"


@pytest.mark.parametrize("target, status", [
    ("sip:nobody@sipsync", 403),
    ("sip:alice@sipsync;device=ghost", 404),
    ("sip:alice@sipsync;device=laptop", 480),
    ("sip:bob@sipsync;device=desk", 403),
])
def test_refusals_are_sip_answers_and_land_in_history(proxy, target, status):
    _, effects = invite(proxy, target=target)
    assert sent(effects)[-1].status_code == status
    (record,) = proxy.sessions.take_changes()[-1:]
    assert record.state == "failed" and record.status == status


def test_a_share_lets_another_user_reach_a_device(proxy, directory, location):
    bind(location, "bob", "desk", 6003)
    directory.shares[("bob", "desk")] = {"alice"}
    _, effects = invite(proxy, target="sip:bob@sipsync;device=desk")
    assert len(sent(effects, 6003)) == 1


def test_an_invite_to_a_disabled_device_gets_403_device_disabled(proxy, directory):
    directory.disabled_devices.add(("alice", "phone"))
    _, effects = invite(proxy)
    answer = sent(effects)[-1]
    assert (answer.status_code, answer.reason_phrase) == (403, "Device disabled")
    assert sent(effects, 6001) == []


def test_a_user_invite_skips_disabled_devices(proxy, directory):
    directory.disabled_devices.add(("alice", "phone"))
    _, effects = invite(proxy, target="sip:alice@sipsync")
    assert sent(effects, 6001) == [] and len(sent(effects, 6002)) == 1


def test_a_user_invite_whose_every_online_device_is_disabled_gets_480(proxy, directory):
    directory.disabled_devices |= {("alice", "phone"), ("alice", "tablet")}
    _, effects = invite(proxy, target="sip:alice@sipsync")
    assert sent(effects)[-1].status_code == 480


def test_a_disabled_caller_device_gets_403_and_nothing_is_forwarded(proxy, directory):
    directory.disabled_devices.add(("alice", "laptop"))
    _, effects = invite(proxy)
    answer = sent(effects)[-1]
    assert (answer.status_code, answer.reason_phrase) == (403, "Calling device disabled")
    assert sent(effects, 6001) == []
    (record,) = proxy.sessions.take_changes()[-1:]
    assert record.state == "failed" and record.reason == "Calling device disabled"


def test_a_stranger_is_told_not_allowed_rather_than_that_a_device_is_disabled(
        proxy, directory, location):
    bind(location, "bob", "desk", 6003)
    directory.disabled_devices.add(("bob", "desk"))
    _, effects = invite(proxy, target="sip:bob@sipsync;device=desk")
    assert sent(effects)[-1].reason_phrase == "Not allowed to sync with this device"


def test_a_wrong_password_on_invite_is_challenged_again(proxy):
    first = build("INVITE", "sip:alice@sipsync;device=phone", user="alice")
    txn, _ = proxy.layer.receive_request(first, CALLER, 0.0)
    value = sent(proxy.invite(txn, 0.0))[-1].headers.get("proxy-authenticate")[0]
    creds = answer(value, user="alice", password="bad", method="INVITE", uri="sip:x",
                   header="Proxy-Authorization")
    second = build("INVITE", "sip:alice@sipsync;device=phone", user="alice", cseq=2,
                   headers=[creds])
    txn, _ = proxy.layer.receive_request(second, CALLER, 0.0)
    assert sent(proxy.invite(txn, 0.0))[-1].status_code == 407


def respond(proxy, request, status, now=0.0, tag="calleetag"):
    response = parse_message(bytes(response_to(request, status, to_tag=tag)))
    txn, effects = proxy.layer.receive_response(response, now)
    return effects + proxy.response(txn, response, now)


def test_a_user_uri_forks_to_every_device_and_the_first_200_wins(proxy):
    _, effects = invite(proxy, target="sip:alice@sipsync")
    phone, tablet = sent(effects, 6001)[0], sent(effects, 6002)[0]
    effects = respond(proxy, phone, 200)
    upstream = sent(effects, CALLER.port)
    assert [m.status_code for m in upstream] == [200]
    assert len(upstream[0].via) == 1  # our Via is gone
    cancels = sent(effects, 6002)
    assert [m.method for m in cancels] == ["CANCEL"]
    assert cancels[0].via[0].branch == tablet.via[0].branch
    session = proxy.sessions.get("call1")
    assert session.callee == ("alice", "phone") and session.state.value == "established"


def test_when_every_branch_fails_the_best_answer_goes_back(proxy):
    _, effects = invite(proxy, target="sip:alice@sipsync")
    phone, tablet = sent(effects, 6001)[0], sent(effects, 6002)[0]
    assert sent(respond(proxy, phone, 503), CALLER.port) == []
    upstream = sent(respond(proxy, tablet, 486), CALLER.port)
    assert [m.status_code for m in upstream] == [486]


def test_a_callee_that_refuses_the_offer_gives_the_caller_488(proxy):
    _, effects = invite(proxy)
    assert [m.status_code for m in sent(respond(proxy, sent(effects, 6001)[0], 488), 5072)] == [488]


def test_cancel_stops_the_branches_and_the_caller_gets_487(proxy):
    txn, effects = invite(proxy)
    forwarded = sent(effects, 6001)[0]
    cancel = build("CANCEL", "sip:alice@sipsync;device=phone", user="alice", cseq=2)
    cancel.headers.set_single("Via", txn.request.headers.get("via")[0])
    effects = proxy.cancel(cancel, CALLER, 0.0)
    assert sent(effects, 5072)[0].status_code == 200
    assert sent(effects, 6001)[0].method == "CANCEL"
    upstream = sent(respond(proxy, forwarded, 487), 5072)
    assert [m.status_code for m in upstream] == [487]


def test_a_device_that_never_answers_gives_408_after_the_ring_timeout(proxy):
    _, effects = invite(proxy)
    forwarded = sent(effects, 6001)[0]
    respond(proxy, forwarded, 180)
    assert proxy.next_deadline() == 60.0
    effects = proxy.expire(61.0)
    assert [m.status_code for m in sent(effects, 5072)] == [408]
    assert sent(effects, 6001)[0].method == "CANCEL"


def test_bye_follows_the_dialog_and_its_200_files_the_session(proxy):
    _, effects = invite(proxy)
    respond(proxy, sent(effects, 6001)[0], 200)
    bye = build("BYE", "sip:alice@127.0.0.1:6001", user="alice", cseq=3, call_id="call1",
                to="<sip:alice@sipsync>;tag=calleetag",
                headers=["Route: <sip:127.0.0.1:5060;transport=udp;lr>"])
    txn, _ = proxy.layer.receive_request(bye, CALLER, 1.0)
    forwarded = sent(proxy.in_dialog(txn, 1.0), 6001)[0]
    assert forwarded.method == "BYE" and forwarded.headers.get("route") == []
    upstream = sent(respond(proxy, forwarded, 200, now=2.0), 5072)
    assert [m.status_code for m in upstream] == [200]
    assert proxy.sessions.get("call1") is None
    record = proxy.sessions.take_changes()[-1]
    assert record.state == "ended" and record.duration == 2.0


def test_a_request_in_an_unknown_dialog_gets_481(proxy):
    bye = build("BYE", "sip:x@y", user="alice", call_id="nope", to="<sip:a@b>;tag=z")
    txn, _ = proxy.layer.receive_request(bye, CALLER, 0.0)
    assert sent(proxy.in_dialog(txn, 0.0))[0].status_code == 481


def test_an_ack_that_does_not_name_the_dialog_is_not_forwarded(proxy):
    _, effects = invite(proxy)
    respond(proxy, sent(effects, 6001)[0], 200)
    stray = build("ACK", "sip:alice@sipsync;device=phone", user="alice", cseq=1,
                  call_id="call1", to="<sip:alice@sipsync>;tag=our407tag")
    assert proxy.ack(stray, CALLER, 1.0) == []
    ack = build("ACK", "sip:alice@127.0.0.1:6001", user="alice", cseq=2, call_id="call1",
                to="<sip:alice@sipsync>;tag=calleetag")
    assert [m.method for m in sent(proxy.ack(ack, CALLER, 1.0), 6001)] == ["ACK"]


def test_a_plain_phone_calling_its_own_user_rings_the_other_devices_not_itself(proxy, location):
    from control_server.device_names import unnamed_device
    from protocols.sip.message import parse_uri

    own = unnamed_device("<sip:alice@127.0.0.1:6003>", parse_uri("sip:alice@127.0.0.1:6003"))
    bind(location, "alice", own, 6003)
    contact = "Contact: <sip:alice@127.0.0.1:6003>"
    first = build("INVITE", "sip:alice@sipsync", user="alice", headers=[contact])
    txn, _ = proxy.layer.receive_request(first, CALLER, 0.0)
    value = parse_message(proxy.invite(txn, 0.0)[-1].data).headers.get("proxy-authenticate")[0]
    credentials = answer(value, user="alice", password="alice-pw", method="INVITE",
                         uri="sip:127.0.0.1:5060", header="Proxy-Authorization")
    second = build("INVITE", "sip:alice@sipsync", user="alice", cseq=2,
                   headers=[contact, credentials])
    txn, _ = proxy.layer.receive_request(second, CALLER, 0.0)
    effects = proxy.invite(txn, 0.0)
    rung = {e.destination.port for e in effects
            if isinstance(e, Transmit) and e.destination.port != CALLER.port}
    assert rung == {6001, 6002}
    assert txn.context.session.caller == ("alice", own)


@pytest.fixture
def restarted(auth, directory, location):
    """A proxy just restarted, reading progress reports, with one session the previous run of the
    server left open (now filed as failed)."""
    proxy = Proxy(TransactionLayer(), auth, directory, location, SessionRegistry(), ME,
                  read_progress=read_progress)
    record = SessionRecord("late1", "alice/laptop", "alice/phone", "files", "rsync", "photos",
                           "failed", 200, INTERRUPTED_REASON, 10.0, 11.0, 50.0,
                           {"phase": "delta", "bytes": 41, "bytes_total": 311})
    proxy.sessions.interrupted_by_restart([record], 50.0)
    return proxy


def _late(proxy, method, now, *, cseq=9, call_id="late1", user="alice", body=b"", headers=()):
    request = build(method, "sip:alice@127.0.0.1:6001", user=user, call_id=call_id, cseq=cseq,
                    to="<sip:alice@sipsync>;tag=calleetag", body=body,
                    headers=[*headers, f"Content-Type: {PROGRESS_CONTENT_TYPE}"] if body else headers)
    txn, _ = proxy.layer.receive_request(request, CALLER, now)
    return sent(proxy.in_dialog(txn, now))


def test_a_session_cut_off_by_a_restart_is_filed_as_its_caller_reports_it_late(restarted):
    proxy = restarted
    done = build_progress(ProgressReport("late1", Phase.DONE, 311, 311))
    earlier = build_progress(ProgressReport("late1", Phase.DELTA, 200, 311))
    # Its BYE may come before its last progress report, and an earlier report retransmitted
    # after it: the report of the highest CSeq is what the history keeps.
    assert [m.status_code for m in _late(proxy, "BYE", 60.0, cseq=12)] == [200]
    assert [m.status_code for m in _late(proxy, "INFO", 61.0, cseq=11, body=done)] == [200]
    assert [m.status_code for m in _late(proxy, "INFO", 62.0, cseq=10, body=earlier)] == [200]
    first, second = proxy.sessions.take_changes()
    assert first.state == "ended" and first.reason.startswith("ended by BYE")
    assert second.state == "ended" and second.progress["bytes"] == 311 and second.ended_at == 60.0


def test_a_late_bye_with_a_reason_files_the_failure_the_devices_saw(restarted):
    proxy = restarted
    _late(proxy, "BYE", 60.0, headers=['Reason: SIP;cause=500;text="transfer: disk full"'])
    (record,) = proxy.sessions.take_changes()
    assert record.state == "failed" and record.reason == "transfer: disk full"


def test_late_reports_from_strangers_or_after_an_hour_get_481_and_change_nothing(restarted):
    proxy = restarted
    assert [m.status_code for m in _late(proxy, "BYE", 60.0, user="mallory")] == [481]
    assert [m.status_code for m in _late(proxy, "BYE", 50.0 + 3601.0)] == [481]
    assert proxy.sessions.take_changes() == []
