"""A tiny sans-I/O SIP device for tests: builds requests and answers digest challenges."""

from __future__ import annotations

import itertools

from protocols.sip.digest import Algorithm, expected_response, ha1
from protocols.sip.message import SipRequest, parse_message

_branches = itertools.count(1)


def build(method: str, uri: str, *, user: str, to: str | None = None, call_id="c1", cseq=1,
          headers=(), body=b"", port=5071, from_params="", from_tag="ft") -> SipRequest:
    lines = [
        f"{method} {uri} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKt{next(_branches)};rport",
        f"From: <sip:{user}@sipsync{from_params}>;tag={from_tag}",
        f"To: {to or f'<sip:{user}@sipsync>'}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
        "Max-Forwards: 70",
        *headers,
        f"Content-Length: {len(body)}",
    ]
    message = parse_message("\r\n".join(lines).encode() + b"\r\n\r\n" + body)
    assert isinstance(message, SipRequest)
    return message


def answer(challenge: str, *, user: str, password: str, method: str, uri: str,
           nc: str = "00000001", header: str = "Authorization") -> str:
    """The credentials header line answering one challenge value."""
    params = dict(p.strip().split("=", 1) for p in challenge[len("Digest "):].split(", "))
    realm, nonce = params["realm"].strip('"'), params["nonce"].strip('"')
    algorithm = Algorithm.named(params["algorithm"])
    secret = ha1(user, realm, password, algorithm)
    response = expected_response(algorithm, secret, method, uri, nonce, nc, "cn")
    return (f'{header}: Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'response="{response}", algorithm={algorithm.value}, qop=auth, nc={nc}, cnonce="cn"')
