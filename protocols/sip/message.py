"""SIP messages: parsing at the edge into aiosipua's types, validation, and building responses.

The only module that imports aiosipua; everything else in sipsync takes its SIP types from here.
"""

from __future__ import annotations

import os
import re

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

from . import syntax
from .endpoint import Endpoint

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
    "COMPACT_HEADERS",
    "REASONS",
    "new_branch",
    "new_tag",
    "note_source",
    "parse_address",
    "parse_auth",
    "parse_message",
    "parse_uri",
    "parse_via",
    "response_to",
    "stamp_and_branch",
    "stamp_received",
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
_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)


class SipParseError(ValueError):
    """A message that cannot be understood; `request` is set when an answer can still be sent,
    and `status` is that answer (400, or 505 for a SIP version other than 2.0)."""

    def __init__(self, reason: str, request: SipRequest | None = None, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.request = request
        self.status = status


def parse_message(data: bytes, *, stream: bool = False) -> SipRequest | SipResponse:
    """Parse and validate one message; raise SipParseError with a reason a log reader understands.

    Over a datagram the body must be at least as long as Content-Length says, and the octets
    after it are ignored (RFC 3261 18.3); a stream framer has already cut the message to
    Content-Length.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipParseError("no blank line after the headers")
    if any(len(line) > MAX_HEADER_LINE for line in head.split(b"\r\n")):
        raise SipParseError(f"a header line is longer than {MAX_HEADER_LINE} bytes")
    breaks = head.count(b"\n")
    if head.count(b"\r\n") != breaks or head.count(b"\r") != breaks:
        raise SipParseError("a bare CR or LF in the headers")
    try:
        message, start, repeated = _read(head, body)
    except (ValueError, IndexError) as exc:
        raise SipParseError(f"unparsable message: {exc}") from None
    if isinstance(message, SipRequest):
        _check_request(message, start, repeated)
    else:
        _check_response(message, repeated)
    request = message if isinstance(message, SipRequest) else None
    declared = message.headers.get_first("content-length")
    if declared is not None:
        declared = declared.strip()
        if not (declared.isascii() and declared.isdigit()):
            if declared[:1] == "-" and declared[1:].isdigit():
                raise SipParseError(f"Content-Length out of range: {declared}", request)
            raise SipParseError(f"Content-Length is not a number: {declared!r}", request)
        length = int(declared) if len(declared) <= 10 else MAX_MESSAGE_BYTES + 1
        if length > MAX_MESSAGE_BYTES:
            raise SipParseError(f"Content-Length out of range: {length}", request)
        if not stream and len(body) < length:
            raise SipParseError(
                f"body is {len(body)} bytes but Content-Length says {length}", request
            )
    return message


def _check_request(request: SipRequest, start: str, repeated: set[str] | None) -> None:
    """The request line, the mandatory headers and the syntax of those sipsync reads."""
    parts = start.split(" ")
    problem = syntax.start_line_problem(parts)
    if problem is None:
        version = parts[2]
        if version != "SIP/2.0" and version.upper() != "SIP/2.0":
            if syntax.VERSION.match(version):
                raise SipParseError(f"{version} is not supported, only SIP/2.0", request, 505)
            problem = "request line does not end in SIP/2.0"
    if problem is not None:
        raise SipParseError(problem, request)
    _check_headers(request, request.method, repeated)


def _check_response(response: SipResponse, repeated: set[str] | None) -> None:
    if not 100 <= response.status_code <= 699:
        raise SipParseError(f"status code {response.status_code} out of range")
    try:
        _check_headers(response, None, repeated)
    except SipParseError as error:
        raise SipParseError(error.reason) from None  # a response is never answered


def _check_headers(message: SipMessage, method: str | None, repeated: set[str] | None) -> None:
    request = message if isinstance(message, SipRequest) else None
    store = message.headers._store
    missing = [name for name in _MANDATORY if not store.get(name) or not store[name][0]]
    if missing:
        raise SipParseError("missing mandatory header(s): " + ", ".join(missing), request)
    if repeated:
        raise SipParseError("header(s) that may appear once appear twice: "
                            + ", ".join(sorted(repeated)), request)
    problem = syntax.cseq_problem(store["cseq"][0], method)
    for value in store["via"]:
        problem = problem or syntax.via_problem(value)
    for name in ("from", "to"):
        problem = problem or syntax.address_problem(name.capitalize(), store[name][0])
    contacts = store.get("contact")
    if contacts and not (len(contacts) == 1 and contacts[0] == "*"):
        for value in contacts:
            problem = problem or syntax.address_problem("Contact", value)
    hops = store.get("max-forwards")
    if hops:
        problem = problem or syntax.max_forwards_problem(hops[0])
    if problem is not None:
        raise SipParseError(problem, request)
    message.via  # noqa: B018 - every Via parsed once here, so none fails on the hot path later


def _read(head: bytes, body: bytes) -> tuple[SipRequest | SipResponse, str, set[str] | None]:
    """aiosipua's parse in one pass, without per-character splitting of values that hold no
    comma: the registrar's hot path. Folded lines are joined as aiosipua joins them. Returns
    the message, its start line as it came, and the single-valued headers that came twice. Fills
    aiosipua's header container directly (its layout is pinned with the dependency's version;
    a test compares the result with aiosipua's own parser)."""
    lines = head.decode("utf-8", errors="replace").split("\r\n")
    if len(lines) > 257:
        raise ValueError(f"too many headers ({len(lines) - 1})")
    header_lines = lines[1:]
    if b"\r\n " in head or b"\r\n\t" in head:
        header_lines = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and header_lines:
                header_lines[-1] += " " + line.strip()
            else:
                header_lines.append(line)
    headers = CaseInsensitiveDict()
    store, original = headers._store, headers._original
    repeated = None
    for line in header_lines:
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
        elif key in syntax.SINGLE_VALUED:
            repeated = (repeated or set()) | {key}
        if "," in value and key in MULTI_INSTANCE_HEADERS:
            values.extend(_split_multi_value(value))
        else:
            values.append(value)
    declared = store.get("content-length")
    if declared and declared[0].isdigit():
        body = body[: int(declared[0])]
    start = lines[0]
    if start.startswith("SIP/"):
        parts = start.strip().split(None, 2)
        code = int(parts[1]) if len(parts) > 1 and len(parts[1]) == 3 and parts[1].isdigit() else 0
        reason = parts[2] if len(parts) > 2 else ""
        response = SipResponse(headers=headers, body=body, status_code=code,
                               reason_phrase=reason)
        return response, start, repeated
    parts = start.split(None, 2)
    if not parts or not syntax.TOKEN.match(parts[0]):
        raise ValueError("no start line")
    if len(parts) < 3:
        raise ValueError(f"Malformed request line: {start[:80]!r}")
    return SipRequest(headers=headers, body=body, method=parts[0], uri=parts[1]), start, repeated


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
    """A response echoing Via, From, To, Call-ID and CSeq, as RFC 3261 8.2.6 asks.

    A final response carries a To tag (8.2.6.2): `to_tag`, or a new one when none is given.
    Only the first value of a single-valued header is echoed, and no empty Via.
    """
    response = SipResponse(status_code=status, reason_phrase=reason or REASONS.get(status, ""))
    append = response.headers.append
    for value in request.headers.get("via"):
        if value:
            append("Via", value)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get_first(name)
        if value is None:
            continue
        if name == "To" and status >= 200 and not _TAG.search(value):
            value = f"{value};tag={to_tag or new_tag()}"
        append(name, value)
    for name, value in headers or ():
        append(name, value)
    response.body = body
    return response


def stamp_received(via: str, source: Endpoint) -> str:
    """A Via noting where its request really came from: `received` with the source address,
    and `rport` filled with the source port when the sender asked for it (RFC 3581 4)."""
    return stamp_and_branch(via, source)[0]


def stamp_and_branch(via: str, source: Endpoint) -> tuple[str, str]:
    """`stamp_received`'s Via, and its branch parameter read in the same pass over the
    parameters, as the library reads Via parameters: names in any case, the last one
    winning, a bare `branch` counting as none ("" when there is none)."""
    head, _, rest = via.partition(";")
    params = []
    branch = ""
    for param in rest.split(";"):
        name, equals, value = param.partition("=")
        name = name.strip().lower()
        if not name or name == "received":
            continue
        if name == "branch":
            branch = value.strip() if equals else ""
        elif name == "rport" and not value.strip():
            param = f"rport={source.port}"
        params.append(param)
    params.append(f"received={source.host}")
    return head + ";" + ";".join(params), branch


def note_source(request: SipRequest, source: Endpoint) -> None:
    """Stamp the request's top Via with its source, in place, so that every response built
    from it goes back with `received` and `rport` filled."""
    vias = request.headers._store.get("via")
    if vias and vias[0]:
        vias[0] = stamp_received(vias[0], source)
