"""The SHA-256 fingerprint that pins a peer's TLS certificate, in RFC 8122 notation (AB:CD:...)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import InvalidValue

ALGORITHM = "sha-256"
_HEX_PAIRS = re.compile(r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}")


@dataclass(frozen=True)
class Fingerprint:
    digest: bytes
    algorithm: str = ALGORITHM

    def __post_init__(self) -> None:
        if self.algorithm != ALGORITHM:
            raise InvalidValue("fingerprint", f"algorithm {self.algorithm!r} is not supported; use sha-256")
        if type(self.digest) is not bytes or len(self.digest) != 32:
            raise InvalidValue("fingerprint", "a SHA-256 digest is exactly 32 bytes")

    @classmethod
    def of_certificate(cls, der: bytes) -> Fingerprint:
        return cls(hashlib.sha256(der).digest())

    @classmethod
    def parse(cls, text: str, algorithm: str = ALGORITHM) -> Fingerprint:
        if not isinstance(text, str) or _HEX_PAIRS.fullmatch(text) is None:
            raise InvalidValue("fingerprint", "expected 32 colon-separated hex bytes, as in AB:CD:EF:...")
        return cls(bytes.fromhex(text.replace(":", "")), algorithm)

    def __str__(self) -> str:
        return self.digest.hex(":").upper()
