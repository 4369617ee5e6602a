"""The client's side of SIP digest authentication: answering a server's challenges
(SHA-256 preferred over MD5, qop=auth)."""

from __future__ import annotations

import os

from .digest import PARAMETER, Algorithm, DigestError, expected_response, ha1


def read_challenge(value: str) -> dict[str, str]:
    """The parameters of one WWW-Authenticate / Proxy-Authenticate value (lower-case keys)."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"not a Digest challenge: {scheme!r}")
    return {key.lower(): quoted or plain for key, quoted, plain in PARAMETER.findall(rest)}


def answer_challenges(challenges: list[str], username: str, password: str, method: str,
                      uri: str, *, nc: int = 1, cnonce: str | None = None) -> str:
    """Credentials answering the strongest challenge we know (SHA-256 over MD5), qop=auth."""
    offered = []
    for value in challenges:
        params = read_challenge(value)
        algorithm = Algorithm.named(params.get("algorithm", "MD5"))
        if algorithm is not None and "auth" in params.get("qop", "").split(","):
            offered.append((algorithm is Algorithm.SHA256, algorithm, params))
    if not offered:
        raise DigestError("no challenge offers MD5 or SHA-256 with qop=auth")
    _, algorithm, params = max(offered, key=lambda item: item[0])
    realm, nonce = params.get("realm", ""), params.get("nonce", "")
    count = f"{nc:08x}"
    cnonce = cnonce or os.urandom(8).hex()
    secret = ha1(username, realm, password, algorithm)
    response = expected_response(algorithm, secret, method, uri, nonce, count, cnonce)
    opaque = f', opaque="{params["opaque"]}"' if "opaque" in params else ""
    return (f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm={algorithm.value}, qop=auth, nc={count}, '
            f'cnonce="{cnonce}"{opaque}')
