import hashlib
import ipaddress

import pytest

from session_xml import (
    NAMESPACE,
    DataType,
    DescriptorError,
    Direction,
    Fingerprint,
    InvalidValue,
    MalformedBody,
    NegotiationError,
    Role,
    SyncMode,
    SyncProtocol,
    UnsupportedVersion,
    build_descriptor,
    parse_descriptor,
)
from tests.session_xml.examples import (
    ANSWER,
    OFFER,
    an_answer,
    an_offer,
    inserted_before,
    repeated,
    with_text,
    without,
)

OFFER_BODY = build_descriptor(OFFER)
ANSWER_BODY = build_descriptor(ANSWER)


# Round trip


@pytest.mark.parametrize("descriptor", [OFFER, ANSWER], ids=["offer", "answer"])
def test_a_descriptor_parses_back_from_its_body_equal(descriptor):
    assert parse_descriptor(build_descriptor(descriptor)) == descriptor


@pytest.mark.parametrize("body", [OFFER_BODY, ANSWER_BODY], ids=["offer", "answer"])
def test_a_parsed_body_builds_back_to_the_same_bytes(body):
    assert build_descriptor(parse_descriptor(body)) == body


def test_every_field_survives_the_round_trip():
    descriptor = an_answer(
        session_id="x~1.b+c@host-2",
        source_device="phone",
        destination_device="bob.smith/tablet_2",
        data_type=DataType.FILES,
        dataset="Photos.2024",
        direction=Direction.PULL,
        sync_mode=SyncMode.REFRESH_FROM_CALLEE,
        sync_protocols=(SyncProtocol.RSYNC,),
        source_ip="2001:db8:0:1::42",
        source_port=1,
        destination_ip="198.51.100.200",
        destination_port=65535,
        token="A" * 128,
    )
    parsed = parse_descriptor(build_descriptor(descriptor))
    for field in descriptor.__dataclass_fields__:
        assert getattr(parsed, field) == getattr(descriptor, field), field


def test_an_offer_without_sync_mode_has_none_after_the_round_trip():
    body = build_descriptor(an_offer(sync_mode=None))
    assert b"syncMode" not in body
    assert parse_descriptor(body).sync_mode is None


def test_an_offer_keeps_the_callers_preference_order():
    offer = an_offer(sync_protocols=("rsync", "syncml"))
    parsed = parse_descriptor(build_descriptor(offer))
    assert parsed.sync_protocols == (SyncProtocol.RSYNC, SyncProtocol.SYNCML)


def test_the_body_uses_the_seed_field_names_in_the_session_namespace():
    root_line = ANSWER_BODY.splitlines()[1].decode()
    assert root_line == f'<answer xmlns="{NAMESPACE}" version="1.0">'
    for name in ("sourceIP", "sourcePort", "destinationIP", "destinationPort", "dataType", "syncProtocol"):
        assert f"<{name}>".encode() in ANSWER_BODY


def test_strings_are_converted_to_enums_and_addresses():
    assert OFFER.role is Role.OFFER
    assert OFFER.data_type is DataType.CONTACTS
    assert OFFER.direction is Direction.TWO_WAY
    assert OFFER.sync_protocols == (SyncProtocol.SYNCML, SyncProtocol.RSYNC)
    assert OFFER.source_ip == ipaddress.ip_address("192.0.2.10")
    assert ANSWER.destination_ip == ipaddress.ip_address("2001:db8::7")


def test_whitespace_and_non_canonical_forms_in_a_body_parse_to_the_same_descriptor():
    body = with_text(ANSWER_BODY, "destinationIP", "  2001:0db8:0000::0007 ")
    body = with_text(body, "sourcePort", "\n 040000 ")
    body = with_text(body, "dataType", " contacts ")
    assert parse_descriptor(body) == ANSWER


# Validation of every field, in code and on the wire

BAD_FIELDS = [
    ("session_id", "", "sessionId"),
    ("session_id", "has space", "sessionId"),
    ("session_id", "x" * 129, "sessionId"),
    ("source_device", "alice/laptop/extra", "sourceDevice"),
    ("source_device", "-leading-dash", "sourceDevice"),
    ("destination_device", "a" * 65, "destinationDevice"),
    ("destination_device", "ali ce", "destinationDevice"),
    ("data_type", "photos", "dataType"),
    ("dataset", "../etc", "dataset"),
    ("dataset", "a/b", "dataset"),
    ("direction", "sideways", "direction"),
    ("sync_mode", "fast", "syncMode"),
    ("sync_protocols", (), "syncProtocol"),
    ("sync_protocols", ("syncml", "syncml"), "syncProtocol"),
    ("sync_protocols", ("zsync",), "syncProtocol"),
    ("sync_protocols", "syncml", "syncProtocol"),
    ("source_ip", "192.0.2.256", "sourceIP"),
    ("source_ip", "example.org", "sourceIP"),
    ("source_ip", "fe80::1%eth0", "sourceIP"),
    ("source_ip", "0.0.0.0", "sourceIP"),
    ("source_ip", "::", "sourceIP"),
    ("source_ip", "224.0.0.1", "sourceIP"),
    ("source_port", 0, "sourcePort"),
    ("source_port", 65536, "sourcePort"),
    ("source_port", "5060", "sourcePort"),
    ("source_port", True, "sourcePort"),
    ("fingerprint", "AB:CD", "fingerprint"),
    ("token", "short", "token"),
    ("token", "x" * 129, "token"),
    ("token", "has/slash-and-more-chars", "token"),
]


