"""SIP transactions (RFC 3261 section 17, RFC 6026) as a sans-I/O state machine with timers.

The layer never touches a socket or a clock: callers pass `now`, send the `Transmit` effects it
returns, and call `expire(now)` at `next_deadline()`. Requests and responses arrive parsed.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .endpoint import Endpoint
from .message import SipRequest, SipResponse

T1 = 0.5
T2 = 4.0
T4 = 5.0


class State(Enum):
    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(frozen=True, slots=True)
class Transmit:
    data: bytes
    destination: Endpoint


@dataclass(frozen=True, slots=True)
class ClientTimeout:
    """A client transaction got no final response in time (timer B or F)."""

    transaction: ClientTransaction


Effect = Transmit | ClientTimeout


def server_key(request: SipRequest) -> tuple[str, str, str]:
    """RFC 3261 17.2.3: branch, sent-by and method; an ACK matches its INVITE."""
    via = request.via[0]
    method = "INVITE" if request.method == "ACK" else request.method
    return (via.branch or "", f"{via.host}:{via.port or 5060}", method)


@dataclass(eq=False)
class _Transaction:
    state: State
    reliable: bool
    retransmit_at: float | None = None
    interval: float = T1
    deadline: float | None = None
    # What the layer's user hangs on the transaction (a proxy context, a registrar note...).
    context: Any = None


@dataclass(eq=False)
class ServerTransaction(_Transaction):
    key: tuple[str, str, str] = ("", "", "")
    request: SipRequest = field(default_factory=lambda: SipRequest("", ""))
    source: Endpoint = field(default_factory=lambda: Endpoint("udp", "", 0))
    last_response: bytes | None = None
    last_status: int = 0

    @property
    def is_invite(self) -> bool:
        return self.key[2] == "INVITE"


@dataclass(eq=False)
class ClientTransaction(_Transaction):
    key: tuple[str, str] = ("", "")
    request: SipRequest = field(default_factory=lambda: SipRequest("", ""))
    data: bytes = b""
    destination: Endpoint = field(default_factory=lambda: Endpoint("udp", "", 0))
    ack: bytes | None = None

    @property
    def is_invite(self) -> bool:
        return self.key[1] == "INVITE"


class TransactionLayer:
    def __init__(self) -> None:
        self.servers: dict[tuple[str, str, str], ServerTransaction] = {}
        self.clients: dict[tuple[str, str], ClientTransaction] = {}
        self._timers: list[tuple[float, int, _Transaction]] = []
        self._order = itertools.count()

    # -- server side ---------------------------------------------------------------------------

    def receive_request(
        self, request: SipRequest, source: Endpoint, now: float
    ) -> tuple[ServerTransaction | None, list[Effect]]:
        """Match a request (not an ACK: see `absorb_ack`) to a server transaction.

        Returns (a new transaction, []) when the request is new and must go to the core, or
        (None, effects) when it is a retransmission, answered from the transaction's state.
        """
        key = server_key(request)
        txn = self.servers.get(key)
        if txn is not None:
            if txn.last_response is not None and txn.state in (
                State.PROCEEDING,
                State.COMPLETED,
            ):
                return None, [Transmit(txn.last_response, txn.source)]
            return None, []
        txn = ServerTransaction(
            state=State.PROCEEDING if request.method == "INVITE" else State.TRYING,
            reliable=source.reliable,
            key=key,
            request=request,
            source=source,
        )
        self.servers[key] = txn
        return txn, []

    def absorb_ack(self, ack: SipRequest, now: float) -> bool:
        """True when the ACK belongs to a non-2xx final response of ours and ends here;
        False for the ACK of a 2xx, which is end to end and the core routes."""
        txn = self.servers.get(server_key(ack))
        if txn is None or txn.state not in (State.COMPLETED, State.CONFIRMED):
            return False
        if txn.state is State.COMPLETED:
            txn.state = State.CONFIRMED
            txn.retransmit_at = None
            self._arm(txn, deadline=now + (0 if txn.reliable else T4))  # timer I
        return True

    def invite_for_cancel(self, cancel: SipRequest) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (same branch and sent-by)."""
        branch, sent_by, _ = server_key(cancel)
        return self.servers.get((branch, sent_by, "INVITE"))

    def respond(
        self, txn: ServerTransaction, status: int, data: bytes, now: float
    ) -> list[Effect]:
        """Send a response on a server transaction and move its state."""
        if txn.state in (State.TERMINATED, State.CONFIRMED):
            return []
        if txn.state is State.ACCEPTED:
            # RFC 6026: 2xx retransmissions from the callee pass through.
            return [Transmit(data, txn.source)] if 200 <= status < 300 else []
        if txn.state is State.COMPLETED:
            return []
        txn.last_response = data
        txn.last_status = status
        if status < 200:
            if txn.state is State.TRYING:
                txn.state = State.PROCEEDING
            return [Transmit(data, txn.source)]
        if txn.is_invite and status < 300:
            txn.state = State.ACCEPTED
            self._arm(txn, deadline=now + 64 * T1)  # timer L
        elif txn.is_invite:
            txn.state = State.COMPLETED
            if not txn.reliable:
                txn.interval = T1
                self._arm(txn, retransmit_at=now + T1)  # timer G
            self._arm(txn, deadline=now + 64 * T1)  # timer H
        else:
            txn.state = State.COMPLETED
            self._arm(txn, deadline=now + (0 if txn.reliable else 64 * T1))  # timer J
        return [Transmit(data, txn.source)]

    # -- client side ---------------------------------------------------------------------------

    def send_request(
        self, request: SipRequest, destination: Endpoint, now: float, context: Any = None
    ) -> tuple[ClientTransaction, list[Effect]]:
        """Start a client transaction; the request's top Via must carry a fresh branch."""
        data = bytes(request)
        key = (request.via[0].branch or "", request.method)
        txn = ClientTransaction(
            state=State.CALLING if request.method == "INVITE" else State.TRYING,
            reliable=destination.reliable,
            key=key,
            request=request,
            data=data,
            destination=destination,
            context=context,
        )
        self.clients[key] = txn
        if not txn.reliable:
            self._arm(txn, retransmit_at=now + T1)  # timer A or E
        self._arm(txn, deadline=now + 64 * T1)  # timer B or F
        return txn, [Transmit(data, destination)]

    def receive_response(
        self, response: SipResponse, now: float
    ) -> tuple[ClientTransaction | None, list[Effect]]:
        """Match a response to a client transaction.

        Returns the transaction when the response must go to the core, or None when it matched
        nothing (the caller may forward it statelessly) or was absorbed.
        """
        vias = response.via
        if not vias:
            return None, []
        key = (vias[0].branch or "", response.cseq.method)
        txn = self.clients.get(key)
        if txn is None:
            return None, []
        status = response.status_code
        if txn.state is State.COMPLETED:
            # A retransmitted final response: the ACK we sent was lost.
            return None, [Transmit(txn.ack, txn.destination)] if txn.ack else []
        if txn.state is State.TERMINATED:
            return None, []
        if status < 200:
            if txn.state in (State.CALLING, State.TRYING):
                txn.state = State.PROCEEDING
                if txn.is_invite:
                    # The proxy's timer C takes over from timer B once the callee is alive.
                    txn.retransmit_at = None
                    txn.deadline = None
                elif not txn.reliable:
                    txn.interval = T2
            return txn, []
        if txn.is_invite and status < 300:
            self._terminate(txn)
            return txn, []
        if txn.is_invite:
            txn.ack = bytes(ack_for(txn.request, response))
            txn.state = State.COMPLETED
            txn.retransmit_at = None
            self._arm(txn, deadline=now + (0 if txn.reliable else 32.0))  # timer D
            return txn, [Transmit(txn.ack, txn.destination)]
        txn.state = State.COMPLETED
        txn.retransmit_at = None
        self._arm(txn, deadline=now + (0 if txn.reliable else T4))  # timer K
        return txn, []

    # -- timers --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def expire(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        while self._timers and self._timers[0][0] <= now:
            due, _, txn = heapq.heappop(self._timers)
            if txn.state is State.TERMINATED:
                continue
            if txn.deadline is not None and txn.deadline <= now:
                self._on_deadline(txn, effects)
            elif txn.retransmit_at is not None and txn.retransmit_at <= now:
                self._retransmit(txn, now, effects)
        return effects

    def _retransmit(self, txn: _Transaction, now: float, effects: list[Effect]) -> None:
        if isinstance(txn, ServerTransaction):
            if txn.last_response is not None:
                effects.append(Transmit(txn.last_response, txn.source))
            txn.interval = min(txn.interval * 2, T2)  # timer G
        else:
            assert isinstance(txn, ClientTransaction)
            effects.append(Transmit(txn.data, txn.destination))
            # Timer A doubles without bound; timer E stops at T2.
            txn.interval = txn.interval * 2 if txn.is_invite else min(txn.interval * 2, T2)
        self._arm(txn, retransmit_at=now + txn.interval)

    def _on_deadline(self, txn: _Transaction, effects: list[Effect]) -> None:
        if isinstance(txn, ClientTransaction) and txn.state in (
            State.CALLING,
            State.TRYING,
            State.PROCEEDING,
        ):
            effects.append(ClientTimeout(txn))
        self._terminate(txn)

    def _arm(
        self, txn: _Transaction, *, retransmit_at: float | None = None, deadline: float | None = None
    ) -> None:
        if retransmit_at is not None:
            txn.retransmit_at = retransmit_at
            heapq.heappush(self._timers, (retransmit_at, next(self._order), txn))
        if deadline is not None:
            txn.deadline = deadline
            heapq.heappush(self._timers, (deadline, next(self._order), txn))

    def _terminate(self, txn: _Transaction) -> None:
        txn.state = State.TERMINATED
        txn.retransmit_at = None
        txn.deadline = None
        if isinstance(txn, ServerTransaction):
            self.servers.pop(txn.key, None)
        elif isinstance(txn, ClientTransaction):
            self.clients.pop(txn.key, None)


