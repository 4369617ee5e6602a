"""reginfo bodies (RFC 3680): what the server builds, a device reads back, and hostile ones refused."""

import pytest

from protocols.sip.reginfo import ContactEvent, DeviceState, RegInfo, RegInfoError, build, parse

PHONE = DeviceState("alice", "phone", online=True, event=ContactEvent.REGISTERED,
                    contact="sip:alice@127.0.0.1:5071;device=phone", expires=58,
                    online_since=1_700_000_000.5, last_seen=1_700_000_050.25,
                    user_agent="sipsync-peer/0.1")
TABLET = DeviceState("bob", "tablet", online=False, event=ContactEvent.REJECTED,
                     last_seen=1_700_000_010.0, reason="disabled by an admin")


def test_a_body_round_trips_with_every_field():
    info = RegInfo(7, True, (PHONE, TABLET))
    assert parse(build(info, "sipsync")) == info


def test_the_body_is_plain_rfc_3680_for_other_clients():
    text = build(RegInfo(0, False, (PHONE,)), "example.org").decode()
    assert 'xmlns="urn:ietf:params:xml:ns:reginfo"' in text
    assert '<registration aor="sip:alice@example.org" id="alice" state="active">' in text
    assert 'state="active" event="registered" expires="58"' in text
    assert "<uri>sip:alice@127.0.0.1:5071;device=phone</uri>" in text


@pytest.mark.parametrize("body, reason", [
    (b"<reginfo xmlns='urn:ietf:params:xml:ns:reginfo' version='1' state='full'>", "well-formed"),
    (b"<other xmlns='urn:ietf:params:xml:ns:reginfo'/>", "expected <reginfo>"),
    (b"<reginfo xmlns='urn:ietf:params:xml:ns:reginfo' version='x' state='full'/>", "version"),
    (b"<reginfo xmlns='urn:ietf:params:xml:ns:reginfo' version='1' state='some'/>", "state"),
    (b"<!DOCTYPE r [<!ENTITY a 'b'>]><reginfo/>", "DTD"),
    (b"<reginfo xmlns='urn:ietf:params:xml:ns:reginfo' version='1' state='full'>"
     b"<registration aor='sip:a@x' id='a' state='active'><contact id='a/p' state='on' "
     b"event='registered'><uri>sip:a@x</uri></contact></registration></reginfo>", "contact state"),
    (b"<reginfo xmlns='urn:ietf:params:xml:ns:reginfo' version='1' state='full'>"
     b"<registration aor='sip:a@x' id='a' state='active'><contact id='a' state='active' "
     b"event='registered'><uri>sip:a@x</uri></contact></registration></reginfo>", "names no device"),
    (b"\xff\xfe<", "UTF-8"),
    (b"<a>" * 50 + b"</a>" * 50, "nested"),
])
def test_a_hostile_or_broken_body_is_refused_with_its_reason(body, reason):
    with pytest.raises(RegInfoError, match=reason):
        parse(body)


def test_a_huge_body_is_refused_before_parsing():
    with pytest.raises(RegInfoError, match="limit"):
        parse(b"<reginfo>" + b" " * 300_000 + b"</reginfo>")
