"""Requests inside an established session's dialog (BYE, INFO, re-INVITE, the ACK of a 2xx):
which device they go to, and what the session registry learns from them on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from protocols.sip.endpoint import Endpoint
from protocols.sip.message import SipRequest, SipResponse, user_of
from protocols.sip.effects import Effect, Transmit
from protocols.sip.transaction import ServerTransaction

from .routing import Router, new_branch, stateless_branch
from .sessions import Session, SessionRecord, SessionRegistry

log = logging.getLogger(__name__)

# What an INFO progress report says, or None when it says nothing we read.
ReadProgress = Callable[[SipRequest], dict | None]


@dataclass(eq=False)
class Relay:
    """A proxied in-dialog request (BYE, INFO, re-INVITE...): where its responses go back."""

    server: ServerTransaction
    session: Session
    method: str


class DialogRelay:
    def __init__(self, router: Router, sessions: SessionRegistry,
                 read_progress: ReadProgress) -> None:
        self.router = router
        self.sessions = sessions
        self.read_progress = read_progress

    def _other_side(self, request: SipRequest) -> tuple[Session | None, Endpoint | None]:
        session = self.sessions.get(request.call_id or "")
        if session is None or session.callee_endpoint is None:
            return session, None
        from_addr, to_addr = request.from_addr, request.to_addr
        sender = from_addr.tag if from_addr else None
        receiver = to_addr.tag if to_addr else None
        # Both tags must name the dialog: an ACK for our own 407 carries our tag, not the callee's.
        if (sender, receiver) == (session.caller_tag, session.callee_tag):
            return session, session.callee_endpoint
        if (sender, receiver) == (session.callee_tag, session.caller_tag):
            return session, session.caller_endpoint
        return session, None

    def request(self, txn: ServerTransaction, now: float) -> list[Effect]:
        """Forward an in-dialog request to the other device, or answer 481 outside any dialog."""
        request = txn.request
        session, destination = self._other_side(request)
        if session is None:
            late = self.sessions.interrupted_session(request.call_id or "", now)
            if late is not None and request.method in ("INFO", "BYE") and _from_a_party(request, late):
                return self._late_report(txn, late, now)
        if session is None or destination is None:
            return self.router.reply(txn, 481, now)
        if request.method == "BYE":
            session.bye_at = now
            session.bye_reason = _reason_text(request.headers.get_first("reason"))
        elif request.method == "INFO":
            self._note_progress(session, request)
        forwarded = self.router.forward_copy(request, txn.source, destination, new_branch())
        relay = Relay(server=txn, session=session, method=request.method)
        _, effects = self.router.layer.send_request(forwarded, destination, now, context=relay)
        return effects

    def _late_report(self, txn: ServerTransaction, record: SessionRecord, now: float) -> list[Effect]:
        """A device reports on a session our restart cut off: the session went on between the
        devices, so what they say is the history. Answered here: the dialog's route is gone
        with our memory, and the other device ended its side long ago."""
        request = txn.request
        cseq = request.cseq.seq
        if request.method == "INFO":
            progress = self.read_progress(request)
            if progress:
                self.sessions.late_report(record.call_id, cseq, now, progress=progress)
        else:
            failure = _reason_text(request.headers.get_first("reason"))
            self.sessions.late_report(record.call_id, cseq, now, ended=True, failure=failure)
            log.info("session %s reported late as %s", record.call_id, failure or "ended")
        return self.router.reply(txn, 200, now)

    def _note_progress(self, session: Session, request: SipRequest) -> None:
        report = self.read_progress(request)
        if report:
            session.progress = report
            self.sessions.update(session)

    def ack(self, request: SipRequest, source: Endpoint, now: float) -> list[Effect]:
        """The ACK of a 2xx is end to end: forwarded statelessly along the dialog."""
        session, destination = self._other_side(request)
        if session is None or destination is None:
            log.debug("dropping ACK outside any dialog: %s", request.call_id)
            return []
        if session.acked_at is None:
            session.acked_at = now
        branch = stateless_branch(request.via[0].branch or "")
        forwarded = self.router.forward_copy(request, source, destination, branch)
        return [Transmit(bytes(forwarded), destination)]

    def response(self, relay: Relay, response: SipResponse, now: float) -> list[Effect]:
        """The other device answered: the answer goes back, and a final answer to BYE files
        the session."""
        effects = self.router.relay(relay.server, response, now)
        if relay.method == "BYE" and response.status_code >= 200:
            # A BYE that gives a Reason ends a session that went wrong.
            failure = relay.session.bye_reason
            self.sessions.finish(relay.session, now, reason=failure or "ended by BYE",
                                 failed=bool(failure))
        return effects

    def timeout(self, relay: Relay, now: float) -> list[Effect]:
        """The other device never answered: 408 to the sender."""
        effects = self.router.reply(relay.server, 408, now, "No answer from the other device")
        if relay.method == "BYE":
            # The side that sent it has ended the session: keep the reason it gave.
            reason = relay.session.bye_reason or "BYE was never answered"
            self.sessions.finish(relay.session, now, reason=reason, failed=True)
        return effects


def _reason_text(header: str | None) -> str:
    """The text of a Reason header (RFC 3326), or ''."""
    if not header:
        return ""
    marker = header.find('text="')
    if marker < 0:
        return ""
    return header[marker + 6 :].split('"', 1)[0][:200]


def _from_a_party(request: SipRequest, record: SessionRecord) -> bool:
    """The request's From names the user of one of the session's devices."""
    sender = user_of(request.headers.get_first("from") or "")
    return sender in (record.caller.split("/")[0], record.callee.split("/")[0])
