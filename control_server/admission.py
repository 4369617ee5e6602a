"""Whether an INVITE may go on: the caller proves who it is (digest, 407), then may reach the
device or devices it calls (403, 404, 480). Decisions only: the proxy sends the answers.

A caller learns what exists only among its own devices and those shared with it: any other
target, whether its user or device exists or not, gets the same 403.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from protocols.sip.digest import DigestError
from protocols.sip.digest_server import DigestAuthenticator, Verdict, parse_credentials
from protocols.sip.message import SipRequest

from .directory import Directory
from .location import Binding, LocationTable
from .throttle import Penalty, Throttle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The answer to an INVITE that may not go on."""

    status: int
    reason: str | None = None  # None: the standard phrase of the status
    headers: tuple[tuple[str, str], ...] = ()
    penalty: Penalty | None = None  # a failed authentication's: how long the answer waits


def authenticate(request: SipRequest, caller: str, auth: DigestAuthenticator,
                 directory: Directory, now: float, *, source: str = "",
                 throttle: Throttle | None = None) -> Refusal | None:
    """None when the caller (the From user) proved who it is from the address `source`;
    otherwise the 407 or 403."""
    value = request.headers.get_first("proxy-authorization")
    algorithms = auth.algorithms_for(request.headers.get_first("user-agent") or "")
    stale = False
    penalty = None
    if value and throttle is not None and not throttle.may_try(source, caller, now):
        # The caller is banned and this address never authenticated it: its credentials are
        # not even looked at, and the challenge comes as late as the slowest failure's.
        challenges = tuple(("Proxy-Authenticate", v)
                           for v in auth.challenges(now, algorithms=algorithms))
        return Refusal(407, headers=challenges,
                       penalty=Penalty(delay=throttle.policy.max_delay, log=False))
    if value:
        try:
            credentials = parse_credentials(value)
        except DigestError:
            credentials = None
        if credentials is not None:
            if credentials.username != caller:
                penalty = throttle.failed(source, caller, now) if throttle else None
                return Refusal(403, "Credentials do not match the caller", penalty=penalty)
            outcome = auth.verify(
                credentials, request.method, directory.ha1,
                branch=request.via[0].branch or "", now=now,
            )
            if outcome.ok:
                if throttle is not None:
                    throttle.succeeded(source, caller, now)
                if directory.is_disabled(caller):
                    return Refusal(403, "Account disabled")
                return None
            stale = outcome.verdict is Verdict.STALE
            if not stale:
                penalty = throttle.failed(source, caller, now) if throttle else None
                if penalty is None or penalty.log:
                    log.info("INVITE from %s refused: %s", caller, outcome.reason)
                if penalty is not None and penalty.silent:
                    # An INVITE's transaction must end: the longest delay stands for silence.
                    penalty = Penalty(delay=throttle.policy.max_delay, log=False)
    challenges = tuple(("Proxy-Authenticate", v)
                       for v in auth.challenges(now, stale=stale, algorithms=algorithms))
    return Refusal(407, headers=challenges, penalty=penalty)


# The one answer to a target the caller may not know about: another user's device that is not
# shared with it, or a user or device that does not exist.
NOT_ALLOWED_DEVICE = Refusal(403, "Not allowed to sync with this device")
NOT_ALLOWED_USER = Refusal(403, "Not allowed to sync with this user")


def authorize(caller: tuple[str, str], user: str, device: str | None, directory: Directory,
              location: LocationTable) -> list[Binding] | Refusal:
    """The bindings an INVITE from the caller (user, device) to `user` (one device of theirs,
    or None for all of them) goes to, or why it goes nowhere."""
    disabled = directory.disabled_devices
    if caller in disabled:
        return Refusal(403, "Calling device disabled")
    own = user == caller[0]
    if device is not None:
        if not own and not directory.may_reach(caller[0], user, device):
            return NOT_ALLOWED_DEVICE
        if user not in directory.accounts:
            return Refusal(404, "No such user")
        if (user, device) not in directory.devices:
            return Refusal(404, "No such device")
        # After the share check, so only those who may reach a device learn it is disabled.
        if (user, device) in disabled:
            return Refusal(403, "Device disabled")
        binding = location.get(user, device)
        if binding is None:
            return Refusal(480, "Device offline")
        return [binding]
    online = [b for b in location.devices_of(user) if b.key != caller and b.key not in disabled]
    allowed = [b for b in online if directory.may_reach(caller[0], b.user, b.device)]
    if allowed:
        return allowed
    if own:
        return Refusal(404, "No such user") if user not in directory.accounts else Refusal(
            480, "No device of this user is online")
    if not _shares_any(directory, caller[0], user):
        return NOT_ALLOWED_USER
    return Refusal(480, "No device of this user is online")


def _shares_any(directory: Directory, caller: str, owner: str) -> bool:
    """Whether `owner` shared any device with `caller`: read only when nothing was reachable,
    so the walk over every share stays off the path of calls that go through."""
    return any(owner == sharer and caller in grantees
               for (sharer, _), grantees in directory.shares.items())
