"""The stateful proxy (RFC 3261 section 16): INVITE authentication and authorization, target
lookup, parallel forking, response selection, CANCEL, and routing of in-dialog requests.

Sans-I/O: every entry point takes `now` and returns the effects (messages to transmit) for the
server's asyncio glue to carry out.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from protocols.sip.digest import DigestError
from protocols.sip.digest_server import DigestAuthenticator, Verdict, parse_credentials
from protocols.sip.endpoint import Endpoint
from protocols.sip.message import (
    BRANCH_MAGIC,
    SipMessage,
    SipRequest,
    SipResponse,
    new_tag,
    parse_message,
    response_to,
    user_of,
)
from protocols.sip.effects import ClientTimeout, Effect, Transmit
from protocols.sip.transaction import (
    ClientTransaction,
    ServerTransaction,
    TransactionLayer,
    cancel_for,
)

from .directory import Directory
from .location import Binding, LocationTable
from .sessions import Session, SessionRegistry
from .store import DEFAULT_DEVICE

log = logging.getLogger(__name__)

# Branches we make start with this, so our own Via is recognised on the way back.
OUR_BRANCH = BRANCH_MAGIC + "ss"

# What a descriptor body tells about a session: data type, protocol, dataset.
Describe = Callable[[SipMessage], tuple[str | None, str | None, str | None]]
# What an INFO progress report says, or None when it says nothing we read.
ReadProgress = Callable[[SipRequest], dict | None]


def _no_description(message: SipMessage) -> tuple[None, None, None]:
    return None, None, None


def _no_progress(request: SipRequest) -> None:
    return None


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


@dataclass(eq=False)
class Relay:
    """A proxied in-dialog request (BYE, INFO, re-INVITE...): where its responses go back."""

    server: ServerTransaction
    session: Session
    method: str


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    ring_timeout: float = 60.0  # timer C: how long a device may ring before the proxy gives up
    challenge_invites: bool = True


def _rank(status: int) -> tuple[int, int]:
    """Which final response to pass back when every branch failed (RFC 3261 16.7 step 6)."""
    if 600 <= status < 700:
        return (0, status)
    if status in (401, 407, 415, 420, 484):
        return (1, status)
    if 400 <= status < 500:
        return (2, status)
    return (3, status)


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
    ) -> None:
        self.layer = layer
        self.auth = auth
        self.directory = directory
        self.location = location
        self.sessions = sessions
        self.me = me
        self.policy = policy
        self.describe = describe
        self.read_progress = read_progress
        self._ring_deadlines: list[tuple[float, int, Fork]] = []
        self._order = itertools.count()

    # -- helpers ---------------------------------------------------------------------------------

    def _reply(self, txn: ServerTransaction, status: int, now: float, reason: str | None = None,
               headers: list[tuple[str, str]] | None = None) -> list[Effect]:
        response = response_to(txn.request, status, reason, to_tag=new_tag(), headers=headers)
        return self.layer.respond(txn, status, bytes(response), now)

    def _via(self, destination: Endpoint, branch: str) -> str:
        return f"SIP/2.0/{destination.transport.upper()} {self.me.hostport};branch={branch}"

    def _record_route(self, transport: str) -> str:
        return f"<sip:{self.me.hostport};transport={transport};lr>"

    def _is_me(self, route: str) -> bool:
        return self.me.hostport in route

    def _forward_copy(self, request: SipRequest, source: Endpoint, destination: Endpoint,
                      branch: str, uri: str | None = None) -> SipRequest:
        """A copy of a request to forward: our Route entries gone, one hop fewer, the sender's
        real address stamped on its Via (RFC 3581), our Via on top."""
        copy = parse_message(bytes(request))
        assert isinstance(copy, SipRequest)
        if uri is not None:
            copy.uri = uri
        routes = [r for r in copy.headers.get("route") if not self._is_me(r)]
        copy.headers.remove("route")
        for route in routes:
            copy.headers.append("Route", route)
        hops = copy.headers.get_first("max-forwards")
        copy.headers.set_single("Max-Forwards", str(int(hops) - 1 if hops else 69))
        vias = copy.headers.get("via")
        vias[0] = stamp_received(vias[0], source)
        copy.headers.remove("via")
        copy.headers.append("Via", self._via(destination, branch))
        for via in vias:
            copy.headers.append("Via", via)
        return copy

    def _relay(self, txn: ServerTransaction, response: SipResponse, now: float) -> list[Effect]:
        """Pass a downstream response upstream without our Via."""
        vias = response.headers.get("via")
        response.headers.remove("via")
        for via in vias[1:]:
            response.headers.append("Via", via)
        return self.layer.respond(txn, response.status_code, bytes(response), now)

    # -- INVITE ----------------------------------------------------------------------------------

    def invite(self, txn: ServerTransaction, now: float) -> list[Effect]:
        request = txn.request
        effects = self._reply(txn, 100, now)
        hops = request.headers.get_first("max-forwards")
        if hops is not None and hops.strip() == "0":
            return effects + self._reply(txn, 483, now)

        caller_user = user_of(request.headers.get_first("from") or "")
        if self.policy.challenge_invites:
            refusal = self._authenticate(txn, caller_user, now)
            if refusal is not None:
                return effects + refusal
        from_addr = request.from_addr
        if from_addr is None or request.to_addr is None:
            return effects + self._reply(txn, 400, now, "Unreadable From or To")
        call_id = request.call_id or ""
        if call_id in self.sessions.active:
            return effects + self._reply(txn, 482, now, "Loop or merged request")

        target_uri = request.uri
        target_user = user_of(target_uri)
        target_device = _uri_param(target_uri, "device")
        data_type, protocol, dataset = self.describe(request)
        session = Session(
            call_id=call_id,
            caller=(caller_user, from_addr.uri.params.get("device") or DEFAULT_DEVICE),
            callee=(target_user, target_device or "*"),
            caller_tag=from_addr.tag or "",
            caller_endpoint=txn.source,
            started_at=now,
            data_type=data_type,
            protocol=protocol,
            dataset=dataset,
        )
        self.sessions.start(session)
        targets, status, reason = self._targets(session.caller, target_user, target_device)
        if not targets:
            self.sessions.finish(session, now, status=status, reason=reason, failed=True)
            return effects + self._reply(txn, status, now, reason)
        fork = Fork(server=txn, session=session)
        txn.context = fork
        for binding in targets:
            branch = Branch(fork=fork, binding=binding)
            fork.branches.append(branch)
            effects += self._send_branch(branch, now)
        heapq.heappush(
            self._ring_deadlines, (now + self.policy.ring_timeout, next(self._order), fork)
        )
        return effects

    def _targets(self, caller: tuple[str, str], user: str, device: str | None
                 ) -> tuple[list[Binding], int, str]:
        """The bindings an INVITE goes to, or none with the status and reason of the refusal."""
        disabled = self.directory.disabled_devices
        if caller in disabled:
            return [], 403, "Calling device disabled"
        if user not in self.directory.accounts:
            return [], 404, "No such user"
        if device is not None:
            if (user, device) not in self.directory.devices:
                return [], 404, "No such device"
            if not self.directory.may_reach(caller[0], user, device):
                return [], 403, "Not allowed to sync with this device"
            # After the share check, so only those who may reach a device learn it is disabled.
            if (user, device) in disabled:
                return [], 403, "Device disabled"
            binding = self.location.get(user, device)
            if binding is None:
                return [], 480, "Device offline"
            return [binding], 0, ""
        online = [b for b in self.location.devices_of(user)
                  if b.key != caller and b.key not in disabled]
        allowed = [b for b in online if self.directory.may_reach(caller[0], b.user, b.device)]
        if online and not allowed:
            return [], 403, "Not allowed to sync with this user"
        if not allowed:
            return [], 480, "No device of this user is online"
        return allowed, 0, ""

    def _authenticate(self, txn: ServerTransaction, user: str, now: float) -> list[Effect] | None:
        """None when the caller proved who it is; otherwise the 407 or 403 to send."""
        request = txn.request
        value = request.headers.get_first("proxy-authorization")
        stale = False
        if value:
            try:
                credentials = parse_credentials(value)
            except DigestError:
                credentials = None
            if credentials is not None:
                if credentials.username != user:
                    return self._reply(txn, 403, now, "Credentials do not match the caller")
                outcome = self.auth.verify(
                    credentials, request.method, self.directory.ha1,
                    branch=request.via[0].branch or "", now=now,
                )
                if outcome.ok:
                    if self.directory.is_disabled(user):
                        return self._reply(txn, 403, now, "Account disabled")
                    return None
                stale = outcome.verdict is Verdict.STALE
                if not stale:
                    log.info("INVITE from %s refused: %s", user, outcome.reason)
        headers = [("Proxy-Authenticate", v) for v in self.auth.challenges(now, stale=stale)]
        return self._reply(txn, 407, now, headers=headers)

    def _send_branch(self, branch: Branch, now: float) -> list[Effect]:
        fork = branch.fork
        destination = branch.binding.source
        request = self._forward_copy(
            fork.server.request, fork.server.source, destination, OUR_BRANCH + new_tag(),
            uri=branch.binding.contact,
        )
        request.headers.remove("proxy-authorization")  # our realm's credentials end here
        routes = request.headers.get("record-route")
        request.headers.remove("record-route")
        for transport in dict.fromkeys((destination.transport, fork.server.source.transport)):
            request.headers.append("Record-Route", self._record_route(transport))
        for route in routes:
            request.headers.append("Record-Route", route)
        branch.txn, effects = self.layer.send_request(request, destination, now, context=branch)
        return effects

    def _cancel_pending(self, fork: Fork, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for branch in fork.branches:
            if branch.final == 0 and branch.txn is not None:
                branch.final = 487
                cancel = cancel_for(branch.txn.request)
                _, sent = self.layer.send_request(cancel, branch.txn.destination, now)
                effects += sent
        return effects

    def cancel(self, request: SipRequest, source: Endpoint, now: float) -> list[Effect]:
        """CANCEL is answered here (RFC 3261 16.10) and carried on to every pending branch."""
        invite = self.layer.invite_for_cancel(request)
        if invite is None or not isinstance(invite.context, Fork):
            return [Transmit(bytes(response_to(request, 481)), source)]
        effects: list[Effect] = [Transmit(bytes(response_to(request, 200, to_tag=new_tag())), source)]
        fork = invite.context
        if fork.answered or fork.done:
            return effects
        fork.cancelled = True
        return effects + self._cancel_pending(fork, now)

    def _finish_fork(self, fork: Fork, now: float) -> list[Effect]:
        """Every branch failed: pass on the best final response and file the session."""
        fork.done = True
        best = fork.best
        if fork.cancelled:
            effects = self._reply(fork.server, 487, now)
            status, reason = 487, "cancelled by the caller"
        elif best is None:
            effects = self._reply(fork.server, 408, now, "No answer from the device")
            status, reason = 408, "no answer from the device"
        else:
            effects = self._relay(fork.server, best, now)
            status, reason = best.status_code, best.reason_phrase
        self.sessions.finish(fork.session, now, status=status, reason=reason, failed=True)
        return effects

    # -- responses and timeouts ------------------------------------------------------------------

    def response(self, txn: ClientTransaction, response: SipResponse, now: float) -> list[Effect]:
        context = txn.context
        if isinstance(context, Branch):
            return self._branch_response(context, response, now)
        if isinstance(context, Relay):
            effects = self._relay(context.server, response, now)
            if context.method == "BYE" and response.status_code >= 200:
                # A BYE that gives a Reason ends a session that went wrong.
                failure = context.session.bye_reason
                self.sessions.finish(context.session, now, reason=failure or "ended by BYE",
                                     failed=bool(failure))
            return effects
        return []  # a CANCEL's own response ends here

    def _branch_response(self, branch: Branch, response: SipResponse, now: float) -> list[Effect]:
        fork = branch.fork
        status = response.status_code
        if status == 100 or fork.done and status >= 300:
            return []
        if status < 200:
            return self._relay(fork.server, response, now)
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
                self.sessions.established(
                    fork.session, callee, to.tag if to and to.tag else "", branch.binding.source, now
                )
                effects += self._cancel_pending(fork, now)
            return self._relay(fork.server, response, now) + effects
        branch.final = status
        if fork.best is None or _rank(status) < _rank(fork.best.status_code):
            fork.best = response
        if all(b.final for b in fork.branches):
            return self._finish_fork(fork, now)
        return []

    def timeout(self, event: ClientTimeout, now: float) -> list[Effect]:
        context = event.transaction.context
        if isinstance(context, Branch) and not context.fork.done:
            context.final = 408
            if all(b.final for b in context.fork.branches):
                return self._finish_fork(context.fork, now)
        elif isinstance(context, Relay):
            effects = self._reply(context.server, 408, now, "No answer from the other device")
            if context.method == "BYE":
                # The side that sent it has ended the session: keep the reason it gave.
                reason = context.session.bye_reason or "BYE was never answered"
                self.sessions.finish(context.session, now, reason=reason, failed=True)
            return effects
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
                effects += self._finish_fork(fork, now)
        return effects

    # -- in-dialog requests ----------------------------------------------------------------------

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

    def in_dialog(self, txn: ServerTransaction, now: float) -> list[Effect]:
        """BYE, INFO, re-INVITE and the like between the two devices of a session."""
        request = txn.request
        session, destination = self._other_side(request)
        if session is None or destination is None:
            return self._reply(txn, 481, now)
        if request.method == "BYE":
            session.bye_at = now
            session.bye_reason = _reason_text(request.headers.get_first("reason"))
        elif request.method == "INFO":
            self._note_progress(session, request)
        forwarded = self._forward_copy(request, txn.source, destination, OUR_BRANCH + new_tag())
        relay = Relay(server=txn, session=session, method=request.method)
        _, effects = self.layer.send_request(forwarded, destination, now, context=relay)
        return effects

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
        # Stateless forwarding derives its branch from the incoming one (RFC 3261 16.11).
        incoming = request.via[0].branch or ""
        branch = OUR_BRANCH + hashlib.sha1(incoming.encode()).hexdigest()[:16]
        forwarded = self._forward_copy(request, source, destination, branch)
        return [Transmit(bytes(forwarded), destination)]

    def stateless_response(self, response: SipResponse) -> list[Effect]:
        """A response no transaction wants (a 2xx retransmitted by the callee): pass it upstream
        by the next Via, or drop it when the top Via is not ours."""
        vias = response.via
        if len(vias) < 2 or not (vias[0].branch or "").startswith(OUR_BRANCH):
            return []
        upstream = vias[1]
        host = upstream.params.get("received") or upstream.host
        rport = upstream.params.get("rport")
        port = int(rport) if rport else (upstream.port or 5060)
        values = response.headers.get("via")
        response.headers.remove("via")
        for value in values[1:]:
            response.headers.append("Via", value)
        return [Transmit(bytes(response), Endpoint(upstream.transport.lower(), host, port))]


def stamp_received(via: str, source: Endpoint) -> str:
    """Note on a Via where the request really came from: `received` and a filled `rport`."""
    head, sep, rest = via.partition(";")
    params = [p for p in rest.split(";") if p and not p.strip().lower().startswith("received")]
    params = [f"rport={source.port}" if p.strip().lower() == "rport" else p for p in params]
    params.append(f"received={source.host}")
    return head + ";" + ";".join(params)


def _reason_text(header: str | None) -> str:
    """The text of a Reason header (RFC 3326), or ''."""
    if not header:
        return ""
    marker = header.find('text="')
    if marker < 0:
        return ""
    return header[marker + 6 :].split('"', 1)[0][:200]


def _uri_param(uri: str, name: str) -> str | None:
    for part in uri.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == name:
            return value.strip() or None
    return None
