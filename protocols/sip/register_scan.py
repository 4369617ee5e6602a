"""A lean reader of REGISTER requests: one pass over the bytes for the few headers a
registrar needs, with the general parser's checks on each of them. Anything it is not sure of
(a header it does not know to be harmless, folding, several Vias, a Require, any syntax
problem) makes it step aside, and the general parser in `message` reads the request instead:
the answer is never different, only cheaper to reach."""

from __future__ import annotations

from . import syntax
from .endpoint import Endpoint
from .message import COMPACT_HEADERS, MAX_HEADER_LINE, MAX_MESSAGE_BYTES, stamp_and_branch
from .register_head import RegisterHead

# The headers the registrar reads, and those the general parser checks for every request.
_READ = frozenset(("via", "from", "to", "call-id", "cseq", "contact", "expires",
                   "authorization", "user-agent", "max-forwards", "content-length"))
# Headers that change what the general path answers when present (Require and Proxy-Require
# make a 420; a second copy of a single-valued one makes a 400): seen, the scanner steps aside.
_DEFER = (syntax.SINGLE_VALUED - _READ) | {"require", "proxy-require"}
_START = b"REGISTER "
# What a head may hold for the scanner to read it: printable ASCII, tab, CR and LF. The
# general parser splits and trims around some control characters (Python takes \x1c-\x1f for
# white space), so a head with any of them, or with non-ASCII bytes, is left to it.
_PLAIN = bytes(range(0x20, 0x7F)) + b"\t\r\n"
# The spellings devices send, looked up as they come, before the general normalising below.
_SPELLINGS = {spelling: key for key in _READ for spelling in (key, key.title(), key.upper())}
_SPELLINGS.update({"Call-ID": "call-id", "CSeq": "cseq"})
_SPELLINGS.update({spelling: full for short, full in COMPACT_HEADERS.items() if full in _READ
                   for spelling in (short, short.upper())})


def scan_register(data: bytes, source: Endpoint) -> RegisterHead | None:
    """The REGISTER in `data`, read as the general parser would, with its top Via stamped
    with `source`; None when the general parser is to read it (not a REGISTER, or one the
    scanner does not vouch for). Every other header is ignored, as the registrar ignores it."""
    if not data.startswith(_START) or len(data) > MAX_MESSAGE_BYTES:
        return None
    head, sep, body = data.partition(b"\r\n\r\n")
    # Deleting the plain bytes leaves nothing: one C pass instead of a pattern search.
    if not sep or head.translate(None, _PLAIN) or b"\r\n " in head or b"\r\n\t" in head:
        return None
    lines = head.decode("ascii").split("\r\n")
    breaks = len(lines) - 1
    if breaks > 256 or head.count(b"\n") != breaks or head.count(b"\r") != breaks:
        return None  # a bare CR or LF, or too many lines
    parts = lines[0].split(" ")
    if "\t" in lines[0]:
        return None  # the general parser splits the start line at any white space
    if len(parts) != 3 or parts[2] != "SIP/2.0" or syntax.start_line_problem(parts) is not None:
        return None
    uri = parts[1]
    if uri.partition(":")[0].lower() not in ("sip", "sips"):
        return None  # the general path answers 416
    if len(head) > MAX_HEADER_LINE and any(len(line) > MAX_HEADER_LINE for line in lines):
        return None
    values: dict[str, str] = {}
    spellings = _SPELLINGS
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = spellings.get(name)
        if key is None:
            if not colon:
                return None
            key = name.strip().lower()
            key = COMPACT_HEADERS.get(key, key)
            if key not in _READ:
                if key in _DEFER:
                    return None
                continue
        if key in values:
            return None  # a second Via or Contact, or a repeated header: the general path
        values[key] = value.strip()
    get = values.get
    via, from_, to = get("via"), get("from"), get("to")
    call_id, cseq = get("call-id"), get("cseq")
    if not (via and from_ and to and call_id and cseq):
        return None
    contact = get("contact")
    if "," in via or (contact is not None and "," in contact):
        return None  # several values in one line: split by the general parser
    if (syntax.cseq_problem(cseq, "REGISTER") or syntax.via_problem(via)
            or syntax.address_problem("From", from_) or syntax.address_problem("To", to)):
        return None
    if contact is not None and contact != "*" and syntax.address_problem("Contact", contact):
        return None
    hops = get("max-forwards")
    if hops is not None and syntax.max_forwards_problem(hops):
        return None
    declared = get("content-length")
    if declared is not None:
        if not (declared.isdigit() and len(declared) <= 10):
            return None
        length = int(declared)
        if length > MAX_MESSAGE_BYTES or (not source.reliable and len(body) < length):
            return None
    stamped, branch = stamp_and_branch(via, source)
    return RegisterHead(
        uri=uri,
        vias=(stamped,),
        from_=from_,
        to=to,
        call_id=call_id,
        cseq=cseq,
        cseq_number=int(cseq.split(None, 1)[0]),
        branch=branch,
        contacts=() if contact is None else (contact,),
        expires=get("expires"),
        authorization=get("authorization"),
        user_agent=get("user-agent"),
    )

