"""The registrar (RFC 3261 section 10): REGISTER in, a response and a binding change out. Sans-I/O.

Answers are stateless, as a registrar's usually are: a retransmitted REGISTER is processed again
and gets the same answer, since saving a binding twice changes nothing.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

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

from .device_names import named_device, unnamed_device
from .directory import Directory
from .location import Binding, LocationTable
from .throttle import Penalty, Throttle

log = logging.getLogger(__name__)

_EXPIRES_PARAM = re.compile(r";\s*expires=(\d+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    default_expires: int = 60
    min_expires: int = 20
    max_expires: int = 3600
    auto_create_devices: bool = True


@dataclass(frozen=True, slots=True)
class Registration:
    """What one REGISTER did. `response` is None when the throttle drops it unanswered; a
    failed authentication carries its `penalty` (how long the answer waits)."""

    response: SipResponse | None
    bound: Binding | None = None
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

    def challenge(self, request: SipRequest, now: float, *, stale: bool = False) -> SipResponse:
        algorithms = self.auth.algorithms_for(request.headers.get_first("user-agent") or "")
        headers = [("WWW-Authenticate", value)
                   for value in self.auth.challenges(now, stale=stale, algorithms=algorithms)]
        return response_to(request, 401, to_tag=new_tag(), headers=headers)

    def _failed(self, response: SipResponse | None, source: Endpoint, user: str, now: float,
                reason: str) -> Registration:
        """A failed authentication: counted by the throttle, logged unless it says not to."""
        penalty = None
        if self.throttle is not None:
            penalty = self.throttle.failed(source.host, user, now)
        if penalty is None or penalty.log:
            log.info("REGISTER %s from %s refused: %s", user, source, reason)
        if penalty is not None and penalty.silent:
            response = None
        return Registration(response, auth_failed=True, user=user, penalty=penalty)

    def register(self, request: SipRequest, source: Endpoint, now: float) -> Registration:
        to = request.headers.get_first("to") or ""
        if aor_scheme(to) not in ("sip", "sips"):
            # RFC 3261 10.3: the address of record is a SIP or SIPS URI.
            return Registration(response_to(request, 400, "To is not a SIP or SIPS URI"))
        user = user_of(to)
        authorization = request.headers.get_first("authorization")
        if not authorization:
            return Registration(self.challenge(request, now), user=user)
        if self.throttle is not None and not self.throttle.may_try(source.host, user, now):
            return Registration(None, user=user)
        try:
            credentials = parse_credentials(authorization)
        except DigestError as exc:
            return self._failed(self.challenge(request, now), source, user, now,
                                f"unreadable credentials: {exc}")
        if credentials.username != user:
            return self._failed(
                response_to(request, 403, "Credentials do not match the address of record"),
                source, user, now, "credentials of another user",
            )
        outcome = self.auth.verify(
            credentials, "REGISTER", self.directory.ha1,
            branch=request.via[0].branch or "", now=now,
        )
        if outcome.verdict is Verdict.STALE:
            return Registration(self.challenge(request, now, stale=True), user=user)
        if not outcome.ok:
            return self._failed(self.challenge(request, now), source, user, now, outcome.reason)
        if self.throttle is not None:
            self.throttle.succeeded(source.host, user, now)
        if self.directory.is_disabled(user):
            return Registration(response_to(request, 403, "Account disabled"), user=user)
        return self._bind(request, source, user, now)

    def _bind(self, request: SipRequest, source: Endpoint, user: str, now: float) -> Registration:
        contacts = request.headers.get("contact")
        to_tag = new_tag()
        if not contacts:
            # A query: list what is bound for this user.
            return Registration(self._ok(request, to_tag, self.location.devices_of(user), now))
        if contacts[0].strip() == "*":
            if request.headers.get_first("expires", "").strip() != "0" or len(contacts) > 1:
                return Registration(response_to(request, 400, "Contact * needs Expires: 0"))
            removed = tuple(
                b for b in (self.location.remove(user, d.device) for d in self.location.devices_of(user))
                if b is not None
            )
            return Registration(self._ok(request, to_tag, [], now), unbound=removed, user=user)

        contact = contacts[0]
        try:
            contact_uri = parse_address(contact).uri
        except (ValueError, IndexError, AttributeError):
            return Registration(response_to(request, 400, "Malformed Contact"))
        device = (named_device(request.headers.get_first("to") or "", contact)
                  or unnamed_device(contact, contact_uri))
        if (user, device) in self.directory.disabled_devices:
            return Registration(response_to(request, 403, "Device disabled"), user=user)
        expires = self._expires(request, contact)
        if expires is None:
            return Registration(response_to(request, 400, "Expires is not a number"))
        try:
            call_id = request.call_id or ""
            cseq = request.cseq.seq
        except (ValueError, IndexError):
            return Registration(response_to(request, 400, "Malformed CSeq"))
        previous = self.location.get(user, device)
        if previous is not None and previous.call_id == call_id and cseq < previous.cseq:
            return Registration(response_to(request, 500, "Out of order REGISTER"))

        if expires == 0:
            removed = self.location.remove(user, device)
            remaining = self.location.devices_of(user)
            return Registration(
                self._ok(request, to_tag, remaining, now),
                unbound=(removed,) if removed else (),
                user=user,
            )
        if expires < self.policy.min_expires:
            return Registration(
                response_to(
                    request, 423, headers=[("Min-Expires", str(self.policy.min_expires))]
                )
            )
        expires = min(expires, self.policy.max_expires)
        known = (user, device) in self.directory.devices
        if not known and not self.policy.auto_create_devices:
            return Registration(response_to(request, 404, f"No device {device} for {user}"))
        binding = Binding(
            user=user,
            device=device,
            contact=stringify_uri(contact_uri),
            source=source,
            user_agent=request.headers.get_first("user-agent") or "",
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
            self._ok(request, to_tag, self.location.devices_of(user), now),
            bound=binding,
            new_device=not known,
            user=user,
        )

    def _expires(self, request: SipRequest, contact: str) -> int | None:
        match = _EXPIRES_PARAM.search(contact.rpartition(">")[2] or contact)
        raw = match.group(1) if match else request.headers.get_first("expires")
        if raw is None:
            return self.policy.default_expires
        try:
            return max(0, int(raw.strip()))
        except ValueError:
            return None

    def _ok(self, request: SipRequest, to_tag: str, bindings: list[Binding], now: float) -> SipResponse:
        headers = [
            ("Contact", f"<{b.contact}>;expires={max(0, int(b.expires_at - now))}")
            for b in bindings
        ]
        return response_to(request, 200, to_tag=to_tag, headers=headers)
