"""Properties over generated descriptors and mutated bodies."""

import dataclasses
import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from session_xml import (
    DataType,
    DescriptorError,
    Direction,
    Fingerprint,
    Phase,
    ProgressReport,
    SessionDescriptor,
    SyncMode,
    SyncProtocol,
    build_descriptor,
    build_progress,
    parse_descriptor,
    parse_progress,
)
from tests.session_xml.examples import ANSWER, OFFER, PROGRESS

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
names = st.from_regex(_NAME, fullmatch=True)
device_names = st.one_of(names, st.tuples(names, names).map("/".join))
session_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._~@+-]{0,127}", fullmatch=True)
tokens = st.from_regex(r"[A-Za-z0-9_-]{16,128}", fullmatch=True)
addresses = st.one_of(
    st.ip_addresses(v=4), st.ip_addresses(v=6).filter(lambda a: a.scope_id is None)
).filter(lambda a: not (a.is_unspecified or a.is_multicast))
ports = st.integers(1, 65535)
fingerprints = st.binary(min_size=32, max_size=32).map(Fingerprint)
# Text XML can carry: no C0 controls but tab, newline and carriage return, no surrogates or non-characters.
reasons = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Cn")) | st.sampled_from("\t\n\r"), min_size=1, max_size=300)


@st.composite
def descriptors(draw):
    answer = draw(st.booleans())
    protocols = draw(st.lists(st.sampled_from(SyncProtocol), min_size=1, max_size=2, unique=True))
    fields = dict(
        role="answer" if answer else "offer",
        session_id=draw(session_ids),
        source_device=draw(device_names),
        destination_device=draw(device_names),
        data_type=draw(st.sampled_from(DataType)),
        dataset=draw(names),
        direction=draw(st.sampled_from(Direction)),
        sync_mode=draw(st.none() | st.sampled_from(SyncMode)),
        sync_protocols=tuple(protocols[:1] if answer else protocols),
        source_ip=draw(addresses),
        source_port=draw(ports),
        fingerprint=draw(fingerprints),
        token=draw(tokens),
        destination_ip=draw(addresses) if answer else None,
        destination_port=draw(ports) if answer else None,
    )
    return SessionDescriptor(**fields)


@st.composite
def progress_reports(draw):
    phase = draw(st.sampled_from(Phase))
    counts = st.integers(0, 2**64 - 1)
    bytes_total, records_total = draw(st.none() | counts), draw(st.none() | counts)
    return ProgressReport(
        session_id=draw(session_ids),
        phase=phase,
        bytes_done=draw(st.integers(0, bytes_total if bytes_total is not None else 2**64 - 1)),
        bytes_total=bytes_total,
        records_done=draw(st.integers(0, records_total if records_total is not None else 2**64 - 1)),
        records_total=records_total,
        error=draw(reasons) if phase is Phase.FAILED else None,
    )


@SETTINGS
@given(descriptors())
def test_any_descriptor_the_builder_accepts_parses_back_equal(descriptor):
    body = build_descriptor(descriptor)
    assert parse_descriptor(body) == descriptor
    assert build_descriptor(parse_descriptor(body)) == body


@SETTINGS
@given(progress_reports())
def test_any_progress_report_parses_back_equal(report):
    assert parse_progress(build_progress(report)) == report


@SETTINGS
@given(
    st.sampled_from(["session_id", "source_device", "destination_device", "dataset", "token"]),
    st.text(max_size=70),
)
def test_any_text_in_a_name_field_is_either_refused_or_survives_the_round_trip(field, text):
    # The dataclass must refuse whatever the schema would, or the builder would write bodies peers reject.
    try:
        offer = SessionDescriptor(**{**OFFER.__dict__, field: text})
    except DescriptorError:
        return
    assert getattr(parse_descriptor(build_descriptor(offer)), field) == text


@SETTINGS
@given(st.ip_addresses())
def test_an_address_either_is_refused_or_survives_the_round_trip(address):
    try:
        offer = SessionDescriptor(**{**OFFER.__dict__, "source_ip": str(address)})
    except DescriptorError:
        return
    assert parse_descriptor(build_descriptor(offer)).source_ip == ipaddress.ip_address(address)


@st.composite
def mutations(draw, body):
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "splice"]))
        at = draw(st.integers(0, len(data)))
        if kind == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            fragments = st.sampled_from([b"<", b">", b"&", b"<!DOCTYPE x>", b"&lt;", b"\x00", b"\xff", b"]]>"])
            data[at:at] = draw(fragments | st.binary(max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        else:
            start = draw(st.integers(0, len(data)))
            data[at:at] = data[start : start + draw(st.integers(1, 64))]
    return bytes(data)


def _only_own_errors(parse, body):
    try:
        parse(body)
    except DescriptorError as error:
        assert error.sip_status in (400, 413, 488)
        assert error.reason


@SETTINGS
@given(mutations(build_descriptor(OFFER)))
def test_a_mutated_offer_body_raises_nothing_but_a_descriptor_error(body):
    _only_own_errors(parse_descriptor, body)


@SETTINGS
@given(mutations(build_descriptor(ANSWER)))
def test_a_mutated_answer_body_raises_nothing_but_a_descriptor_error(body):
    _only_own_errors(parse_descriptor, body)


@SETTINGS
@given(mutations(build_progress(dataclasses.replace(PROGRESS, phase="failed", error="disk full"))))
def test_a_mutated_progress_body_raises_nothing_but_a_descriptor_error(body):
    _only_own_errors(parse_progress, body)


@SETTINGS
@given(st.binary(max_size=512))
def test_random_bytes_raise_nothing_but_a_descriptor_error(body):
    _only_own_errors(parse_descriptor, body)
