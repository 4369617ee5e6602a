"""What the channel's two ends prove to each other after TLS, and the payloads that carry it:
CHALLENGE, HELLO, the transcript the client signs, the pin checks. Stateless and sans-I/O; the
order in which they are used is the handshake machine's (handshake.py).

The client pins the server's TLS certificate. The server cannot pin the client inside TLS (without
a CA, OpenSSL through Python's ssl rejects a self-signed client certificate during the handshake,
and offers no verify callback), so the client proves itself inside the server-authenticated
channel: it sends its certificate, the one-time token and a signature, made with its key, over a
fresh server nonce and both fingerprints.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.identity import PrivateKey, fingerprint_of, parse_fingerprint

PROTOCOL_VERSION = 1
NONCE_SIZE = 32
# Domain separation: a signature made for this purpose can be used for no other.
_SIGNING_CONTEXT = b"sipsync data channel v1: client authentication\x00"
_CHALLENGE = struct.Struct(">B32s")


@dataclass(frozen=True, slots=True)
class Challenge:
    """What the server sends first: its protocol version and a nonce never used before."""

    version: int
    nonce: bytes

    @classmethod
    def new(cls) -> Challenge:
        return cls(PROTOCOL_VERSION, os.urandom(NONCE_SIZE))

    def encode(self) -> bytes:
        return _CHALLENGE.pack(self.version, self.nonce)

    @classmethod
    def decode(cls, payload: bytes | bytearray) -> Challenge:
        if len(payload) != _CHALLENGE.size:
            raise ChannelError("the server's CHALLENGE frame is malformed", ErrorCode.PROTOCOL)
        version, nonce = _CHALLENGE.unpack(payload)
        if version != PROTOCOL_VERSION:
            raise ChannelError(
                f"the server speaks channel protocol version {version}, this device {PROTOCOL_VERSION}",
                ErrorCode.PROTOCOL,
            )
        return cls(version, nonce)


@dataclass(frozen=True, slots=True)
class Hello:
    """The client's first frame: the token, its certificate and its proof of holding the key."""

    token: bytes
    certificate_der: bytes
    signature: bytes

    def encode(self) -> bytes:
        parts = [struct.pack(">B", PROTOCOL_VERSION)]
        for field in (self.token, self.certificate_der, self.signature):
            parts.append(struct.pack(">H", len(field)))
            parts.append(field)
        return b"".join(parts)

    @classmethod
    def decode(cls, payload: bytes | bytearray) -> Hello:
        payload = bytes(payload)  # cryptography takes bytes only
        malformed = ChannelError("the client's HELLO frame is malformed", ErrorCode.PROTOCOL)
        if not payload:
            raise malformed
        if payload[0] != PROTOCOL_VERSION:
            raise ChannelError(
                f"the client speaks channel protocol version {payload[0]}, this device {PROTOCOL_VERSION}",
                ErrorCode.PROTOCOL,
            )
        fields: list[bytes] = []
        offset = 1
        for _ in range(3):
            if offset + 2 > len(payload):
                raise malformed
            (length,) = struct.unpack_from(">H", payload, offset)
            offset += 2
            if offset + length > len(payload):
                raise malformed
            fields.append(payload[offset : offset + length])
            offset += length
        if offset != len(payload):
            raise malformed
        return cls(*fields)


def transcript(
    nonce: bytes, server_fingerprint: str, client_fingerprint: str, token: bytes
) -> bytes:
    """What the client signs. The server fingerprint keeps a malicious server from replaying the
    signature to another one; the nonce keeps anyone from replaying it to the same server."""
    return b"".join(
        (
            _SIGNING_CONTEXT,
            nonce,
            parse_fingerprint(server_fingerprint),
            parse_fingerprint(client_fingerprint),
            struct.pack(">H", len(token)),
            token,
        )
    )


def check_server_certificate(certificate_der: bytes | None, pinned_fingerprint: str) -> str:
    """The fingerprint of the certificate the server presented; raises ChannelError unless it
    is the pinned one."""
    if not certificate_der:
        raise ChannelError("the server presented no certificate", ErrorCode.PINNING)
    return _check_pin("server", certificate_der, pinned_fingerprint)


def sign_hello(
    key: PrivateKey,
    certificate_der: bytes,
    challenge: Challenge,
    server_fingerprint: str,
    token: str,
) -> Hello:
    token_bytes = _token_bytes(token)
    data = transcript(
        challenge.nonce, server_fingerprint, fingerprint_of(certificate_der), token_bytes
    )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(data)
    else:
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    return Hello(token_bytes, certificate_der, signature)


def verify_hello(
    hello: Hello,
    challenge: Challenge,
    server_fingerprint: str,
    pinned_client_fingerprint: str,
    token: str,
) -> str:
    """The client's fingerprint, once it is shown to be the pinned device, to hold its key and
    to know the token; raises ChannelError otherwise."""
    client_fingerprint = _check_pin("client", hello.certificate_der, pinned_client_fingerprint)
    try:
        public_key = x509.load_der_x509_certificate(hello.certificate_der).public_key()
    except ValueError as exc:
        raise ChannelError(
            "the client's certificate cannot be read", ErrorCode.AUTHENTICATION
        ) from exc
    data = transcript(challenge.nonce, server_fingerprint, client_fingerprint, hello.token)
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(hello.signature, data)
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(hello.signature, data, ec.ECDSA(hashes.SHA256()))
        else:
            raise ChannelError(
                "the client's certificate has a key type this device does not accept",
                ErrorCode.AUTHENTICATION,
            )
    except InvalidSignature as exc:
        raise ChannelError(
            "the client did not prove it holds its certificate's key (bad signature)",
            ErrorCode.AUTHENTICATION,
        ) from exc
    if not hmac.compare_digest(hello.token, _token_bytes(token)):
        raise ChannelError("wrong session token", ErrorCode.AUTHENTICATION)
    return client_fingerprint


def _check_pin(side: str, certificate_der: bytes, pinned_fingerprint: str) -> str:
    actual = fingerprint_of(certificate_der)
    if not hmac.compare_digest(parse_fingerprint(actual), parse_fingerprint(pinned_fingerprint)):
        raise ChannelError(
            f"the {side}'s certificate {actual} is not the one pinned in the session descriptor "
            f"({pinned_fingerprint})",
            ErrorCode.PINNING,
        )
    return actual


def _token_bytes(token: str) -> bytes:
    data = token.encode("utf-8")
    if len(data) > 0xFFFF:
        raise ValueError("a session token longer than 65535 bytes")
    return data
