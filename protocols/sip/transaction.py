"""SIP transactions (RFC 3261 section 17, RFC 6026): matching messages to transactions, and
their timers, driven by the table in `transaction_state`.

The layer never touches a socket or a clock: callers pass `now`, send the `Transmit` effects it
returns, and call `expire(now)` at `next_deadline()`. Requests and responses arrive parsed.
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass, field
from typing import Any

from .effects import T2, ClientTimeout, Effect, StartTimer, Timer, Transmit
from .endpoint import Endpoint
from .message import SipRequest, SipResponse
from .transaction_state import (
    INITIAL_STATE,
    INITIAL_TIMERS,
    TRANSITIONS,
    Action,
    Event,
    Machine,
    State,
    Transition,
    response_event,
)


def server_key(request: SipRequest) -> tuple[str, str, str]:
    """RFC 3261 17.2.3: branch, sent-by and method; an ACK matches its INVITE."""
    via = request.via[0]
    method = "INVITE" if request.method == "ACK" else request.method
    return (via.branch or "", f"{via.host}:{via.port or 5060}", method)


@dataclass(eq=False)
class _Transaction:
    machine: Machine
    state: State
    reliable: bool
    retransmit_at: float | None = None
    retransmit_timer: Timer | None = None
    interval: float = 0.0
    deadline: float | None = None
    # What the layer's user hangs on the transaction (a proxy context, a registrar note...).
    context: Any = None

    @property
    def is_invite(self) -> bool:
        return self.machine in (Machine.INVITE_CLIENT, Machine.INVITE_SERVER)


@dataclass(eq=False)
class ServerTransaction(_Transaction):
    key: tuple[str, str, str] = ("", "", "")
    request: SipRequest = field(default_factory=lambda: SipRequest("", ""))
    source: Endpoint = field(default_factory=lambda: Endpoint("udp", "", 0))
    last_response: bytes | None = None
    last_status: int = 0


@dataclass(eq=False)
class ClientTransaction(_Transaction):
    key: tuple[str, str] = ("", "")
    request: SipRequest = field(default_factory=lambda: SipRequest("", ""))
    data: bytes = b""
    destination: Endpoint = field(default_factory=lambda: Endpoint("udp", "", 0))
    ack: bytes | None = None


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
            _, effects = self._step(txn, Event.RECEIVED_REQUEST_AGAIN, now)
            return None, effects
        invite = request.method == "INVITE"
        machine = Machine.INVITE_SERVER if invite else Machine.NON_INVITE_SERVER
        txn = ServerTransaction(
            machine=machine,
            state=INITIAL_STATE[machine],
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
        if txn is None:
            return False
        transition, _ = self._step(txn, Event.RECEIVED_ACK, now)
        return transition is not None and Action.ABSORB in transition.actions

    def invite_for_cancel(self, cancel: SipRequest) -> ServerTransaction | None:
        """The INVITE server transaction a CANCEL refers to (same branch and sent-by)."""
        branch, sent_by, _ = server_key(cancel)
        return self.servers.get((branch, sent_by, "INVITE"))

    def respond(
        self, txn: ServerTransaction, status: int, data: bytes, now: float
    ) -> list[Effect]:
        """Send a response on a server transaction and move its state."""
        _, effects = self._step(txn, response_event(status, sent=True), now,
                                status=status, data=data)
        return effects

    # -- client side ---------------------------------------------------------------------------

    def send_request(
        self, request: SipRequest, destination: Endpoint, now: float, context: Any = None
    ) -> tuple[ClientTransaction, list[Effect]]:
        """Start a client transaction; the request's top Via must carry a fresh branch."""
        data = bytes(request)
        key = (request.via[0].branch or "", request.method)
        invite = request.method == "INVITE"
        machine = Machine.INVITE_CLIENT if invite else Machine.NON_INVITE_CLIENT
        txn = ClientTransaction(
            machine=machine,
            state=INITIAL_STATE[machine],
            reliable=destination.reliable,
            key=key,
            request=request,
            data=data,
            destination=destination,
            context=context,
        )
        self.clients[key] = txn
        for start in INITIAL_TIMERS[machine]:
            self._start(txn, start.timer, now)
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
        txn = self.clients.get((vias[0].branch or "", response.cseq.method))
        if txn is None:
            return None, []
        transition, effects = self._step(
            txn, response_event(response.status_code, sent=False), now, response=response
        )
        if transition is None or Action.PASS_UP not in transition.actions:
            return None, effects
        return txn, effects

    # -- timers --------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def expire(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        while self._timers and self._timers[0][0] <= now:
            _, _, txn = heapq.heappop(self._timers)
            if txn.state is State.TERMINATED:
                continue
            # Heap entries go stale when a timer is rearmed or stopped: the transaction's own
            # fields say what is due.
            if txn.deadline is not None and txn.deadline <= now:
                effects += self._step(txn, Event.DEADLINE, now)[1]
            elif txn.retransmit_at is not None and txn.retransmit_at <= now:
                effects += self._step(txn, Event.RETRANSMIT_DUE, now)[1]
        return effects

    # -- the table at work ---------------------------------------------------------------------

    def _step(
        self,
        txn: _Transaction,
        event: Event,
        now: float,
        *,
        status: int = 0,
        data: bytes = b"",
        response: SipResponse | None = None,
    ) -> tuple[Transition | None, list[Effect]]:
        """Look the transition up and carry out its actions; None when the table ignores
        the event in this state."""
        transition = TRANSITIONS.get((txn.machine, txn.state, event))
        if transition is None:
            return None, []
        effects: list[Effect] = []
        for action in transition.actions:
            if isinstance(action, StartTimer):
                self._start(txn, action.timer, now)
            elif action is Action.SEND_RESPONSE:
                assert isinstance(txn, ServerTransaction)
                txn.last_response, txn.last_status = data, status
                effects.append(Transmit(data, txn.source))
            elif action is Action.PASS_RESPONSE:
                assert isinstance(txn, ServerTransaction)
                effects.append(Transmit(data, txn.source))
            elif action is Action.RESEND_RESPONSE:
                assert isinstance(txn, ServerTransaction)
                if txn.last_response is not None:
                    effects.append(Transmit(txn.last_response, txn.source))
            elif action is Action.RESEND_REQUEST:
                assert isinstance(txn, ClientTransaction)
                effects.append(Transmit(txn.data, txn.destination))
            elif action is Action.BACK_OFF:
                assert txn.retransmit_timer is not None
                txn.interval = txn.retransmit_timer.back_off(txn.interval)
                self._arm(txn, retransmit_at=now + txn.interval)
            elif action is Action.SEND_ACK:
                assert isinstance(txn, ClientTransaction) and response is not None
                txn.ack = bytes(ack_for(txn.request, response))
                effects.append(Transmit(txn.ack, txn.destination))
            elif action is Action.RESEND_ACK:
                assert isinstance(txn, ClientTransaction)
                if txn.ack:
                    effects.append(Transmit(txn.ack, txn.destination))
            elif action is Action.STOP_RETRANSMIT:
                txn.retransmit_at = None
            elif action is Action.STOP_DEADLINE:
                txn.deadline = None
            elif action is Action.SLOW_RETRANSMIT:
                if not txn.reliable:
                    txn.interval = T2
            elif action is Action.TIME_OUT:
                assert isinstance(txn, ClientTransaction)
                effects.append(ClientTimeout(txn))
            # PASS_UP and ABSORB are read by the caller.
        txn.state = transition.to
        if transition.to is State.TERMINATED:
            self._terminate(txn)
        return transition, effects

    def _start(self, txn: _Transaction, timer: Timer, now: float) -> None:
        if timer.retransmits:
            if txn.reliable:
                return  # a reliable transport retransmits by itself
            txn.retransmit_timer = timer
            txn.interval = timer.duration(False)
            self._arm(txn, retransmit_at=now + txn.interval)
        else:
            self._arm(txn, deadline=now + timer.duration(txn.reliable))

    def _arm(self, txn: _Transaction, *, retransmit_at: float | None = None,
             deadline: float | None = None) -> None:
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
