"""What RFC 3261 section 25 allows in the parts of a message sipsync relies on: the start line,
Via, CSeq, Max-Forwards, the From, To and Contact addresses, and the headers that appear once.

Each check takes text already cut into header values and returns the reason a reader of the log
will understand, or None. The patterns use possessive quantifiers only, so no input makes them
backtrack: a check costs time linear in the length of the value.
"""

from __future__ import annotations

import re

# RFC 3261 25.1: token characters, and a quoted-string with its quoted-pairs.
_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]++"
_QUOTED = r'"(?:[^"\\\r\n]|\\[^\r\n])*+"'
# A parameter value: a token, a host (IPv6 with or without brackets) or a quoted-string.
_VALUE = r"(?:[A-Za-z0-9\-.!%*_+`'~:\[\]]++|" + _QUOTED + ")"
_PARAMS = r"(?:\s*+;\s*+" + _TOKEN + r"(?:\s*+=\s*+" + _VALUE + r")?+)*+\s*+"
_HOST = r"(?:\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-.]++)"

TOKEN = re.compile(_TOKEN + r"\Z")
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*+:")
VERSION = re.compile(r"SIP/[0-9]++\.[0-9]++\Z", re.IGNORECASE)
VIA = re.compile(
    r"SIP\s*+/\s*+2\.0\s*+/\s*+" + _TOKEN + r"\s++" + _HOST + r"(?:\s*+:\s*+[0-9]{1,5}+)?+" + _PARAMS
    + r"\Z",
    re.IGNORECASE,
)
CSEQ = re.compile(r"([0-9]++)\s++(" + _TOKEN + r")\s*+\Z")
_NAME_ADDR = re.compile(
    r"(?:" + _QUOTED + "|" + _TOKEN + r"(?:\s++" + _TOKEN + r")*+)?+\s*+<[^\s<>]++>" + _PARAMS
    + r"\Z"
)
# Without angle brackets the URI may hold no ';' (that would be a header parameter), no '?'
# and no ',' (RFC 3261 20.10).
_ADDR_SPEC = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*+:[^\s<>;,?\"]++" + _PARAMS + r"\Z")

# Headers RFC 3261 defines with one value: a second copy makes the message ambiguous.
SINGLE_VALUED = frozenset(
    ("call-id", "cseq", "from", "to", "max-forwards", "content-length", "content-type")
)
# CSeq numbers are below 2**31 (RFC 3261 8.1.1.5); Max-Forwards is 0-255 (20.22).
MAX_CSEQ = 2**31 - 1
MAX_HOPS = 255


def start_line_problem(parts: list[str]) -> str | None:
    """A request line split on single spaces: Method SP Request-URI SP SIP-Version, nothing
    more (no doubled or trailing spaces, no blank inside the URI)."""
    if len(parts) != 3 or not all(parts):
        return "the request line is not METHOD SP Request-URI SP SIP/2.0"
    uri = parts[1]
    if not SCHEME.match(uri) or "<" in uri or ">" in uri:
        return f"the Request-URI {uri[:80]!r} is not an absolute URI"
    if uri[:4].lower() == "sip:" or uri[:5].lower() == "sips:":
        # A '?' in the user part is allowed; after the host it starts URI headers.
        if "?" in uri.partition("@")[2 if "@" in uri else 0]:
            return "headers are not allowed in a Request-URI"
    return None


def address_problem(name: str, value: str) -> str | None:
    """A From, To or Contact value: name-addr or addr-spec with well-formed parameters."""
    if _NAME_ADDR.match(value) or _ADDR_SPEC.match(value):
        return None
    return f"malformed {name} {value[:80]!r}"


def via_problem(value: str) -> str | None:
    if not value:
        return "an empty Via"
    if not VIA.match(value):
        return f"malformed Via {value[:80]!r}"
    return None


def cseq_problem(value: str, method: str | None) -> str | None:
    match = CSEQ.match(value.strip())
    if match is None:
        return f"malformed CSeq {value[:40]!r}"
    number = match.group(1)
    if len(number) > 10 or int(number) > MAX_CSEQ:
        return "CSeq number is not below 2**31"
    if method is not None and match.group(2) != method:
        return "CSeq method does not match the request method"
    return None


def max_forwards_problem(value: str) -> str | None:
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > MAX_HOPS:
        return f"Max-Forwards is not a number from 0 to {MAX_HOPS}: {value[:20]!r}"
    return None