def ack_for(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The hop-by-hop ACK for a non-2xx final response (RFC 3261 17.1.1.3)."""
    ack = SipRequest(method="ACK", uri=invite.uri)
    ack.headers.append("via", invite.headers.get("via")[0])
    for name in ("from", "call-id"):
        ack.headers.append(name, invite.headers.get_first(name) or "")
    ack.headers.append("to", response.headers.get_first("to") or "")
    ack.headers.append("cseq", f"{invite.cseq.seq} ACK")
    for route in invite.headers.get("route"):
        ack.headers.append("route", route)
    ack.headers.append("max-forwards", "70")
    return ack


def cancel_for(invite: SipRequest) -> SipRequest:
    """A CANCEL for a pending INVITE: same Request-URI, top Via, Call-ID, From, To and CSeq number."""
    cancel = SipRequest(method="CANCEL", uri=invite.uri)
    cancel.headers.append("via", invite.headers.get("via")[0])
    for name in ("from", "to", "call-id"):
        cancel.headers.append(name, invite.headers.get_first(name) or "")
    cancel.headers.append("cseq", f"{invite.cseq.seq} CANCEL")
    for route in invite.headers.get("route"):
        cancel.headers.append("route", route)
    cancel.headers.append("max-forwards", "70")
    return cancel
