"""The parser against the RFC 4475 torture messages: every valid one is read as aiosipua reads
it, every invalid one is refused with the answer the RFC asks for."""

from __future__ import annotations

import pytest
from aiosipua.message import SipMessage

from protocols.sip.message import SipParseError, SipRequest, parse_message, response_to

from .rfc4475 import INVALID, VALID, message


@pytest.mark.parametrize("name", sorted(VALID))
def test_a_valid_torture_message_parses_as_aiosipua_reads_it(name):
    data = message(name)
    ours, theirs = parse_message(data), SipMessage.parse(data)
    assert type(ours) is type(theirs)
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.body == theirs.body


@pytest.mark.parametrize("name", sorted(INVALID))
def test_an_invalid_torture_message_is_refused_with_the_answer_the_rfc_asks(name):
    with pytest.raises(SipParseError) as error:
        parse_message(message(name))
    if INVALID[name] is None:
        assert error.value.request is None  # a response: never answered
    else:
        assert error.value.request is not None and error.value.status == INVALID[name]


def test_a_method_may_begin_with_any_token_character():
    request = parse_message(message("intmeth"))
    assert isinstance(request, SipRequest)
    assert request.method == "!interesting-Method0123456789_*+`.%indeed'~"


def test_the_answer_to_repeated_single_headers_echoes_each_once():
    with pytest.raises(SipParseError) as error:
        parse_message(message("multi01"))
    assert "appear twice" in error.value.reason
    answer = parse_message(bytes(response_to(error.value.request, 400, error.value.reason)))
    for name in ("from", "to", "call-id", "cseq"):
        assert len(answer.headers.get(name)) == 1, name


def test_the_answer_to_extraneous_separators_holds_no_empty_via():
    with pytest.raises(SipParseError) as error:
        parse_message(message("badinv01"))
    answer = bytes(response_to(error.value.request, 400, error.value.reason))
    assert b"\r\nVia: \r\n" not in answer and answer.count(b"\r\nVia: ") == 2


def test_trailing_octets_after_content_length_in_a_datagram_are_ignored():
    request = parse_message(message("dblreq"))
    assert request.method == "REGISTER" and request.body == b""


def test_a_cseq_of_2_to_the_31_is_refused_and_one_below_is_not():
    base = message("lwsdisp")
    below = base.replace(b"CSeq: 60 OPTIONS", b"CSeq: 2147483647 OPTIONS")
    assert parse_message(below).cseq.seq == 2**31 - 1
    with pytest.raises(SipParseError, match="2\\*\\*31"):
        parse_message(base.replace(b"CSeq: 60 OPTIONS", b"CSeq: 2147483648 OPTIONS"))

