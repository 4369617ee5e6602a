"""The lean REGISTER scanner against the wrapped SIP library's parser, the reference: on every
message both read, they agree on each field the registrar uses, and the answers written from
the scanner's reading are the bytes the general writer makes; whatever the general path would
refuse or treat otherwise, the scanner leaves to it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from control_server.inspection import inspect
from protocols.sip.endpoint import Endpoint
from protocols.sip.message import SipParseError, SipRequest, note_source, parse_message, response_to
from protocols.sip.register_answer import Reply, write_reply
from protocols.sip.register_head import head_of
from protocols.sip.register_scan import scan_register

from .rfc4475 import TORTURE

UDP = Endpoint("udp", "192.0.2.7", 5071)
TCP = Endpoint("tcp", "192.0.2.7", 40312)
AUTHORIZATION = (
    'Digest username="user7",realm="sipsync.test",cnonce="6b8b4567",nc=00000001,qop=auth,'
    'uri="sip:127.0.0.1:5070",nonce="0123abcd",response="0f1e2d3c4b5a69788796a5b4c3d2e1f0",'
    "algorithm=MD5"
)

# The shapes devices send: sipp's anchor scenario (both steps), sipsync-peer's, baresip's.
SIPP = (
    "REGISTER sip:127.0.0.1:5070 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-4711-1-0;rport\r\n"
    "Max-Forwards: 70\r\n"
    "From: <sip:user7@127.0.0.1>;tag=4711R1\r\n"
    "To: <sip:user7@127.0.0.1>\r\n"
    "Call-ID: 1-4711@127.0.0.1\r\n"
    "CSeq: 1 REGISTER\r\n"
    "Contact: <sip:user7@127.0.0.1:5071;transport=UDP>\r\n"
    "{authorization}"
    "Expires: 60\r\n"
    "User-Agent: sipp-bench\r\n"
    "Content-Length: 0\r\n\r\n"
)
PEER = (
    "REGISTER sip:sipsync.test SIP/2.0\r\n"
    "Via: SIP/2.0/TCP 127.0.0.1:40312;branch=z9hG4bK5a9e0c1d2b3f4a5e;rport\r\n"
    "From: <sip:alice@sipsync.test;device=laptop>;tag=9f8e7d6c\r\n"
    "To: <sip:alice@sipsync.test;device=laptop>\r\n"
    "Call-ID: 3c2b1a09f8e7d6c5@127.0.0.1\r\n"
    "CSeq: 2 REGISTER\r\n"
    'Contact: <sip:alice@127.0.0.1:40312;transport=tcp>;+sip.instance="<urn:sipsync:device:laptop>"\r\n'
    "Max-Forwards: 70\r\n"
    "User-Agent: sipsync-peer/0.1\r\n"
    "Expires: 300\r\n"
    "{authorization}"
    "Content-Length: 0\r\n\r\n"
)
BARESIP = (
    "REGISTER sip:127.0.0.1 SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:37645;branch=z9hG4bK1f2e3d4c5b6a;rport\r\n"
    "Contact: <sip:bob-0x55d0@127.0.0.1:37645;transport=udp>;expires=3600\r\n"
    "Max-Forwards: 70\r\n"
    "To: <sip:bob@127.0.0.1>\r\n"
    "From: <sip:bob@127.0.0.1>;tag=77aa88bb\r\n"
    "Call-ID: 6d5c4b3a29180716\r\n"
    "CSeq: 28310 REGISTER\r\n"
    "User-Agent: baresip v1.0.0 (x86_64/linux)\r\n"
    "Allow: INVITE,ACK,BYE,CANCEL,OPTIONS,NOTIFY,SUBSCRIBE,INFO,MESSAGE,UPDATE\r\n"
    "Supported: replaces,norefersub,100rel\r\n"
    "{authorization}"
    "Content-Length: 0\r\n\r\n"
)
SHAPES = {"sipp": SIPP, "peer": PEER, "baresip": BARESIP}


def shaped(template: str, authorized: bool) -> bytes:
    line = f"Authorization: {AUTHORIZATION}\r\n" if authorized else ""
    return template.format(authorization=line).encode()


def variants(data: bytes) -> list[bytes]:
    """The message, and the same with changes a device or an attacker may make: some the
    general path reads alike, some it refuses or answers otherwise."""
    text = data.decode("latin-1")
    head, _, body = text.partition("\r\n\r\n")
    lines = head.split("\r\n")

    def joined(new_lines: list[str], tail: str = body) -> bytes:
        return ("\r\n".join(new_lines) + "\r\n\r\n" + tail).encode("latin-1")

    out = [data]
    compact = {"Via": "v", "From": "f", "To": "t", "Call-ID": "i", "Contact": "m",
               "Content-Length": "l"}
    out.append(joined([lines[0]] + [_renamed(line, compact) for line in lines[1:]]))
    out.append(joined([lines[0]] + [_cased(line, str.lower) for line in lines[1:]]))
    out.append(joined([lines[0]] + [_cased(line, str.upper) for line in lines[1:]]))
    out.append(joined([lines[0]] + [re.sub(r"^([^:]+):\s*", r"\1 :   ", line)
                                    for line in lines[1:]]))
    for extra in ("Require: gruu", "Proxy-Require: foo", "Supported: path", "X-Anything: 1",
                  "Content-Type: application/sdp", "Expires: 30", "Via: SIP/2.0/UDP 10.0.0.1",
                  "Contact: <sip:other@10.0.0.9>", "Authorization: Digest username=\"x\"",
                  "no colon here", "Max-Forwards: 300", "Max-Forwards: 1",
                  "User-Agent: a, b", "Call-ID: again"):
        out.append(joined(lines[:2] + [extra] + lines[2:]))
    for index in range(1, len(lines)):
        out.append(joined(lines[:index] + lines[index + 1:]))  # each header missing in turn
        name, _, value = lines[index].partition(":")
        out.append(joined(lines[:index] + [f"{name}:"] + lines[index + 1:]))  # empty value
        out.append(joined(lines[:index] + [f"{name}: {value.strip()}", " folded"]
                          + lines[index + 1:]))
        out.append(joined(lines[:index] + [f"{name}: {value.strip()}, <sip:x@y>"]
                          + lines[index + 1:]))
    start = lines[0]
    for other in (start.replace("SIP/2.0", "sip/2.0"), start.replace("SIP/2.0", "SIP/3.0"),
                  start.replace(" sip:", " tel:"), start.replace(" sip:", " SIP:"),
                  start.replace(" ", "  ", 1), start.replace("REGISTER", "OPTIONS"),
                  start + " "):
        out.append(joined([other] + lines[1:]))
    out.append(joined(lines, "v=0\r\n"))
    out.append(joined([line if not line.lower().startswith(("content-length", "l:"))
                       else "Content-Length: 5" for line in lines], "12"))
    out.append(joined([line if not line.lower().startswith(("content-length", "l:"))
                       else "Content-Length: x" for line in lines]))
    out.append(joined([line if not line.lower().startswith("cseq")
                       else "CSeq: 1 INVITE" for line in lines]))
    out.append(joined([line if not line.lower().startswith("cseq")
                       else "CSeq: 99999999999 REGISTER" for line in lines]))
    out.append(joined([line if not line.lower().startswith("via")
                       else line + ";branch=second;received=203.0.113.1" for line in lines]))
    out.append(joined([line if not line.lower().startswith("to")
                       else line + ";tag=already" for line in lines]))
    out.append(joined([line if not line.lower().startswith("to")
                       else "To: <tel:+15551234>" for line in lines]))
    out.append(joined([line if not line.lower().startswith("contact")
                       else "Contact: *" for line in lines]))
    out.append(joined([line if not line.lower().startswith("from")
                       else 'From: "Zoë" <sip:zoe@x>;tag=1' for line in lines]))
    out.append(data.replace(b"\r\n", b"\n", 1))
    out.append(data.replace(b"\r\n\r\n", b"\r\n"))
    return out


def _renamed(line: str, names: dict[str, str]) -> str:
    name, colon, value = line.partition(":")
    return f"{names.get(name, name)}{colon}{value}"


def _cased(line: str, case) -> str:
    name, colon, value = line.partition(":")
    return f"{case(name)}{colon}{value}"


def corpus() -> list[tuple[str, bytes]]:
    messages = []
    for name, template in SHAPES.items():
        for authorized in (False, True):
            for index, data in enumerate(variants(shaped(template, authorized))):
                messages.append((f"{name}-{'auth' if authorized else 'first'}-{index}", data))
    for path in sorted(TORTURE.glob("*.dat")):
        messages.append((f"torture-{path.stem}", path.read_bytes()))
    fuzz = Path(__file__).parents[1] / "fuzz_corpus"
    for folder in ("sip-datagram", "sip-stream"):
        for path in sorted((fuzz / folder).glob("*.bin")):
            messages.append((f"{folder}-{path.stem}", path.read_bytes()[1:]))
    return messages


CORPUS = corpus()


def general_reading(data: bytes, source: Endpoint) -> SipRequest | None:
    """What the general path reads and takes to the registrar, or None when it answers
    otherwise (a parse error, another method, a 416 or a 420)."""
    try:
        message = parse_message(data, stream=source.reliable)
    except SipParseError:
        return None
    if not isinstance(message, SipRequest) or message.method != "REGISTER":
        return None
    note_source(message, source)
    if inspect(message, answered_here=True) is not None:
        return None
    return message


REPLIES = [
    Reply(401, to_tag="a1b2c3", headers=(
        ("WWW-Authenticate", 'Digest realm="sipsync.test", nonce="n1", qop="auth", algorithm=MD5'),
        ("WWW-Authenticate", 'Digest realm="sipsync.test", nonce="n1", qop="auth", '
                             "algorithm=SHA-256"))),
    Reply(200, to_tag="d4e5f6", headers=(("Contact", "<sip:a@h:1>;expires=60"),
                                         ("Contact", "<sip:a@h:2>;expires=30"))),
    Reply(423, to_tag="0a0b0c", headers=(("Min-Expires", "20"),)),
    Reply(400, "Contact * needs Expires: 0", to_tag="1a1b1c"),
    Reply(403, "Device disabled", to_tag="2a2b2c"),
]


@pytest.mark.parametrize("source", [UDP, TCP], ids=["udp", "tcp"])
@pytest.mark.parametrize("name,data", CORPUS, ids=[name for name, _ in CORPUS])
def test_the_scanner_reads_a_register_as_the_general_parser_does_or_leaves_it(name, data,
                                                                             source):
    lean = scan_register(data, source)
    if lean is None:
        return  # the general path reads it: nothing to compare
    general = general_reading(data, source)
    assert general is not None, "the scanner took a message the general path answers otherwise"
    assert lean == head_of(general)
    for reply in REPLIES:
        reference = response_to(general, reply.status, reply.reason, to_tag=reply.to_tag,
                                headers=list(reply.headers))
        assert write_reply(lean, reply) == bytes(reference)


@pytest.mark.parametrize("name", SHAPES)
@pytest.mark.parametrize("authorized", [False, True], ids=["first", "authorized"])
def test_the_registers_devices_send_take_the_lean_path(name, authorized):
    data = shaped(SHAPES[name], authorized)
    for source in (UDP, TCP):
        head = scan_register(data, source)
        assert head is not None
        assert head == head_of(general_reading(data, source))
        assert (head.authorization is not None) == authorized
        assert head.vias[0].endswith(f";received={source.host}")


def test_the_scanner_takes_most_of_the_corpus_variants_the_general_path_registers():
    """Against a scanner that steps aside from everything, which the test above would pass."""
    taken = [name for name, data in CORPUS if scan_register(data, UDP) is not None]
    registered = [name for name, data in CORPUS if general_reading(data, UDP) is not None]
    assert len(taken) >= len(registered) // 2
    assert {"torture-regaut01", "torture-cparam01", "torture-regescrt"} <= set(taken)


@pytest.mark.parametrize("data", [
    b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n\r\n",
    b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
    b"REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n",
    b"",
])
def test_what_is_no_whole_register_goes_to_the_general_path(data):
    assert scan_register(data, UDP) is None


def test_the_answer_to_a_request_without_a_to_tag_gets_the_tag_given():
    head = scan_register(shaped(SIPP, False), UDP)
    assert head is not None
    answer = write_reply(head, Reply(401, to_tag="feed01"))
    assert b"\r\nTo: <sip:user7@127.0.0.1>;tag=feed01\r\n" in answer
    assert answer.startswith(b"SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP 127.0.0.1:5071;")
    assert b";rport=5071;received=192.0.2.7\r\n" in answer
    assert answer.endswith(b"\r\nContent-Length: 0\r\n\r\n")


@pytest.mark.parametrize("name,data", CORPUS, ids=[name for name, _ in CORPUS])
def test_answers_written_from_the_general_reading_are_the_general_writers_bytes(name, data):
    """The server answers every REGISTER from its RegisterHead, read by either path."""
    general = general_reading(data, UDP)
    if general is None:
        return
    head = head_of(general)
    for reply in REPLIES:
        reference = response_to(general, reply.status, reply.reason, to_tag=reply.to_tag,
                                headers=list(reply.headers))
        assert write_reply(head, reply) == bytes(reference)


def test_a_control_character_in_the_head_leaves_the_register_to_the_general_parser():
    """Found by the differential fuzzer: the general parser splits the request line at \\x1e
    (white space to Python), so reading the URI whole would have answered differently."""
    data = shaped(SIPP, True).replace(b"sip:127.0.0.1:5070 ", b"sIp:127.0.\x1e.1:5070 ", 1)
    assert scan_register(data, UDP) is None
    assert scan_register(shaped(SIPP, True).replace(b"tag=4711R1", b"tag=47\x0111R1"), UDP) is None
    tabbed = shaped(SIPP, True).replace(b"sip:127.0.0.1:5070 ", b"sip:1\t27.0.0.1:5070 ", 1)
    assert scan_register(tabbed, UDP) is None


def _with_byte(data: bytes, value: int) -> list[bytes]:
    """The message with one byte put in a header value, in a header name, in the URI, and in
    place of a line's CR and of its LF."""
    byte = bytes((value,))
    return [data.replace(b"tag=4711R1", b"tag=47" + byte + b"11R1"),
            data.replace(b"User-Agent:", b"User" + byte + b"Agent:"),
            data.replace(b"sip:127.0.0.1:5070 ", b"sip:127.0." + byte + b"0.1:5070 ", 1),
            data.replace(b"70\r\nFrom", b"70" + byte + b"\nFrom"),
            data.replace(b"70\r\nFrom", b"70\r" + byte + b"From")]


@pytest.mark.parametrize("value", range(256))
def test_any_byte_in_a_register_is_read_as_the_general_parser_reads_it_or_left_to_it(value):
    """Every byte value where devices and attackers put odd ones: what the scanner reads
    matches the general path, and what it cannot vouch for (control characters, non-ASCII,
    a bare CR or LF) goes to the general parser."""
    for data in _with_byte(shaped(SIPP, True), value):
        lean = scan_register(data, UDP)
        plain = value in (9, 10, 13) or 0x20 <= value < 0x7F
        if not plain:
            assert lean is None
        if lean is not None:
            general = general_reading(data, UDP)
            assert general is not None and lean == head_of(general)
