"""What the two ends prove to each other inside the pinned TLS channel, without sockets."""

import pytest

from protocols.channel.authentication import (
    Challenge,
    Hello,
    check_server_certificate,
    sign_hello,
    verify_hello,
)
from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.identity import DeviceIdentity


@pytest.fixture(scope="module")
def devices(tmp_path_factory):
    root = tmp_path_factory.mktemp("devices")
    return [
        DeviceIdentity.load_or_create(root / name, name) for name in ("server", "client", "other")
    ]


def hello_from(client, server, challenge, token="token-1"):
    return sign_hello(
        client.private_key(), client.certificate_der, challenge, server.fingerprint, token
    )


def test_the_pinned_client_with_the_right_token_is_accepted(devices):
    server, client, _ = devices
    challenge = Challenge.new()
    hello = Hello.decode(hello_from(client, server, challenge).encode())
    verify_hello(hello, challenge, server.fingerprint, client.fingerprint, "token-1")


def test_a_client_with_another_certificate_is_refused_for_pinning(devices):
    server, client, other = devices
    challenge = Challenge.new()
    with pytest.raises(
        ChannelError, match="client's certificate .* is not the one pinned"
    ) as caught:
        verify_hello(
            hello_from(other, server, challenge),
            challenge,
            server.fingerprint,
            client.fingerprint,
            "token-1",
        )
    assert caught.value.code is ErrorCode.PINNING


def test_a_wrong_token_is_refused(devices):
    server, client, _ = devices
    challenge = Challenge.new()
    hello = hello_from(client, server, challenge, token="guess")
    with pytest.raises(ChannelError, match="wrong session token") as caught:
        verify_hello(hello, challenge, server.fingerprint, client.fingerprint, "token-1")
    assert caught.value.code is ErrorCode.AUTHENTICATION


def test_a_stolen_certificate_without_its_key_is_refused(devices):
    server, client, other = devices
    challenge = Challenge.new()
    forged = hello_from(other, server, challenge)
    hello = Hello(forged.token, client.certificate_der, forged.signature)
    with pytest.raises(ChannelError, match="did not prove it holds"):
        verify_hello(hello, challenge, server.fingerprint, client.fingerprint, "token-1")


def test_a_hello_replayed_against_a_fresh_challenge_is_refused(devices):
    server, client, _ = devices
    old = hello_from(client, server, Challenge.new())
    with pytest.raises(ChannelError, match="did not prove it holds"):
        verify_hello(old, Challenge.new(), server.fingerprint, client.fingerprint, "token-1")


def test_a_hello_made_for_another_server_is_refused(devices):
    server, client, other = devices
    challenge = Challenge.new()
    meant_for_other = hello_from(client, other, challenge)
    with pytest.raises(ChannelError, match="did not prove it holds"):
        verify_hello(meant_for_other, challenge, server.fingerprint, client.fingerprint, "token-1")


@pytest.mark.parametrize(
    "payload", [b"", b"\x01", b"\x01\x00\x05abc", b"\x01" + b"\x00\x00" * 3 + b"extra"]
)
def test_a_malformed_hello_is_a_protocol_error(payload):
    with pytest.raises(ChannelError, match="HELLO frame is malformed"):
        Hello.decode(payload)


def test_a_hello_of_another_protocol_version_says_so():
    with pytest.raises(ChannelError, match="version 9"):
        Hello.decode(b"\x09")


def test_a_server_certificate_other_than_the_pinned_one_is_refused(devices):
    server, _, other = devices
    check_server_certificate(server.certificate_der, server.fingerprint)
    with pytest.raises(
        ChannelError, match="server's certificate .* is not the one pinned"
    ) as caught:
        check_server_certificate(other.certificate_der, server.fingerprint)
    assert caught.value.code is ErrorCode.PINNING


def test_a_client_with_an_ec_p256_certificate_is_accepted_too(devices):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from protocols.channel.identity import fingerprint_of

    server = devices[0]
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "phone")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    ).public_bytes(serialization.Encoding.DER)
    challenge = Challenge.new()
    hello = sign_hello(key, certificate, challenge, server.fingerprint, "token-1")
    verify_hello(hello, challenge, server.fingerprint, fingerprint_of(certificate), "token-1")
