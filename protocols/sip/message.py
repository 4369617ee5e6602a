"""SIP messages: parsing at the edge into aiosipua's types, validation, and building responses.

The only module that imports aiosipua; everything else in sipsync takes its SIP types from here.
"""

from __future__ import annotations

import os

from aiosipua.header_codec import (
    parse_address,
    parse_auth,
    parse_uri,
    parse_via,
    stringify_address,
    stringify_auth,
    stringify_uri,
    stringify_via,
)
from aiosipua.headers import (
    COMPACT_HEADERS,
    MULTI_INSTANCE_HEADERS,
    Address,
    AuthChallenge,
    AuthCredentials,
    CaseInsensitiveDict,
    SipUri,
    Via,
)
from aiosipua.message import SipMessage, SipRequest, SipResponse, _split_multi_value

__all__ = [
    "Address",
    "AuthChallenge",
    "AuthCredentials",
    "MAX_MESSAGE_BYTES",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipUri",
    "Via",
    "BRANCH_MAGIC",
    "REASONS",
    "new_branch",
    "new_tag",
    "parse_address",
    "parse_auth",
    "parse_message",
    "parse_uri",
    "parse_via",
    "response_to",
    "stringify_address",
    "stringify_auth",
    "stringify_uri",
    "stringify_via",
    "user_of",
]

# One UDP datagram, and a generous cap for a message framed on a stream.
MAX_MESSAGE_BYTES = 65_535
MAX_HEADER_LINE = 8_192
BRANCH_MAGIC = "z9hG4bK"

REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    423: "Interval Too Brief",
    429: "Too Many Requests",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
}

_MANDATORY = ("via", "from", "to", "call-id", "cseq")


class SipParseError(ValueError):
    """A message that cannot be understood; `request` is set when a 400 can still be sent."""

    def __init__(self, reason: str, request: SipRequest | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request = request


def parse_message(data: bytes, *, stream: bool = False) -> SipRequest | SipResponse:
    """Parse and validate one message; raise SipParseError with a reason a log reader understands.

    Over a datagram the body must be exactly as long as Content-Length says (RFC 3261 18.3);
    a stream framer has already cut the message to Content-Length.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no blank line after the headers")
    if any(len(line) > MAX_HEADER_LINE for line in head.split(b"\r\n")):
        raise SipParseError(f"a header line is longer than {MAX_HEADER_LINE} bytes")
    if not head[:1].isalpha():
        raise SipParseError("no start line")
    try:
        message = SipMessage.parse(data) if b"\r\n " in head or b"\r\n\t" in head else _read(head, body)
    except (ValueError, IndexError) as exc:
        raise SipParseError(f"unparsable message: {exc}") from None
    if isinstance(message, SipRequest):
        first_line = head.split(b"\r\n", 1)[0]
        if not first_line.endswith(b" SIP/2.0"):
            raise SipParseError("request line does not end in SIP/2.0")
    elif not 100 <= message.status_code <= 699:
        raise SipParseError(f"status code {message.status_code} out of range")
    request = message if isinstance(message, SipRequest) else None
    missing = [name for name in _MANDATORY if not message.headers.get_first(name)]
    if missing:
        raise SipParseError("missing mandatory header(s): " + ", ".join(missing), request)
    try:
        cseq = message.cseq
        message.via  # noqa: B018 - parse every Via now, not on the hot path later
    except (ValueError, IndexError) as exc:
        raise SipParseError(f"malformed CSeq or Via: {exc}", request) from None
    if request is not None and cseq.method != request.method:
        raise SipParseError("CSeq method does not match the request method", request)
    declared = message.headers.get_first("content-length")
    if declared is not None:
        try:
            length = int(declared.strip())
        except ValueError:
            raise SipParseError(f"Content-Length is not a number: {declared!r}", request) from None
        if length < 0 or length > MAX_MESSAGE_BYTES:
            raise SipParseError(f"Content-Length out of range: {length}", request)
        if not stream and len(body) < length:
            raise SipParseError(
                f"body is {len(body)} bytes but Content-Length says {length}", request
            )
    return message


def _read(head: bytes, body: bytes) -> SipRequest | SipResponse:
    """aiosipua's parse for unfolded headers, in one pass and without per-character splitting of
    values that hold no comma: the registrar's hot path. Fills aiosipua's header container
    directly (its layout is pinned with the dependency's version; a test compares the result
    with aiosipua's own parser)."""
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    if len(lines) > 257:
        raise ValueError(f"too many headers ({len(lines) - 1})")
    headers = CaseInsensitiveDict()
    store, original = headers._store, headers._original
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.strip()
        key = name.lower()
        if key in COMPACT_HEADERS:
            name = key = COMPACT_HEADERS[key]
        value = value.strip()
        values = store.get(key)
        if values is None:
            values = store[key] = []
            original[key] = name
        if "," in value and key in MULTI_INSTANCE_HEADERS:
            values.extend(_split_multi_value(value))
        else:
            values.append(value)
    declared = store.get("content-length")
    if declared and declared[0].isdigit():
        body = body[: int(declared[0])]
    start = lines[0].strip()
    parts = start.split(None, 2)
    if start.startswith("SIP/"):
        code = int(parts[1]) if len(parts) > 1 else 0
        reason = parts[2] if len(parts) > 2 else ""
        return SipResponse(headers=headers, body=body, status_code=code, reason_phrase=reason)
    if len(parts) < 3:
        raise ValueError(f"Malformed request line: {start!r}")
    return SipRequest(headers=headers, body=body, method=parts[0], uri=parts[1])


def user_of(uri_text: str) -> str:
    """The user part of a SIP URI inside a header value (`<sip:alice@host;...>`)."""
    start = uri_text.find("sip:")
    if start < 0:
        start = uri_text.find("sips:")
        if start < 0:
            return ""
        start += 1
    at = uri_text.find("@", start + 4)
    if at < 0:
        return ""
    return uri_text[start + 4 : at]


def uri_param(uri: str, name: str) -> str | None:
    """A parameter of a SIP URI (`sip:alice@realm;device=phone`), None when absent or empty."""
    for part in uri.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip() or None
    return None


def new_branch() -> str:
    return BRANCH_MAGIC + os.urandom(8).hex()


def new_tag() -> str:
    return os.urandom(6).hex()


def response_to(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
) -> SipResponse:
    """A response echoing Via, From, To, Call-ID and CSeq, as RFC 3261 8.2.6 asks."""
    response = SipResponse(status_code=status, reason_phrase=reason or REASONS.get(status, ""))
    for name in _MANDATORY:
        for value in request.headers.get(name):
            if name == "to" and to_tag and ";tag=" not in value:
                value = f"{value};tag={to_tag}"
            response.headers.append(name, value)
    for name, value in headers or ():
        response.headers.append(name, value)
    response.body = body
    return response
