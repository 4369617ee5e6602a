"""The stateful proxy (RFC 3261 section 16): the one entry point the server's glue calls for
INVITE, CANCEL, ACK, in-dialog requests, responses and timers. It admits an INVITE
(`admission`), hands it to `forking`, and in-dialog traffic to `dialog_relay`.

Sans-I/O: every entry point takes `now` and returns the effects (messages to transmit) for the
server's asyncio glue to carry out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocols.sip.digest_server import DigestAuthenticator
from protocols.sip.endpoint import Endpoint
from protocols.sip.message import (
    SipMessage,
    SipRequest,
    SipResponse,
    uri_param,
    user_of,
)
from protocols.sip.effects import ClientTimeout, Effect
from protocols.sip.transaction import ClientTransaction, ServerTransaction, TransactionLayer
from session_xml import LIVE_SYNC_SUBJECT

from .admission import Refusal, authenticate, authorize
from .dialog_relay import DialogRelay, ReadProgress, Relay
from .device_names import requesting_device
from .directory import Directory
from .forking import Branch, Describe, Forker
from .held_answers import Answer
from .location import LocationTable
from .routing import Router
from .sessions import Session, SessionRegistry
from .throttle import Throttle

# Sends an answer later: (due time, what to send then).
Hold = Callable[[float, Answer], object]


def _no_description(message: SipMessage) -> tuple[None, None, None]:
    return None, None, None


def _no_progress(request: SipRequest) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    ring_timeout: float = 60.0  # timer C: how long a device may ring before the proxy gives up
    challenge_invites: bool = True


class Proxy:
    def __init__(
        self,
        layer: TransactionLayer,
        auth: DigestAuthenticator,
        directory: Directory,
        location: LocationTable,
        sessions: SessionRegistry,
        me: Endpoint,
        policy: ProxyPolicy = ProxyPolicy(),
        describe: Describe = _no_description,
        read_progress: ReadProgress = _no_progress,
        throttle: Throttle | None = None,
        hold: Hold | None = None,
    ) -> None:
        self.layer = layer
        self.auth = auth
        self.directory = directory  # replaced by the server when an admin changes it
        self.location = location
        self.sessions = sessions
        self.me = me
        self.policy = policy
        self.describe = describe
        self.read_progress = read_progress
        self.throttle = throttle
        self.hold = hold
        self.router = Router(me, layer)
        self.forker = Forker(self.router, sessions, policy.ring_timeout, describe)
        self.dialogs = DialogRelay(self.router, sessions, read_progress)

    def _refuse(self, txn: ServerTransaction, refusal: Refusal, now: float) -> list[Effect]:
        return self.router.reply(txn, refusal.status, now, refusal.reason,
                                 headers=list(refusal.headers) or None)

    # -- INVITE ----------------------------------------------------------------------------------

    def invite(self, txn: ServerTransaction, now: float) -> list[Effect]:
        request = txn.request
        effects = self.router.reply(txn, 100, now)
        hops = request.headers.get_first("max-forwards")
        if hops is not None and hops.strip() == "0":
            return effects + self.router.reply(txn, 483, now)

        caller_user = user_of(request.headers.get_first("from") or "")
        if self.policy.challenge_invites:
            refusal = authenticate(request, caller_user, self.auth, self.directory, now,
                                   source=txn.source.host, throttle=self.throttle)
            if refusal is not None:
                penalty = refusal.penalty
                if penalty is not None and penalty.delay > 0 and self.hold is not None:
                    # The 100 went out, so the client waits; its retransmissions meet it again.
                    self.hold(now + penalty.delay, lambda at: self._refuse(txn, refusal, at))
                    return effects
                return effects + self._refuse(txn, refusal, now)
        from_addr = request.from_addr
        if from_addr is None or request.to_addr is None:
            return effects + self.router.reply(txn, 400, now, "Unreadable From or To")
        call_id = request.call_id or ""
        if call_id in self.sessions.active:
            return effects + self.router.reply(txn, 482, now, "Loop or merged request")

        target_uri = request.uri
        target_user = user_of(target_uri)
        target_device = uri_param(target_uri, "device")
        data_type, protocol, dataset = self.describe(request)
        session = Session(
            call_id=call_id,
            caller=(caller_user, requesting_device(request)),
            callee=(target_user, target_device or "*"),
            caller_tag=from_addr.tag or "",
            caller_endpoint=txn.source,
            started_at=now,
            data_type=data_type,
            protocol=protocol,
            dataset=dataset,
            started_by=_started_by(request),
        )
        self.sessions.start(session)  # before authorization, so a refusal lands in history
        targets = authorize(session.caller, target_user, target_device, self.directory,
                            self.location)
        if isinstance(targets, Refusal):
            self.sessions.finish(session, now, status=targets.status, reason=targets.reason,
                                 failed=True)
            return effects + self._refuse(txn, targets, now)
        return effects + self.forker.start(txn, session, targets, now)

    def cancel(self, request: SipRequest, source: Endpoint, now: float) -> list[Effect]:
        return self.forker.cancel(request, source, now)

    # -- responses and timeouts ------------------------------------------------------------------

    def response(self, txn: ClientTransaction, response: SipResponse, now: float) -> list[Effect]:
        context = txn.context
        if isinstance(context, Branch):
            return self.forker.response(context, response, now)
        if isinstance(context, Relay):
            return self.dialogs.response(context, response, now)
        return []  # a CANCEL's own response ends here

    def stateless_response(self, response: SipResponse) -> list[Effect]:
        return self.router.relay_stateless(response)

    def timeout(self, event: ClientTimeout, now: float) -> list[Effect]:
        context = event.transaction.context
        if isinstance(context, Branch):
            return self.forker.timeout(context, now)
        if isinstance(context, Relay):
            return self.dialogs.timeout(context, now)
        return []

    def next_deadline(self) -> float | None:
        return self.forker.next_deadline()

    def expire(self, now: float) -> list[Effect]:
        return self.forker.expire(now)

    # -- in-dialog requests ----------------------------------------------------------------------

    def in_dialog(self, txn: ServerTransaction, now: float) -> list[Effect]:
        """BYE, INFO, re-INVITE and the like between the two devices of a session."""
        return self.dialogs.request(txn, now)

    def ack(self, request: SipRequest, source: Endpoint, now: float) -> list[Effect]:
        return self.dialogs.ack(request, source, now)


def _started_by(request: SipRequest) -> str:
    """A live sync names itself in the INVITE's Subject; a scripted session does not."""
    subject = (request.headers.get_first("subject") or "").strip().lower()
    return "daemon" if subject == LIVE_SYNC_SUBJECT else ""

