"""The shared hardened parser on its own: each hostile body is refused with a typed error and a
reason, before it costs time or reads a file; clean bodies come back as element trees."""

import time

import pytest
from lxml import etree

from protocols.untrusted_xml import UntrustedXmlError, XmlTooLarge, parse_untrusted, parser

LIMITS = {"max_bytes": 4096, "max_depth": 4}
TIME_BOUND = 2.0


def refused(data: bytes, **limits: int) -> UntrustedXmlError:
    started = time.monotonic()
    with pytest.raises(UntrustedXmlError) as raised:
        parse_untrusted(data, **(limits or LIMITS))
    assert time.monotonic() - started < TIME_BOUND
    assert raised.value.reason
    return raised.value


def nested(depth: int) -> bytes:
    return b"<a>" * depth + b"</a>" * depth


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-MARKER")
    return path


def test_a_clean_body_comes_back_as_its_root_without_comments_or_processing_instructions():
    root = parse_untrusted(b"<?xml version='1.0'?><r><!-- note --><?pi x?><c>text</c></r>", **LIMITS)
    assert root.tag == "r" and [child.tag for child in root] == ["c"] and root[0].text == "text"


def test_a_body_over_the_cap_is_refused_as_too_large_whatever_it_holds():
    error = refused(b"\xff\x00<!DOCTYPE" + b" " * 4096)
    assert isinstance(error, XmlTooLarge)
    assert (error.size, error.limit) == (4107, 4096)


def test_a_body_exactly_at_the_cap_is_parsed():
    body = b"<r>" + b" " * (4096 - len(b"<r></r>")) + b"</r>"
    assert parse_untrusted(body, **LIMITS).tag == "r"


def test_each_caller_sets_its_own_limits():
    body = nested(6)
    assert parse_untrusted(body, max_bytes=len(body), max_depth=6).tag == "a"
    assert isinstance(refused(body, max_bytes=len(body) - 1, max_depth=6), XmlTooLarge)
    assert "more than 5 deep" in refused(body, max_bytes=4096, max_depth=5).reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<r>\xc3(</r>", "not UTF-8 (bad byte at offset 3)"),
        ("<r/>".encode("utf-16"), "not UTF-8"),
        (b"<r>\x00</r>", "NUL"),
        (b"", "Document is empty"),
        (b"<r><c></r>", "not well-formed"),
        (b"<r>&undefined;</r>", "not well-formed"),
    ],
    ids=["bad-utf-8", "utf-16", "nul", "empty", "mismatched-tags", "undefined-entity"],
)
def test_a_body_that_is_not_clean_utf_8_xml_is_refused_with_the_reason(body, reason):
    assert reason in refused(body).reason


def test_a_billion_laughs_body_is_refused_before_the_parser_sees_it():
    laughs = b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">' + b"".join(
        b'<!ENTITY %c "%s">' % (ord("b") + n, b"&%c;" % (ord("a") + n) * 10) for n in range(9)
    ) + b"]><r>&j;</r>"
    assert "DTD" in refused(laughs, max_bytes=65536, max_depth=4).reason


def test_an_external_entity_is_refused_without_reading_the_file(secret_file):
    body = f'<!DOCTYPE r [<!ENTITY s SYSTEM "{secret_file.as_uri()}">]><r>&s;</r>'.encode()
    error = refused(body)
    assert "DTD" in error.reason and "TOP-SECRET-MARKER" not in str(error)


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE r SYSTEM "http://192.0.2.1/evil.dtd"><r/>',
        b'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://192.0.2.1/x"> %p;]><r/>',
        b'<r><!ENTITY e "x"></r>',
        # UTF-7 would turn these checked bytes into a DOCTYPE: the parser reads them as UTF-8.
        b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE r+AD4-<r/>',
    ],
    ids=["external-dtd", "parameter-entity", "entity-in-body", "utf-7-declaration"],
)
def test_a_body_reaching_for_a_dtd_or_entity_is_refused(body):
    refused(body)


def test_the_parser_alone_neither_expands_entities_nor_reads_files(secret_file):
    body = f'<!DOCTYPE r [<!ENTITY s SYSTEM "{secret_file.as_uri()}">]><r>&s;</r>'.encode()
    root = etree.fromstring(body, parser())
    assert "TOP-SECRET-MARKER" not in etree.tostring(root).decode()


@pytest.mark.parametrize(("depth", "accepted"), [(1, True), (4, True), (5, False), (5000, False)])
def test_elements_nested_deeper_than_the_limit_are_refused(depth, accepted):
    body = nested(depth)
    limits = {"max_bytes": len(body), "max_depth": 4}
    if accepted:
        assert parse_untrusted(body, **limits).tag == "a"
    else:
        reason = refused(body, **limits).reason
        assert "nested more than 4 deep" in reason or "Excessive depth" in reason


def test_a_body_that_is_not_bytes_is_a_programming_error():
    with pytest.raises(TypeError):
        parse_untrusted("<r/>", **LIMITS)
