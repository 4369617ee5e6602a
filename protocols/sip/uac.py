"""A device's requests outside any dialog (a REGISTER, an INVITE that starts a session): the
common headers built once, and a digest challenge (401 or 407) answered by sending again."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .agent import SipAgent
from .digest_client import answer_challenges
from .endpoint import Endpoint
from .message import SipRequest, SipResponse, new_branch, new_tag

# Where a challenge comes in, and where the answer goes back (RFC 3261 22.2 and 22.3).
_CHALLENGE_HEADERS = {401: ("www-authenticate", "Authorization"),
                      407: ("proxy-authenticate", "Proxy-Authorization")}


@dataclass(frozen=True, slots=True)
class Account:
    """Who the device is to the server, and the name its requests go out under."""

    user: str
    # Read only when a challenge comes (a password file may change while the device runs).
    password: Callable[[], str]
    user_agent: str


@dataclass(eq=False)
class OutOfDialogClient:
    """The requests of one Call-ID and From tag (a registration's REGISTERs, or one session's
    INVITE), each with the next CSeq."""

    agent: SipAgent
    account: Account
    transport: str  # udp or tcp: our Via and Contact say it
    call_id: str
    from_address: str  # our From without its tag
    tag: str = field(default_factory=new_tag)
    cseq: int = 0

    def contact(self, parameters: str = "") -> str:
        """Our Contact: where the server reaches this device, with header parameters after."""
        return (f"<sip:{self.account.user}@{self.agent.hostport};transport={self.transport}>"
                f"{parameters}")

    def build(self, method: str, uri: str, to: str, *, contact: str | None = None,
              headers: list[tuple[str, str]] | None = None, body: bytes = b"",
              content_type: str | None = None) -> SipRequest:
        """The request with the next CSeq and a fresh branch."""
        self.cseq += 1
        request = SipRequest(method=method, uri=uri)
        add = request.headers.append
        add("Via", f"SIP/2.0/{self.transport.upper()} {self.agent.hostport};"
                   f"branch={new_branch()};rport")
        add("From", f"{self.from_address};tag={self.tag}")
        add("To", to)
        add("Call-ID", self.call_id)
        add("CSeq", f"{self.cseq} {method}")
        add("Contact", contact if contact is not None else self.contact())
        add("Max-Forwards", "70")
        add("User-Agent", self.account.user_agent)
        for name, value in headers or ():
            add(name, value)
        if content_type:
            add("Content-Type", content_type)
        request.body = body
        return request

    async def send(self, method: str, uri: str, to: str, destination: Endpoint, *,
                   timeout: float, digest_uri: str | None = None, contact: str | None = None,
                   headers: list[tuple[str, str]] | None = None, body: bytes = b"",
                   content_type: str | None = None) -> tuple[SipRequest, SipResponse]:
        """Send the request; when it is challenged, send it again once (next CSeq) with the
        answer. Returns the request last sent and its final response. Raises DigestError when
        no challenge can be answered, RequestTimeout when nothing comes back."""
        extra = list(headers or ())

        def request(credentials: list[tuple[str, str]]) -> SipRequest:
            return self.build(method, uri, to, contact=contact, headers=extra + credentials,
                              body=body, content_type=content_type)

        sent = request([])
        response = await self.agent.request(sent, destination, timeout=timeout)
        challenge = _CHALLENGE_HEADERS.get(response.status_code)
        if challenge is None:
            return sent, response
        asked_in, answer_in = challenge
        answer = answer_challenges(response.headers.get(asked_in), self.account.user,
                                   self.account.password(), method, digest_uri or uri)
        sent = request([(answer_in, answer)])
        return sent, await self.agent.request(sent, destination, timeout=timeout)
