"""A SIP dialog from one side (RFC 3261 section 12): who, where, the route set, and the requests
sent within it. Sans-I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

from .endpoint import bracketed
from .message import SipRequest, SipResponse, new_branch, parse_address, stringify_uri


@dataclass(eq=False)
class Dialog:
    call_id: str
    local_uri: str  # our From/To value without the tag
    local_tag: str
    remote_uri: str
    remote_tag: str
    remote_target: str  # the other side's Contact URI
    route_set: list[str] = field(default_factory=list)
    local_cseq: int = 1
    invite_cseq: int = 1

    @classmethod
    def as_caller(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The caller's dialog from its INVITE and the 2xx: the route set is the Record-Route
        reversed, the remote target the callee's Contact."""
        to = response.headers.get_first("to") or ""
        return cls(
            call_id=invite.call_id or "",
            local_uri=_without_tag(invite.headers.get_first("from") or ""),
            local_tag=_tag(invite.headers.get_first("from") or ""),
            remote_uri=_without_tag(to),
            remote_tag=_tag(to),
            remote_target=_contact_uri(response) or invite.uri,
            route_set=list(reversed(response.headers.get("record-route"))),
            local_cseq=invite.cseq.seq,
            invite_cseq=invite.cseq.seq,
        )

    @classmethod
    def as_callee(cls, invite: SipRequest, local_tag: str) -> Dialog:
        """The callee's dialog: the route set is the INVITE's Record-Route in order."""
        return cls(
            call_id=invite.call_id or "",
            local_uri=_without_tag(invite.headers.get_first("to") or ""),
            local_tag=local_tag,
            remote_uri=_without_tag(invite.headers.get_first("from") or ""),
            remote_tag=_tag(invite.headers.get_first("from") or ""),
            remote_target=_contact_uri(invite) or "",
            route_set=list(invite.headers.get("record-route")),
            local_cseq=0,
        )

    def request(self, method: str, via_host: str, via_port: int, transport: str = "UDP", *,
                body: bytes = b"", content_type: str | None = None,
                headers: list[tuple[str, str]] | None = None) -> SipRequest:
        """A new request within the dialog (an ACK reuses the INVITE's CSeq number)."""
        if method == "ACK":
            cseq = self.invite_cseq
        else:
            self.local_cseq += 1
            cseq = self.local_cseq
        request = SipRequest(method=method, uri=self.remote_target)
        request.headers.append("Via", f"SIP/2.0/{transport} {bracketed(via_host)}:{via_port};"
                                      f"branch={new_branch()};rport")
        request.headers.append("From", f"{self.local_uri};tag={self.local_tag}")
        request.headers.append("To", f"{self.remote_uri};tag={self.remote_tag}")
        request.headers.append("Call-ID", self.call_id)
        request.headers.append("CSeq", f"{cseq} {method}")
        request.headers.append("Max-Forwards", "70")
        for route in self.route_set:
            request.headers.append("Route", route)
        for name, value in headers or ():
            request.headers.append(name, value)
        if content_type:
            request.headers.append("Content-Type", content_type)
        request.body = body
        return request


def _tag(value: str) -> str:
    for part in value.split(";")[1:]:
        key, _, tag = part.partition("=")
        if key.strip().lower() == "tag":
            return tag.strip()
    return ""


def _without_tag(value: str) -> str:
    kept = [p for p in value.split(";") if p.strip().lower().partition("=")[0] != "tag"]
    return ";".join(kept)


def _contact_uri(message: SipRequest | SipResponse) -> str | None:
    contact = message.headers.get_first("contact")
    if not contact:
        return None
    try:
        return stringify_uri(parse_address(contact).uri)
    except (ValueError, IndexError):
        return None
