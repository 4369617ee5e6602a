"""HTTP digest for SIP (RFC 7616, RFC 8760) as both sides compute it: the algorithms, HA1 and
the expected response, and how a header's parameters are read. The server's side is in
`digest_server`, the client's answer in `digest_client`."""

from __future__ import annotations

import hashlib
import re
from enum import Enum


class Algorithm(Enum):
    MD5 = "MD5"
    SHA256 = "SHA-256"

    def hash(self, text: str) -> str:
        if self is Algorithm.MD5:
            return hashlib.md5(text.encode()).hexdigest()
        return hashlib.sha256(text.encode()).hexdigest()

    @classmethod
    def named(cls, name: str) -> Algorithm | None:
        return _BY_NAME.get(name.upper())


_BY_NAME = {algorithm.value: algorithm for algorithm in Algorithm}


def ha1(username: str, realm: str, password: str, algorithm: Algorithm) -> str:
    return algorithm.hash(f"{username}:{realm}:{password}")


def expected_response(algorithm: Algorithm, ha1_value: str, method: str, uri: str, nonce: str,
                      nc: str, cnonce: str) -> str:
    """The `response` a client with this HA1 computes for qop=auth (RFC 7616 3.4.1)."""
    ha2 = algorithm.hash(f"{method}:{uri}")
    return algorithm.hash(f"{ha1_value}:{nonce}:{nc}:{cnonce}:auth:{ha2}")


# key=value or key="value" (with \" inside quotes), comma separated.
PARAMETER = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^",\s]*))')


class DigestError(ValueError):
    """A challenge or credentials that cannot even be read."""
