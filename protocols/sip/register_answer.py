"""Stateless answers to a REGISTER written straight to bytes from its `RegisterHead`: the same
octets `bytes(response_to(request, ...))` gives for the request it was read from, without
building the general library's message object on the way."""

from __future__ import annotations

import re
from typing import NamedTuple

from .message import REASONS, new_tag
from .register_head import RegisterHead

_TAG = re.compile(r";\s*tag\s*=", re.IGNORECASE)


class Reply(NamedTuple):
    """What a registrar answers: the status, its reason phrase (None: the standard one), the
    To tag of a final answer (None: a new one), and the headers it adds. A tuple, as
    RegisterHead is: one or two are made for every REGISTER."""

    status: int
    reason: str | None = None
    to_tag: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def write_reply(head: RegisterHead, reply: Reply) -> bytes:
    status = reply.status
    to = head.to
    if status >= 200 and not _TAG.search(to):
        to = f"{to};tag={reply.to_tag or new_tag()}"
    reason = reply.reason or REASONS.get(status, "")
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {via}" for via in head.vias]
    lines += (f"From: {head.from_}", f"To: {to}", f"Call-ID: {head.call_id}",
              f"CSeq: {head.cseq}")
    # The general writer groups values by header name, in the order names first appear.
    grouped: dict[str, list[str]] = {}
    for name, value in reply.headers:
        grouped.setdefault(name, []).append(value)
    for name, values in grouped.items():
        lines += [f"{name}: {value}" for value in values]
    lines += ("Content-Length: 0", "", "")
    return "\r\n".join(lines).encode()