@pytest.mark.parametrize(("field", "value", "xml_name"), BAD_FIELDS)
def test_a_bad_field_value_is_refused_at_construction_naming_the_field(field, value, xml_name):
    with pytest.raises(InvalidValue) as refused:
        an_offer(**{field: value})
    assert refused.value.field == xml_name
    assert refused.value.sip_status == 400
    assert str(refused.value).startswith(f"{xml_name}: ")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("destination_ip", "999.1.1.1"),
        ("destination_ip", None),
        ("destination_port", 0),
        ("destination_port", None),
    ],
)
def test_an_answer_needs_a_valid_destination(field, value):
    with pytest.raises(InvalidValue):
        an_answer(**{field: value})


def test_an_offer_carries_no_destination():
    with pytest.raises(InvalidValue, match="an offer carries no destination"):
        an_offer(destination_ip="192.0.2.1", destination_port=5000)


def test_an_answer_holds_exactly_one_protocol():
    with pytest.raises(InvalidValue, match="exactly one protocol"):
        an_answer(sync_protocols=("syncml", "rsync"))


BAD_ELEMENTS = [
    ("sessionId", "has space"),
    ("sourceDevice", "alice/laptop/extra"),
    ("dataset", "../etc"),
    ("direction", "sideways"),
    ("syncMode", "fast"),
    ("sourceIP", "192.0.2.256"),
    ("sourceIP", "1.2.3"),
    ("sourceIP", "fe80::1%eth0"),
    ("sourceIP", "0.0.0.0"),
    ("sourceIP", "::ffff:zz"),
    ("destinationIP", "12345::1"),
    ("sourcePort", "0"),
    ("sourcePort", "65536"),
    ("sourcePort", "-1"),
    ("sourcePort", "1e3"),
    ("sourcePort", "0x10"),
    ("sourcePort", ""),
    ("destinationPort", "99999999999999999999999"),
    ("fingerprint", "AB:CD"),
    ("fingerprint", "ZZ" + ":00" * 31),
    ("token", "short"),
]


@pytest.mark.parametrize(("element", "text"), BAD_ELEMENTS)
def test_a_bad_value_in_a_body_is_refused_with_400_naming_the_element(element, text):
    with pytest.raises(DescriptorError) as refused:
        parse_descriptor(with_text(ANSWER_BODY, element, text))
    assert isinstance(refused.value, (MalformedBody, InvalidValue))
    assert refused.value.sip_status == 400
    assert element in refused.value.reason


@pytest.mark.parametrize(
    "element",
    ["sessionId", "sourceDevice", "dataType", "syncProtocol", "sourceIP", "destinationPort", "fingerprint", "token"],
)
def test_a_missing_mandatory_element_is_refused(element):
    with pytest.raises(MalformedBody, match=r"line \d+: .*"):
        parse_descriptor(without(ANSWER_BODY, element))


@pytest.mark.parametrize("element", ["sessionId", "dataset", "direction", "sourcePort", "fingerprint", "token"])
def test_a_repeated_mandatory_element_is_refused(element):
    with pytest.raises(MalformedBody, match=element):
        parse_descriptor(repeated(OFFER_BODY, element))


def test_an_answer_body_without_destination_is_refused():
    with pytest.raises(MalformedBody, match="destination"):
        parse_descriptor(without(ANSWER_BODY, "destinationIP"))


def test_an_answer_body_with_two_protocols_is_refused():
    with pytest.raises(MalformedBody):
        parse_descriptor(repeated(ANSWER_BODY.replace(b"syncml", b"rsync", 1), "syncProtocol"))


def test_a_fingerprint_with_another_algorithm_is_refused():
    body = ANSWER_BODY.replace(b'algorithm="sha-256"', b'algorithm="sha-1"')
    with pytest.raises(MalformedBody, match="algorithm"):
        parse_descriptor(body)


