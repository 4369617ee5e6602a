"""The device identity on disk: made once, private, stable."""

import os
import stat

import pytest

from protocols.channel.identity import (
    CERT_FILE,
    KEY_FILE,
    DeviceIdentity,
    IdentityError,
    fingerprint_of,
    fingerprints_match,
    parse_fingerprint,
)


def test_first_start_makes_a_key_only_its_owner_can_read(tmp_path):
    identity = DeviceIdentity.load_or_create(tmp_path / "identity", "laptop")
    assert stat.S_IMODE(os.stat(identity.key_path).st_mode) == 0o600
    assert identity.device_name == "laptop"


def test_the_fingerprint_is_the_same_on_every_start(tmp_path):
    first = DeviceIdentity.load_or_create(tmp_path, "laptop")
    again = DeviceIdentity.load_or_create(tmp_path, "laptop")
    assert again.fingerprint == first.fingerprint
    assert DeviceIdentity.load(tmp_path).fingerprint == first.fingerprint


def test_two_devices_get_different_fingerprints(tmp_path):
    one = DeviceIdentity.load_or_create(tmp_path / "one", "one")
    two = DeviceIdentity.load_or_create(tmp_path / "two", "two")
    assert one.fingerprint != two.fingerprint


def test_the_fingerprint_is_sha256_of_the_der_certificate_in_uppercase_colon_hex(tmp_path):
    identity = DeviceIdentity.load_or_create(tmp_path, "laptop")
    assert identity.fingerprint == fingerprint_of(identity.certificate_der)
    pairs = identity.fingerprint.split(":")
    assert len(pairs) == 32 and all(len(p) == 2 and p == p.upper() for p in pairs)


def test_no_temporary_files_are_left_beside_the_identity(tmp_path):
    DeviceIdentity.load_or_create(tmp_path, "laptop")
    assert sorted(os.listdir(tmp_path)) == sorted([KEY_FILE, CERT_FILE])


def test_a_key_readable_by_others_is_refused_with_the_fix_in_the_message(tmp_path):
    identity = DeviceIdentity.load_or_create(tmp_path, "laptop")
    os.chmod(identity.key_path, 0o644)
    with pytest.raises(IdentityError, match="readable by others.*make it 600"):
        DeviceIdentity.load_or_create(tmp_path, "laptop")


def test_a_certificate_without_its_key_is_an_error_not_a_new_identity(tmp_path):
    identity = DeviceIdentity.load_or_create(tmp_path, "laptop")
    os.unlink(identity.key_path)
    with pytest.raises(IdentityError, match="private key .* is missing"):
        DeviceIdentity.load_or_create(tmp_path, "laptop")


def test_a_certificate_of_another_key_is_refused(tmp_path):
    DeviceIdentity.load_or_create(tmp_path / "a", "a")
    DeviceIdentity.load_or_create(tmp_path / "b", "b")
    os.replace(tmp_path / "b" / CERT_FILE, tmp_path / "a" / CERT_FILE)
    with pytest.raises(IdentityError, match="does not belong"):
        DeviceIdentity.load(tmp_path / "a")


def test_fingerprints_match_in_any_case_with_or_without_colons_or_prefix(tmp_path):
    fingerprint = DeviceIdentity.load_or_create(tmp_path, "laptop").fingerprint
    assert fingerprints_match(fingerprint, "sha-256 " + fingerprint.lower().replace(":", ""))
    assert not fingerprints_match(fingerprint, "00:" * 31 + "00")
    assert not fingerprints_match(fingerprint, "not a fingerprint")


def test_a_short_fingerprint_is_not_a_fingerprint():
    with pytest.raises(ValueError, match="not a SHA-256 certificate fingerprint"):
        parse_fingerprint("AB:CD")


async def test_an_existing_ec_p256_key_gets_a_certificate_and_works_on_the_channel(
    tmp_path, caller
):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from protocols.channel.framing import FrameType

    from .conftest import open_pair

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tmp_path / KEY_FILE).write_bytes(pem)
    os.chmod(tmp_path / KEY_FILE, 0o600)
    callee = DeviceIdentity.load_or_create(tmp_path, "old-phone")
    server, client = await open_pair(callee, caller)
    await client.send(FrameType.DATA, b"hello")
    assert (await server.receive()).payload == b"hello"
    await client.close()
    await server.close()
