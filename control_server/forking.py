"""Parallel forking of an admitted INVITE (RFC 3261 16.7, 16.8, 16.10): one branch per target
device, the first 2xx wins and the others are cancelled, the best failure goes back when all
fail, CANCEL from the caller, and timer C for a device that rings too long.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from protocols.sip.endpoint import Endpoint
from protocols.sip.message import SipMessage, SipRequest, SipResponse, new_tag, response_to
from protocols.sip.effects import Effect, Transmit
from protocols.sip.transaction import ClientTransaction, ServerTransaction, cancel_for

from .location import Binding
from .routing import Router, new_branch
from .sessions import Session, SessionRegistry

# What a descriptor body tells about a session: data type, protocol, dataset.
Describe = Callable[[SipMessage], tuple[str | None, str | None, str | None]]


@dataclass(eq=False)
class Branch:
    """One forwarded copy of an INVITE, towards one registered device."""

    fork: Fork
    binding: Binding
    txn: ClientTransaction | None = None
    final: int = 0


@dataclass(eq=False)
class Fork:
    """The state of one proxied INVITE: its server transaction and its branches."""

    server: ServerTransaction
    session: Session
    branches: list[Branch] = field(default_factory=list)
    best: SipResponse | None = None
    answered: bool = False
    cancelled: bool = False
    done: bool = False


def rank(status: int) -> tuple[int, int]:
    """Which final response to pass back when every branch failed (RFC 3261 16.7 step 6):
    the lowest rank wins."""
    if 600 <= status < 700:
        return (0, status)
    if status in (401, 407, 415, 420, 484):
        return (1, status)
    if 400 <= status < 500:
        return (2, status)
    return (3, status)


class Forker:
    """Runs every fork of the proxy and the ring deadlines (timer C) they are held to."""

    def __init__(self, router: Router, sessions: SessionRegistry, ring_timeout: float,
                 describe: Describe) -> None:
        self.router = router
        self.sessions = sessions
        self.ring_timeout = ring_timeout
        self.describe = describe
        self._ring_deadlines: list[tuple[float, int, Fork]] = []
        self._order = itertools.count()

    def start(self, txn: ServerTransaction, session: Session, targets: list[Binding],
              now: float) -> list[Effect]:
        """Forward the INVITE of `txn` to every target at once."""
        fork = Fork(server=txn, session=session)
        txn.context = fork
        effects: list[Effect] = []
        for binding in targets:
            branch = Branch(fork=fork, binding=binding)
            fork.branches.append(branch)
            effects += self._send_branch(branch, now)
        heapq.heappush(self._ring_deadlines, (now + self.ring_timeout, next(self._order), fork))
        return effects

    def _send_branch(self, branch: Branch, now: float) -> list[Effect]:
        fork = branch.fork
        destination = branch.binding.source
        request = self.router.forward_copy(
            fork.server.request, fork.server.source, destination, new_branch(),
            uri=branch.binding.contact,
        )
        request.headers.remove("proxy-authorization")  # our realm's credentials end here
        routes = request.headers.get("record-route")
        request.headers.remove("record-route")
        for transport in dict.fromkeys((destination.transport, fork.server.source.transport)):
            request.headers.append("Record-Route", self.router.record_route(transport))
        for route in routes:
            request.headers.append("Record-Route", route)
        branch.txn, effects = self.router.layer.send_request(request, destination, now,
                                                             context=branch)
        return effects

    def _cancel_pending(self, fork: Fork, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for branch in fork.branches:
            if branch.final == 0 and branch.txn is not None:
                branch.final = 487
                cancel = cancel_for(branch.txn.request)
                _, sent = self.router.layer.send_request(cancel, branch.txn.destination, now)
                effects += sent
        return effects

    def cancel(self, request: SipRequest, source: Endpoint, now: float) -> list[Effect]:
        """CANCEL is answered here (RFC 3261 16.10) and carried on to every pending branch."""
        invite = self.router.layer.invite_for_cancel(request)
        if invite is None or not isinstance(invite.context, Fork):
            return [Transmit(bytes(response_to(request, 481)), source)]
        effects: list[Effect] = [
            Transmit(bytes(response_to(request, 200, to_tag=new_tag())), source)
        ]
        fork = invite.context
        if fork.answered or fork.done:
            return effects
        fork.cancelled = True
        return effects + self._cancel_pending(fork, now)

    def _finish(self, fork: Fork, now: float) -> list[Effect]:
        """Every branch failed: pass on the best final response and file the session."""
        fork.done = True
        best = fork.best
        if fork.cancelled:
            effects = self.router.reply(fork.server, 487, now)
            status, reason = 487, "cancelled by the caller"
        elif best is None:
            effects = self.router.reply(fork.server, 408, now, "No answer from the device")
            status, reason = 408, "no answer from the device"
        else:
            effects = self.router.relay(fork.server, best, now)
            status, reason = best.status_code, best.reason_phrase
        self.sessions.finish(fork.session, now, status=status, reason=reason, failed=True)
        return effects

    def response(self, branch: Branch, response: SipResponse, now: float) -> list[Effect]:
        """A response on one branch: provisional ones go upstream, the first 2xx establishes
        the session, a failure waits for the other branches."""
        fork = branch.fork
        status = response.status_code
        if status == 100 or fork.done and status >= 300:
            return []
        if status < 200:
            return self.router.relay(fork.server, response, now)
        if status < 300:
            branch.final = status
            effects: list[Effect] = []
            if not fork.answered:
                fork.answered = True
                fork.done = True
                to = response.to_addr
                callee = (branch.binding.user, branch.binding.device)
                _, chosen, _ = self.describe(response)
                if chosen:
                    fork.session.protocol = chosen  # the answer holds exactly one
                callee_tag = to.tag if to and to.tag else ""
                self.sessions.established(fork.session, callee, callee_tag,
                                          branch.binding.source, now)
                effects += self._cancel_pending(fork, now)
            return self.router.relay(fork.server, response, now) + effects
        branch.final = status
        if fork.best is None or rank(status) < rank(fork.best.status_code):
            fork.best = response
        if all(b.final for b in fork.branches):
            return self._finish(fork, now)
        return []

    def timeout(self, branch: Branch, now: float) -> list[Effect]:
        """A branch's transaction timed out: it counts as a 408 from that device."""
        if branch.fork.done:
            return []
        branch.final = 408
        if all(b.final for b in branch.fork.branches):
            return self._finish(branch.fork, now)
        return []

    def next_deadline(self) -> float | None:
        while self._ring_deadlines and self._ring_deadlines[0][2].done:
            heapq.heappop(self._ring_deadlines)
        return self._ring_deadlines[0][0] if self._ring_deadlines else None

    def expire(self, now: float) -> list[Effect]:
        """Timer C: a device that rang too long is cancelled and the caller gets 408."""
        effects: list[Effect] = []
        while self._ring_deadlines and self._ring_deadlines[0][0] <= now:
            _, _, fork = heapq.heappop(self._ring_deadlines)
            if not fork.done:
                effects += self._cancel_pending(fork, now)
                fork.best = None
                effects += self._finish(fork, now)
        return effects
