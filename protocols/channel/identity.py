"""A device's TLS identity: an Ed25519 key and self-signed certificate made at first start.

Peers pin each other by the SHA-256 fingerprint of the certificate (as in SDP, RFC 8122), so the
certificate needs no CA, and its names and dates mean nothing to the channel.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

KEY_FILE = "device.key"
CERT_FILE = "device.crt"
_FINGERPRINT_BYTES = 32

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


class IdentityError(Exception):
    """The identity files cannot be used; the message says which file and why."""


def fingerprint_of(certificate_der: bytes) -> str:
    """SHA-256 of the DER certificate as uppercase hex pairs joined by colons: "AB:CD:..."."""
    return hashlib.sha256(certificate_der).digest().hex(":").upper()


def parse_fingerprint(text: str) -> bytes:
    """The 32 raw bytes of a fingerprint written "AB:CD:...", in any case, with or without colons
    or a leading "sha-256" (the SDP form)."""
    cleaned = text.strip()
    if cleaned.lower().startswith("sha-256"):
        cleaned = cleaned[len("sha-256") :].strip()
    hex_digits = cleaned.replace(":", "")
    try:
        raw = bytes.fromhex(hex_digits)
    except ValueError:
        raw = b""
    if len(raw) != _FINGERPRINT_BYTES:
        raise ValueError(f"not a SHA-256 certificate fingerprint: {text!r}")
    return raw


def fingerprints_match(a: str, b: str) -> bool:
    """Compare two fingerprints in constant time; an unreadable one matches nothing."""
    try:
        raw_a, raw_b = parse_fingerprint(a), parse_fingerprint(b)
    except ValueError:
        return False
    return hmac.compare_digest(raw_a, raw_b)


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    device_name: str
    key_path: Path
    cert_path: Path
    certificate_der: bytes
    fingerprint: str

    @classmethod
    def load_or_create(cls, directory: str | os.PathLike[str], device_name: str) -> DeviceIdentity:
        """Load the identity kept in `directory`, making the key and certificate on first use."""
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
        if not key_path.exists():
            if cert_path.exists():
                raise IdentityError(f"{cert_path} exists but its private key {key_path} is missing")
            new_key = ed25519.Ed25519PrivateKey.generate()
            pem = new_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            _write_new_file(key_path, pem, 0o600)
        key = _read_private_key(key_path)
        if not cert_path.exists():
            cert = _self_signed_certificate(key, device_name)
            _write_new_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cls._from_files(key_path, cert_path, key)

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> DeviceIdentity:
        """Load an existing identity; never creates one."""
        directory = Path(directory)
        key_path, cert_path = directory / KEY_FILE, directory / CERT_FILE
        return cls._from_files(key_path, cert_path, _read_private_key(key_path))

    @classmethod
    def _from_files(cls, key_path: Path, cert_path: Path, key: PrivateKey) -> DeviceIdentity:
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise IdentityError(f"cannot read the certificate {cert_path}: {exc}") from exc
        if _public_bytes(cert.public_key()) != _public_bytes(key.public_key()):
            raise IdentityError(
                f"the certificate {cert_path} does not belong to the key {key_path}"
            )
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            device_name=str(names[0].value) if names else "",
            key_path=key_path,
            cert_path=cert_path,
            certificate_der=der,
            fingerprint=fingerprint_of(der),
        )

    def private_key(self) -> PrivateKey:
        return _read_private_key(self.key_path)


def _read_private_key(path: Path) -> PrivateKey:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except OSError as exc:
        raise IdentityError(f"cannot read the private key {path}: {exc.strerror}") from exc
    # Like ssh: a key others can read is no longer private, and silently using it hides that.
    if os.name == "posix" and mode & 0o077:
        raise IdentityError(
            f"the private key {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
            f"make it 600 or delete it to make a new identity"
        )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise IdentityError(f"the private key {path} is damaged or not a PEM key: {exc}") from exc
    if not isinstance(key, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)):
        raise IdentityError(f"the private key {path} is neither Ed25519 nor EC")
    return key


def _self_signed_certificate(key: PrivateKey, device_name: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_name or "sipsync device")])
    now = datetime.datetime.now(datetime.timezone.utc)
    # Pinning ignores validity dates; they are wide so no peer's clock skew ever matters.
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365 * 30))
        .sign(key, None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256())
    )


def _public_bytes(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_new_file(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to `path` only if `path` does not exist, never exposing a partial file.

    The file is made with its final mode from the start (O_EXCL, no chmod window), written and
    synced under a temporary name, then linked into place: a link, unlike a rename, never replaces
    a file that a concurrent first start has just made.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), mode)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return  # someone else won the race; theirs is as good as ours
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV):
                raise
            os.rename(tmp, path)  # a file system without hard links
        _fsync_directory(path.parent)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
