"""Parsing at the edge: what is refused, and why."""

import pytest

from protocols.sip.message import SipParseError, SipRequest, parse_message, response_to
from protocols.sip.stream import StreamFramer

GOOD = (b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1\r\n"
        b"From: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n"
        b"Content-Length: 0\r\n\r\n")


def test_a_good_request_parses():
    message = parse_message(GOOD)
    assert isinstance(message, SipRequest) and message.method == "OPTIONS"


@pytest.mark.parametrize("data, reason", [
    (GOOD[:40], "no blank line"),
    (GOOD.replace(b"Call-ID: c\r\n", b""), "call-id"),
    (GOOD.replace(b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), "does not match"),
    (GOOD.replace(b"CSeq: 1 OPTIONS", b"CSeq: x"), "CSeq"),
    (GOOD.replace(b"Content-Length: 0", b"Content-Length: 50"), "Content-Length says 50"),
    (GOOD.replace(b"Content-Length: 0", b"Content-Length: abc"), "not a number"),
    (GOOD.replace(b"Content-Length: 0", b"Content-Length: -4"), "out of range"),
    (GOOD.replace(b"SIP/2.0\r\nVia", b"SIP/3.0\r\nVia", 1), "SIP/2.0"),
    (GOOD.replace(b"To: <sip:b@x>", b"To: <sip:b@x>" + b"a" * 9000), "longer than"),
    (b"\x00\x01garbage\r\n\r\n", "start line"),
    (GOOD + b"x" * 70_000, "exceeds"),
])
def test_bad_messages_are_refused_with_a_reason(data, reason):
    with pytest.raises(SipParseError) as error:
        parse_message(data)
    assert reason.lower() in error.value.reason.lower()


def test_a_refused_request_keeps_enough_to_answer_400():
    with pytest.raises(SipParseError) as error:
        parse_message(GOOD.replace(b"Call-ID: c\r\n", b""))
    assert error.value.request is not None
    response = response_to(error.value.request, 400, error.value.reason)
    assert bytes(response).startswith(b"SIP/2.0 400 missing mandatory header(s): call-id")


def test_a_response_echoes_the_dialog_headers_and_adds_a_to_tag():
    response = response_to(parse_message(GOOD), 200, to_tag="t9")
    assert response.headers.get_first("to") == "<sip:b@x>;tag=t9"
    assert response.headers.get_first("call-id") == "c"
    assert response.headers.get("via") == ["SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK1"]


def test_the_stream_framer_cuts_by_content_length_in_any_chunking():
    body_message = GOOD.replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 5\r\n\r\nhello")
    stream = b"\r\n" + GOOD + body_message + GOOD
    for size in (1, 7, 64, len(stream)):
        framer, messages = StreamFramer(), []
        for i in range(0, len(stream), size):
            messages += framer.feed(stream[i:i + size])
        assert messages == [GOOD, body_message, GOOD]


def test_the_stream_framer_refuses_what_it_cannot_frame():
    with pytest.raises(SipParseError, match="needs Content-Length"):
        StreamFramer().feed(GOOD.replace(b"Content-Length: 0\r\n", b""))
    with pytest.raises(SipParseError, match="longer than"):
        StreamFramer().feed(b"INVITE " + b"x" * 20_000)


CORPUS = [
    GOOD,
    GOOD.replace(b"Content-Length: 0\r\n\r\n", b"Content-Length: 5\r\n\r\nhelloEXTRA"),
    (b"INVITE sip:bob@x;device=phone SIP/2.0\r\n"
     b"v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/TCP [::1]:5070;branch=z9hG4bKb\r\n"
     b"f: \"Alice, A.\" <sip:alice@x;device=laptop>;tag=9\r\nt: <sip:bob@x>\r\ni: abc@h\r\n"
     b"CSeq: 7 INVITE\r\nm: <sip:alice@10.0.0.1>;expires=60, <sip:alice@10.0.0.2>\r\n"
     b"Record-Route: <sip:p1;lr>, <sip:p2;lr>\r\nRecord-Route: <sip:p3;lr>\r\n"
     b"Proxy-Authorization: Digest username=\"alice\", realm=\"r\", nonce=\"n,1\"\r\n"
     b"l: 0\r\n\r\n"),
    b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nFrom: <sip:a@x>;tag=1\r\n"
    b"To: <sip:b@x>;tag=2\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
]


@pytest.mark.parametrize("data", CORPUS)
def test_our_fast_reader_gives_what_aiosipua_parse_gives(data):
    from aiosipua.message import SipMessage

    ours, theirs = parse_message(data), SipMessage.parse(data)
    assert type(ours) is type(theirs)
    assert list(ours.headers.items()) == list(theirs.headers.items())
    assert ours.body == theirs.body and bytes(ours) == bytes(theirs)


@pytest.mark.parametrize("header", ["Content-Length", "Max-Forwards", "CSeq"])
def test_a_number_too_long_for_python_to_read_is_refused_not_raised(header):
    digits = "9" * 5000
    lines = [line for line in GOOD.split(b"\r\n") if not line.startswith(header.encode())]
    value = f"{digits} OPTIONS" if header == "CSeq" else digits
    data = b"\r\n".join(lines[:2] + [f"{header}: {value}".encode()] + lines[2:])
    with pytest.raises(SipParseError):
        parse_message(data)


def test_the_stream_framer_refuses_two_content_lengths_that_differ():
    two = GOOD.replace(b"Content-Length: 0\r\n", b"Content-Length: 0\r\nContent-Length: 5\r\n")
    with pytest.raises(SipParseError, match="two Content-Length"):
        StreamFramer().feed(two)


@pytest.mark.parametrize("via", [
    "SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-1;rport",
    "SIP/2.0/UDP h:1;Branch=z9hG4bK-a;BRANCH = z9hG4bK-b ;rport=7;received=10.0.0.1",
    "SIP/2.0/TCP h;branch;rport",
    "SIP/2.0/UDP h",
    "SIP/2.0/UDP [2001:db8::1]:5060;received=x;;branch=z9hG4bK-c",
])
def test_a_via_stamped_keeps_the_branch_the_library_reads_in_it(via):
    from protocols.sip.endpoint import Endpoint
    from protocols.sip.message import parse_via, stamp_and_branch, stamp_received

    source = Endpoint("udp", "192.0.2.7", 40000)
    stamped, branch = stamp_and_branch(via, source)
    assert stamped == stamp_received(via, source)
    assert stamped.endswith(";received=192.0.2.7") and stamped.count("received=") == 1
    assert branch == (parse_via(stamped).branch or "")
    assert branch == (parse_via(via).branch or "")
