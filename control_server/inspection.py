"""What a request must pass before the registrar or the proxy sees it (RFC 3261 8.2.1-8.2.3 for
the requests the server answers itself, 16.3 for those it proxies): the URI scheme (416), the
extensions it is asked to support (420) and the method (405, 501). Decisions only."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.sip.message import SipRequest

# The methods the server takes; a 405 lists them in Allow.
ALLOW = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, REGISTER, SUBSCRIBE"
# Toward a user's address: OPTIONS there is not answered by the server, nor passed on.
ALLOW_TOWARD_USER = "INVITE, ACK, BYE, CANCEL, INFO, REGISTER, SUBSCRIBE"
SERVED_METHODS = frozenset(ALLOW.replace(",", "").split())
# Methods other SIP standards define: refused with 405 (not here), where anything else is 501
# (not implemented anywhere, RFC 3261 21.5.2).
KNOWN_METHODS = SERVED_METHODS | {"MESSAGE", "NOTIFY", "SUBSCRIBE", "UPDATE", "PRACK", "REFER",
                                  "PUBLISH"}
# Option tags the server supports in Require and Proxy-Require: none yet.
SUPPORTED_EXTENSIONS: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Rejection:
    """The answer to a request that goes no further."""

    status: int
    reason: str | None = None  # None: the standard phrase of the status
    headers: tuple[tuple[str, str], ...] = ()


def has_user(uri: str) -> bool:
    """Whether a Request-URI names a user (`sip:alice@realm`) rather than the server."""
    return "@" in uri.split(";", 1)[0]


def allow_for(uri: str) -> str:
    return ALLOW_TOWARD_USER if has_user(uri) else ALLOW


def inspect(request: SipRequest, *, answered_here: bool) -> Rejection | None:
    """None when the request may go on. `answered_here`: the server is its user agent server
    (a REGISTER, an OPTIONS to the server), so its Require applies as well as Proxy-Require.
    An ACK is never answered; a CANCEL is not refused for its extensions (8.2.2.3)."""
    method = request.method
    if method == "ACK":
        return None
    scheme = request.uri.partition(":")[0].lower()
    if scheme not in ("sip", "sips"):
        return Rejection(416, f"Unsupported URI scheme {scheme[:20]}")
    if method != "CANCEL":
        unsupported = _unsupported(request, "proxy-require")
        if answered_here:
            unsupported += [t for t in _unsupported(request, "require") if t not in unsupported]
        if unsupported:
            return Rejection(420, headers=(("Unsupported", ", ".join(unsupported)),))
    return None


def method_rejection(request: SipRequest) -> Rejection:
    """The answer to an out-of-dialog request of a method the server does not serve."""
    allow = (("Allow", allow_for(request.uri)),)
    if request.method in KNOWN_METHODS:
        return Rejection(405, headers=allow)
    return Rejection(501, headers=allow)


def _unsupported(request: SipRequest, header: str) -> list[str]:
    tags = []
    for value in request.headers.get(header):
        for tag in value.split(","):
            tag = tag.strip()
            if tag and tag.lower() not in SUPPORTED_EXTENSIONS and tag not in tags:
                tags.append(tag)
    return tags
