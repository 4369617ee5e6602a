"""Whether an INVITE may go on: the caller proves who it is (digest, 407), then may reach the
device or devices it calls (403, 404, 480). Decisions only: the proxy sends the answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from protocols.sip.digest import DigestError
from protocols.sip.digest_server import DigestAuthenticator, Verdict, parse_credentials
from protocols.sip.message import SipRequest

from .directory import Directory
from .location import Binding, LocationTable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Refusal:
    """The answer to an INVITE that may not go on."""

    status: int
    reason: str | None = None  # None: the standard phrase of the status
    headers: tuple[tuple[str, str], ...] = ()


def authenticate(request: SipRequest, caller: str, auth: DigestAuthenticator,
                 directory: Directory, now: float) -> Refusal | None:
    """None when the caller (the From user) proved who it is; otherwise the 407 or 403."""
    value = request.headers.get_first("proxy-authorization")
    stale = False
    if value:
        try:
            credentials = parse_credentials(value)
        except DigestError:
            credentials = None
        if credentials is not None:
            if credentials.username != caller:
                return Refusal(403, "Credentials do not match the caller")
            outcome = auth.verify(
                credentials, request.method, directory.ha1,
                branch=request.via[0].branch or "", now=now,
            )
            if outcome.ok:
                if directory.is_disabled(caller):
                    return Refusal(403, "Account disabled")
                return None
            stale = outcome.verdict is Verdict.STALE
            if not stale:
                log.info("INVITE from %s refused: %s", caller, outcome.reason)
    challenges = tuple(("Proxy-Authenticate", v) for v in auth.challenges(now, stale=stale))
    return Refusal(407, headers=challenges)


def authorize(caller: tuple[str, str], user: str, device: str | None, directory: Directory,
              location: LocationTable) -> list[Binding] | Refusal:
    """The bindings an INVITE from the caller (user, device) to `user` (one device of theirs,
    or None for all of them) goes to, or why it goes nowhere."""
    disabled = directory.disabled_devices
    if caller in disabled:
        return Refusal(403, "Calling device disabled")
    if user not in directory.accounts:
        return Refusal(404, "No such user")
    if device is not None:
        if (user, device) not in directory.devices:
            return Refusal(404, "No such device")
        if not directory.may_reach(caller[0], user, device):
            return Refusal(403, "Not allowed to sync with this device")
        # After the share check, so only those who may reach a device learn it is disabled.
        if (user, device) in disabled:
            return Refusal(403, "Device disabled")
        binding = location.get(user, device)
        if binding is None:
            return Refusal(480, "Device offline")
        return [binding]
    online = [b for b in location.devices_of(user) if b.key != caller and b.key not in disabled]
    allowed = [b for b in online if directory.may_reach(caller[0], b.user, b.device)]
    if online and not allowed:
        return Refusal(403, "Not allowed to sync with this user")
    if not allowed:
        return Refusal(480, "No device of this user is online")
    return allowed