def test_an_element_of_our_namespace_the_schema_does_not_know_is_refused():
    with pytest.raises(MalformedBody, match="compression"):
        parse_descriptor(inserted_before(OFFER_BODY, "token", "<compression>zstd</compression>"))


def test_an_unknown_element_without_namespace_is_refused():
    with pytest.raises(MalformedBody):
        parse_descriptor(inserted_before(OFFER_BODY, "token", '<extra xmlns="">1</extra>'))


# Versioned extension


@pytest.mark.parametrize("where", ["sessionId", "syncProtocol", "token"])
def test_elements_in_a_foreign_namespace_are_ignored_wherever_they_sit(where):
    extension = '<x:relay xmlns:x="urn:example:ext"><x:via deep="yes">relay.example</x:via></x:relay>'
    assert parse_descriptor(inserted_before(OFFER_BODY, where, extension)) == OFFER


def test_attributes_in_a_foreign_namespace_are_ignored():
    body = OFFER_BODY.replace(b'version="1.0"', b'version="1.0" xmlns:x="urn:example:ext" x:hint="7"')
    assert parse_descriptor(body) == OFFER


def test_a_newer_minor_version_is_accepted():
    assert parse_descriptor(OFFER_BODY.replace(b'version="1.0"', b'version="1.7"')) == OFFER


def test_a_newer_major_version_is_refused_with_488_and_a_clear_reason():
    with pytest.raises(UnsupportedVersion) as refused:
        parse_descriptor(OFFER_BODY.replace(b'version="1.0"', b'version="2.0"'))
    assert refused.value.sip_status == 488
    assert refused.value.reason == "format version 2.0 is not supported; this device speaks 1.x"


@pytest.mark.parametrize("version", [b"", b'version="one"', b'version="1"'])
def test_a_missing_or_unreadable_version_is_malformed(version):
    with pytest.raises(MalformedBody, match="version"):
        parse_descriptor(OFFER_BODY.replace(b'version="1.0"', version))


def test_an_offer_skips_protocols_from_a_newer_peer_and_keeps_the_ones_it_knows():
    body = inserted_before(OFFER_BODY, "syncProtocol", "<syncProtocol>zsync</syncProtocol>")
    assert parse_descriptor(body).sync_protocols == (SyncProtocol.SYNCML, SyncProtocol.RSYNC)


def test_an_offer_of_only_unknown_protocols_is_not_acceptable():
    body = OFFER_BODY.replace(b">syncml<", b">zsync<").replace(b">rsync<", b">bittorrent<")
    with pytest.raises(NegotiationError, match="zsync, bittorrent") as refused:
        parse_descriptor(body)
    assert refused.value.sip_status == 488


def test_an_answer_with_an_unknown_protocol_is_not_acceptable():
    with pytest.raises(NegotiationError):
        parse_descriptor(ANSWER_BODY.replace(b">syncml<", b">zsync<"))


def test_an_unknown_data_type_is_not_acceptable():
    with pytest.raises(NegotiationError, match="'photos'") as refused:
        parse_descriptor(with_text(OFFER_BODY, "dataType", "photos"))
    assert refused.value.sip_status == 488


# Fingerprint


def test_a_fingerprint_is_the_sha256_of_the_der_certificate_in_rfc8122_notation():
    fingerprint = Fingerprint.of_certificate(b"der bytes")
    assert fingerprint.digest == hashlib.sha256(b"der bytes").digest()
    assert str(fingerprint) == ":".join(f"{b:02X}" for b in fingerprint.digest)


def test_a_fingerprint_in_lower_case_parses_to_the_same_digest():
    text = str(OFFER.fingerprint)
    assert Fingerprint.parse(text.lower()) == OFFER.fingerprint


@pytest.mark.parametrize("digest", [b"", b"\x00" * 31, b"\x00" * 33, "00" * 32])
def test_a_fingerprint_digest_must_be_32_bytes(digest):
    with pytest.raises(InvalidValue, match="32 bytes"):
        Fingerprint(digest)


def test_a_fingerprint_of_another_algorithm_is_refused_in_code():
    with pytest.raises(InvalidValue, match="sha-1"):
        Fingerprint(b"\x00" * 32, algorithm="sha-1")


def test_build_refuses_what_is_not_a_descriptor():
    with pytest.raises(TypeError):
        build_descriptor({"sourceIP": "192.0.2.1"})


def test_a_mirror_direction_survives_the_round_trip_and_the_schema():
    offer = an_offer(direction="mirror", data_type=DataType.FILES, sync_protocols=("rsync",))
    body = build_descriptor(offer)
    assert b"<direction>mirror</direction>" in body
    assert parse_descriptor(body).direction is Direction.MIRROR
