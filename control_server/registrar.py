"""The registrar (RFC 3261 section 10): REGISTER in, a response and a binding change out. Sans-I/O.

Answers are stateless, as a registrar's usually are: a retransmitted REGISTER is processed again
and gets the same answer, since saving a binding twice changes nothing.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import sys
from dataclasses import dataclass

from collections.abc import Callable
from typing import Generic, NamedTuple, TypeVar

from protocols.sip.digest import DigestError
from protocols.sip.digest_server import DigestAuthenticator, Verdict, parse_credentials
from protocols.sip.endpoint import Endpoint
from protocols.sip.message import (
    SipRequest,
    SipResponse,
    new_tag,
    parse_address,
    response_to,
    stringify_uri,
    user_of,
)
from protocols.sip.register_answer import Reply, write_reply
from protocols.sip.register_head import RegisterHead, head_of

from .device_names import named_device, unnamed_device
from .directory import Directory
from .location import Binding, LocationTable
from .repeated_values import RepeatedValues
from .throttle import Penalty, Throttle

log = logging.getLogger(__name__)

_EXPIRES_PARAM = re.compile(r";\s*expires=(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    default_expires: int = 60
    min_expires: int = 20
    max_expires: int = 3600
    auto_create_devices: bool = True


Answer = TypeVar("Answer", SipResponse, bytes)


class Registration(NamedTuple, Generic[Answer]):
    """What one REGISTER did. `response` is the answer in the form its reader writes it (a
    SipResponse from `register`, bytes from `register_head`), None when the throttle drops it
    unanswered; a failed authentication carries its `penalty` (how long the answer waits).
    `replaced` is the binding `bound` took the place of, for the store to tell a refresh from
    a change. A tuple, as RegisterHead is: one is made for every REGISTER."""

    response: Answer | None
    bound: Binding | None = None
    replaced: Binding | None = None
    unbound: tuple[Binding, ...] = ()
    new_device: bool = False
    auth_failed: bool = False
    user: str = ""
    penalty: Penalty | None = None


def aor_scheme(to: str) -> str:
    """The scheme of the URI in a To value (`<sip:...>` or `sip:...;tag=`), lower case."""
    start = to.find("<")
    uri = to[start + 1 :] if start >= 0 else to
    return uri.partition(":")[0].strip().lower()


Render = Callable[[Reply], Answer]


class Registrar:
    def __init__(
        self,
        auth: DigestAuthenticator,
        directory: Directory,
        location: LocationTable,
        policy: RegistrarPolicy = RegistrarPolicy(),
        throttle: Throttle | None = None,
    ) -> None:
        self.auth = auth
        self.directory = directory
        self.location = location
        self.policy = policy
        self.throttle = throttle
        # User agents and sources (a balancer's) that bindings share, held once.
        self._repeated = RepeatedValues()

    def register(self, request: SipRequest, source: Endpoint,
                 now: float) -> Registration[SipResponse]:
        """A REGISTER the general parser read; answered with a SipResponse."""

        def render(reply: Reply) -> SipResponse:
            return response_to(request, reply.status, reply.reason, to_tag=reply.to_tag,
                               headers=list(reply.headers))

        return self.decide(head_of(request), source, now, render)

    def register_head(self, head: RegisterHead, source: Endpoint,
                      now: float) -> Registration[bytes]:
        """A REGISTER the lean scanner read; answered with the bytes to send."""
        return self.decide(head, source, now, lambda reply: write_reply(head, reply))

    def challenge(self, head: RegisterHead, now: float, *, stale: bool = False) -> Reply:
        algorithms = self.auth.algorithms_for(head.user_agent or "")
        headers = tuple(("WWW-Authenticate", value)
                        for value in self.auth.challenges(now, stale=stale, algorithms=algorithms))
        return Reply(401, to_tag=new_tag(), headers=headers)

    def adopt(self, binding: Binding) -> Binding:
        """`binding` as read from the store or heard from another server, holding the objects
        the registrar's own bindings share (the user's and the device's names, the source, the
        User-Agent, the node) rather than copies of its own."""
        user = self.directory.name_of(binding.user)
        source = binding.source
        source = self._repeated.one(Endpoint(sys.intern(source.transport),
                                             self._repeated.one(source.host), source.port))
        return dataclasses.replace(
            binding, user=user, device=self.directory.devices.held_name(user, binding.device),
            source=source, user_agent=self._repeated.one(binding.user_agent),
            node=self._repeated.one(binding.node))

    def _failed(self, reply: Reply, render: Render, source: Endpoint, user: str, now: float,
                reason: str) -> Registration:
        """A failed authentication: counted by the throttle, logged unless it says not to."""
        penalty = None
        if self.throttle is not None:
            penalty = self.throttle.failed(source.host, user, now)
        if penalty is None or penalty.log:
            log.info("REGISTER %s from %s refused: %s", user, source, reason)
        response = None if penalty is not None and penalty.silent else render(reply)
        return Registration(response, auth_failed=True, user=user, penalty=penalty)

    def decide(self, head: RegisterHead, source: Endpoint, now: float,
               render: Render) -> Registration:
        """The registrar's decision on one REGISTER, its answer written by `render`."""
        to = head.to
        if aor_scheme(to) not in ("sip", "sips"):
            # RFC 3261 10.3: the address of record is a SIP or SIPS URI.
            return Registration(render(Reply(400, "To is not a SIP or SIPS URI")))
        user = user_of(to)
        authorization = head.authorization
        if not authorization:
            return Registration(render(self.challenge(head, now)), user=user)
        if self.throttle is not None and not self.throttle.may_try(source.host, user, now):
            return Registration(None, user=user)
        try:
            credentials = parse_credentials(authorization)
        except DigestError as exc:
            return self._failed(self.challenge(head, now), render, source, user, now,
                                f"unreadable credentials: {exc}")
        if credentials.username != user:
            return self._failed(
                Reply(403, "Credentials do not match the address of record"), render,
                source, user, now, "credentials of another user",
            )
        outcome = self.auth.verify(
            credentials, "REGISTER", self.directory.ha1, branch=head.branch, now=now,
        )
        if outcome.verdict is Verdict.STALE:
            return Registration(render(self.challenge(head, now, stale=True)), user=user)
        if not outcome.ok:
            return self._failed(self.challenge(head, now), render, source, user, now,
                                outcome.reason)
        # The user's name and the source as the binding and the throttle's trust keep them:
        # one object each, not a copy per REGISTER.
        user = self.directory.name_of(user)
        source = self._repeated.one(source)
        if self.throttle is not None:
            self.throttle.succeeded(source.host, user, now)
        if self.directory.is_disabled(user):
            return Registration(render(Reply(403, "Account disabled")), user=user)
        return self._bind(head, render, source, user, now)

    def _bind(self, head: RegisterHead, render: Render, source: Endpoint, user: str,
              now: float) -> Registration:
        contacts = head.contacts
        to_tag = new_tag()
        if not contacts:
            # A query: list what is bound for this user.
            return Registration(render(self._ok(to_tag, self.location.devices_of(user), now)))
        if contacts[0].strip() == "*":
            if (head.expires or "").strip() != "0" or len(contacts) > 1:
                return Registration(render(Reply(400, "Contact * needs Expires: 0")))
            removed = tuple(
                b for b in (self.location.remove(user, d.device) for d in self.location.devices_of(user))
                if b is not None
            )
            return Registration(render(self._ok(to_tag, [], now)), unbound=removed, user=user)

        contact = contacts[0]
        try:
            contact_uri = parse_address(contact).uri
        except (ValueError, IndexError, AttributeError):
            return Registration(render(Reply(400, "Malformed Contact")))
        device = named_device(head.to, contact) or unnamed_device(contact, contact_uri)
        if (user, device) in self.directory.disabled_devices:
            return Registration(render(Reply(403, "Device disabled")), user=user)
        expires = self._expires(head, contact)
        if expires is None:
            return Registration(render(Reply(400, "Expires is not a number")))
        call_id, cseq = head.call_id, head.cseq_number
        if cseq is None:
            return Registration(render(Reply(400, "Malformed CSeq")))
        previous = self.location.get(user, device)
        if previous is not None and previous.call_id == call_id and cseq < previous.cseq:
            return Registration(render(Reply(500, "Out of order REGISTER")))

        if expires == 0:
            removed = self.location.remove(user, device)
            remaining = self.location.devices_of(user)
            return Registration(
                render(self._ok(to_tag, remaining, now)),
                unbound=(removed,) if removed else (),
                user=user,
            )
        if expires < self.policy.min_expires:
            return Registration(
                render(Reply(423, headers=(("Min-Expires", str(self.policy.min_expires)),)))
            )
        expires = min(expires, self.policy.max_expires)
        known = (user, device) in self.directory.devices
        if not known and not self.policy.auto_create_devices:
            return Registration(render(Reply(404, f"No device {device} for {user}")))
        contact_text = stringify_uri(contact_uri)
        if previous is not None:
            # A refresh keeps the strings the binding holds, rather than a second copy of each.
            user, device = previous.user, previous.device
            if previous.contact == contact_text:
                contact_text = previous.contact
            if previous.call_id == call_id:
                call_id = previous.call_id
        binding = Binding(
            user=user,
            device=device,
            contact=contact_text,
            source=source,
            user_agent=self._repeated.one(head.user_agent or ""),
            registered_at=previous.registered_at if previous else now,
            last_seen=now,
            expires_at=now + expires,
            call_id=call_id,
            cseq=cseq,
        )
        self.location.put(binding)
        if not known:
            self.directory.devices.add((user, device))
        return Registration(
            render(self._ok(to_tag, self.location.devices_of(user), now)),
            bound=binding,
            replaced=previous,
            new_device=not known,
            user=user,
        )

    def _expires(self, head: RegisterHead, contact: str) -> int | None:
        match = _EXPIRES_PARAM.search(contact.rpartition(">")[2] or contact)
        raw = match.group(1) if match else head.expires
        if raw is None:
            return self.policy.default_expires
        try:
            return max(0, int(raw.strip()))
        except ValueError:
            return None

    def _ok(self, to_tag: str, bindings: list[Binding], now: float) -> Reply:
        headers = tuple(
            ("Contact", f"<{b.contact}>;expires={max(0, int(b.expires_at - now))}")
            for b in bindings
        )
        return Reply(200, to_tag=to_tag, headers=headers)
