"""The expiry a peer reads from the registrar's 200: a value that is not ASCII digits is ignored
(the asked expiry stays), never a crash of the registration loop."""

import pytest

from peer.registration import _granted
from protocols.sip.message import SipResponse


def _ok(contact: str, expires: str | None = None) -> SipResponse:
    response = SipResponse(status_code=200, reason_phrase="OK")
    response.headers.append("contact", contact)
    if expires is not None:
        response.headers.append("expires", expires)
    return response


def test_the_expiry_granted_to_our_contact_is_used():
    assert _granted(_ok("<sip:alice@10.0.0.1>;expires=30"), 60, "alice@10.0.0.1") == 30


@pytest.mark.parametrize("value", ["\u00b2", "3\u00b2", "\u2460"])
def test_an_expiry_that_is_no_number_leaves_the_asked_one(value):
    assert _granted(_ok(f"<sip:alice@10.0.0.1>;expires={value}"), 60, "alice@10.0.0.1") == 60
    assert _granted(_ok("<sip:bob@10.0.0.9>", expires=value), 60, "alice@10.0.0.1") == 60
