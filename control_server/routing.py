"""How the proxy passes messages on (RFC 3261 16.6, 16.7): the copy of a request it forwards
downstream, with its Via and Record-Route, and what goes back upstream, relayed or its own.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from protocols.sip.endpoint import Endpoint
from protocols.sip.message import (
    BRANCH_MAGIC,
    SipRequest,
    SipResponse,
    new_tag,
    parse_message,
    response_to,
    stamp_received,
)
from protocols.sip.effects import Effect, Transmit
from protocols.sip.transaction import ServerTransaction, TransactionLayer

# Branches we make start with this, so our own Via is recognised on the way back.
OUR_BRANCH = BRANCH_MAGIC + "ss"


def new_branch() -> str:
    return OUR_BRANCH + new_tag()


def stateless_branch(incoming: str) -> str:
    """Stateless forwarding derives its branch from the incoming one (RFC 3261 16.11), so a
    retransmission leaves with the same branch as the original."""
    return OUR_BRANCH + hashlib.sha1(incoming.encode()).hexdigest()[:16]


def without_our_via(response: SipResponse) -> SipResponse:
    """The response as the next hop upstream must see it: our top Via removed (in place)."""
    vias = response.headers.get("via")
    response.headers.remove("via")
    for via in vias[1:]:
        response.headers.append("Via", via)
    return response


@dataclass(frozen=True)
class Router:
    """The proxy's own address and the transaction layer its messages leave through."""

    me: Endpoint
    layer: TransactionLayer

    def via(self, destination: Endpoint, branch: str) -> str:
        return f"SIP/2.0/{destination.transport.upper()} {self.me.hostport};branch={branch}"

    def record_route(self, transport: str) -> str:
        return f"<sip:{self.me.hostport};transport={transport};lr>"

    def names_me(self, route: str) -> bool:
        return self.me.hostport in route

    def forward_copy(self, request: SipRequest, source: Endpoint, destination: Endpoint,
                     branch: str, uri: str | None = None) -> SipRequest:
        """A copy of a request to forward: our Route entries gone, one hop fewer, the sender's
        real address stamped on its Via (RFC 3581), our Via on top."""
        copy = parse_message(bytes(request))
        assert isinstance(copy, SipRequest)
        if uri is not None:
            copy.uri = uri
        routes = [r for r in copy.headers.get("route") if not self.names_me(r)]
        copy.headers.remove("route")
        for route in routes:
            copy.headers.append("Route", route)
        hops = copy.headers.get_first("max-forwards")
        copy.headers.set_single("Max-Forwards", str(int(hops) - 1 if hops else 69))
        vias = copy.headers.get("via")
        vias[0] = stamp_received(vias[0], source)
        copy.headers.remove("via")
        copy.headers.append("Via", self.via(destination, branch))
        for via in vias:
            copy.headers.append("Via", via)
        return copy

    def reply(self, txn: ServerTransaction, status: int, now: float, reason: str | None = None,
              headers: list[tuple[str, str]] | None = None) -> list[Effect]:
        """An answer of the proxy's own to the request of a server transaction."""
        response = response_to(txn.request, status, reason, to_tag=new_tag(), headers=headers)
        return self.layer.respond(txn, status, bytes(response), now)

    def relay(self, txn: ServerTransaction, response: SipResponse, now: float) -> list[Effect]:
        """Pass a downstream response upstream without our Via."""
        without_our_via(response)
        return self.layer.respond(txn, response.status_code, bytes(response), now)

    def relay_stateless(self, response: SipResponse) -> list[Effect]:
        """A response no transaction wants (a 2xx retransmitted by the callee): pass it upstream
        by the next Via, or drop it when the top Via is not ours."""
        vias = response.via
        if len(vias) < 2 or not (vias[0].branch or "").startswith(OUR_BRANCH):
            return []
        upstream = vias[1]
        host = upstream.params.get("received") or upstream.host
        rport = upstream.params.get("rport")
        port = int(rport) if rport else (upstream.port or 5060)
        without_our_via(response)
        return [Transmit(bytes(response), Endpoint(upstream.transport.lower(), host, port))]
