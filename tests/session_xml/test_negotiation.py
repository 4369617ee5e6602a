import dataclasses
import ipaddress

import pytest

from session_xml import (
    DataType,
    InvalidValue,
    NegotiationError,
    Role,
    SyncProtocol,
    check_answer,
    negotiate,
)
from tests.session_xml.examples import ANSWER, CALLEE_FINGERPRINT, CALLEE_TOKEN, OFFER, an_offer

SYNCML, RSYNC = SyncProtocol.SYNCML, SyncProtocol.RSYNC
CALLEE = {"address": "2001:db8::7", "port": 45001, "fingerprint": CALLEE_FINGERPRINT, "token": CALLEE_TOKEN}


def answer(offer, supported):
    return negotiate(offer, supported, **CALLEE)


@pytest.mark.parametrize(
    ("offered", "accepted", "chosen"),
    [
        ((SYNCML,), (SYNCML,), SYNCML),
        ((SYNCML, RSYNC), (SYNCML, RSYNC), SYNCML),
        ((RSYNC, SYNCML), (SYNCML, RSYNC), RSYNC),
        ((SYNCML, RSYNC), (RSYNC,), RSYNC),
        ((RSYNC, SYNCML), (SYNCML,), SYNCML),
    ],
)
def test_the_first_offered_protocol_the_callee_accepts_is_chosen(offered, accepted, chosen):
    offer = an_offer(sync_protocols=offered)
    assert answer(offer, {DataType.CONTACTS: accepted}).sync_protocols == (chosen,)


def test_the_answer_carries_the_callees_endpoint_fingerprint_and_token_and_the_rest_of_the_offer():
    result = answer(OFFER, {DataType.CONTACTS: (SYNCML,)})
    assert result.role is Role.ANSWER
    assert result.destination_ip == ipaddress.ip_address("2001:db8::7")
    assert result.destination_port == 45001
    assert result.fingerprint == CALLEE_FINGERPRINT
    assert result.token == CALLEE_TOKEN
    assert result == ANSWER
    unchanged = ("session_id", "source_device", "destination_device", "data_type", "dataset", "direction",
                 "sync_mode", "source_ip", "source_port")  # fmt: skip
    for field in unchanged:
        assert getattr(result, field) == getattr(OFFER, field), field


@pytest.mark.parametrize(
    ("offer", "supported", "reason"),
    [
        (an_offer(sync_protocols=(SYNCML,)), {DataType.CONTACTS: (RSYNC,)},
         "no common protocol for contacts: offered syncml, this device accepts rsync"),
        (an_offer(sync_protocols=(RSYNC, SYNCML)), {DataType.CONTACTS: ()},
         "this device does not sync contacts"),
        (an_offer(data_type=DataType.SMS), {DataType.CONTACTS: (SYNCML,), DataType.FILES: (RSYNC,)},
         "this device does not sync sms"),
        (an_offer(), {}, "this device does not sync contacts"),
        (ANSWER, {DataType.CONTACTS: (SYNCML,)}, "expected an offer, got an answer"),
    ],
    ids=["no-overlap", "nothing-for-the-type", "unknown-data-type", "supports-nothing", "not-an-offer"],
)  # fmt: skip
def test_an_offer_with_nothing_acceptable_is_refused_with_488_and_a_reason(offer, supported, reason):
    with pytest.raises(NegotiationError) as refused:
        answer(offer, supported)
    assert refused.value.sip_status == 488
    assert refused.value.reason == reason


def test_an_answer_with_a_bad_callee_address_is_refused():
    with pytest.raises(InvalidValue, match="destinationIP"):
        negotiate(OFFER, {DataType.CONTACTS: (SYNCML,)}, **{**CALLEE, "address": "0.0.0.0"})


def test_the_caller_accepts_an_answer_to_its_offer():
    check_answer(OFFER, ANSWER)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"sync_protocols": (RSYNC,)}, None),
        ({"session_id": "other-session"}, "session_id"),
        ({"dataset": "calendar"}, "dataset"),
        ({"data_type": DataType.NOTES}, "data_type"),
    ],
)
def test_the_caller_refuses_an_answer_that_does_not_match_its_offer(changes, reason):
    offer = an_offer(sync_protocols=(SYNCML,))
    with pytest.raises(NegotiationError, match=reason or "rsync, which was not offered"):
        check_answer(offer, dataclasses.replace(ANSWER, **changes))


def test_the_caller_refuses_an_offer_in_place_of_an_answer():
    with pytest.raises(NegotiationError):
        check_answer(OFFER, OFFER)
