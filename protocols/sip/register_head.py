"""What the registrar reads of a REGISTER, as one frozen value: the lean scanner
(`register_scan`) and the general parser (`head_of`) both produce it, so the registrar has one
input whichever way the bytes were read, and a test can compare the two readings field by field."""

from __future__ import annotations

from typing import NamedTuple

from .message import SipRequest


class RegisterHead(NamedTuple):
    """The fields of a REGISTER the registrar uses, and those its answer echoes (RFC 3261
    8.2.6). Header values are as the general parser keeps them: stripped, the first one of a
    header that comes more than once; `vias` already stamped with the source (RFC 3581).

    Immutable like the frozen dataclasses elsewhere, but a tuple: one is made for every
    REGISTER, and a tuple is built in a fraction of a frozen dataclass's time."""

    uri: str
    vias: tuple[str, ...]
    from_: str
    to: str
    call_id: str
    cseq: str
    cseq_number: int | None  # None when the CSeq cannot be read as a number
    branch: str  # of the top Via, "" when it has none
    contacts: tuple[str, ...]
    expires: str | None
    authorization: str | None
    user_agent: str | None


def head_of(request: SipRequest) -> RegisterHead:
    """The general path's reading: a request the wrapped SIP library parsed."""
    headers = request.headers
    try:
        cseq_number = request.cseq.seq
    except (ValueError, IndexError, AttributeError):
        cseq_number = None
    vias = request.via
    return RegisterHead(
        uri=request.uri,
        vias=tuple(v for v in headers.get("via") if v),
        from_=headers.get_first("from") or "",
        to=headers.get_first("to") or "",
        call_id=request.call_id or "",
        cseq=headers.get_first("cseq") or "",
        cseq_number=cseq_number,
        branch=(vias[0].branch or "") if vias else "",
        contacts=tuple(headers.get("contact")),
        expires=headers.get_first("expires"),
        authorization=headers.get_first("authorization"),
        user_agent=headers.get_first("user-agent"),
    )
