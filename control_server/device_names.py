"""Which device a REGISTER or an INVITE speaks for: the name it gives, or, for a plain SIP phone
that names none, a stable name made from its `+sip.instance` or its Contact URI, so that each
Contact is a binding of its own (RFC 3261 10.3) and an admin sees distinct devices."""

from __future__ import annotations

import hashlib
import re

from protocols.sip.message import SipRequest, SipUri, parse_address

from .store import DEFAULT_DEVICE

_DEVICE_PARAM = re.compile(r";device=([A-Za-z0-9][A-Za-z0-9._-]{0,63})(?=[;>]|$)")
_INSTANCE = re.compile(r'\+sip\.instance="?<urn:sipsync:device:([A-Za-z0-9][A-Za-z0-9._-]{0,63})>')
_ANY_INSTANCE = re.compile(r'\+sip\.instance\s*=\s*"<([^">]{1,256})>"', re.IGNORECASE)


def named_device(to_uri: str, contact: str) -> str | None:
    """The device a REGISTER names: a `device` URI parameter on the To or Contact URI, or a
    `+sip.instance` of the form <urn:sipsync:device:NAME>; None when it names none."""
    for text, pattern in ((contact, _INSTANCE), (contact, _DEVICE_PARAM), (to_uri, _DEVICE_PARAM)):
        match = pattern.search(text)
        if match:
            return match.group(1)
    return None


def unnamed_device(contact: str, uri: SipUri) -> str:
    """The name of a device that gives none: from its instance id when it has one (it stays
    the same when the phone's address changes, RFC 5626), else from where its Contact points:
    scheme, user, host, port and transport."""
    instance = _ANY_INSTANCE.search(contact)
    if instance:
        return "instance-" + _digest(instance.group(1).lower())
    transport = (uri.params.get("transport") or "").lower()
    where = f"{uri.scheme}:{uri.user or ''}@{uri.host.lower()}:{uri.port or ''};{transport}"
    return "contact-" + _digest(where)


def caller_device(from_device: str | None, contact: str, contact_uri: SipUri | None) -> str:
    """The device an INVITE comes from: a `device` on its From URI, or named as its REGISTER
    would be from the Contact; the user's default device when there is no Contact at all."""
    if from_device:
        return from_device
    named = named_device("", contact)
    if named is not None:
        return named
    if contact_uri is not None:
        return unnamed_device(contact, contact_uri)
    return DEFAULT_DEVICE


def requesting_device(request: SipRequest) -> str:
    """The device an INVITE or a SUBSCRIBE comes from (see `caller_device`)."""
    from_addr = request.from_addr
    contact = request.headers.get_first("contact") or ""
    contact_uri = parse_address(contact).uri if contact and contact != "*" else None
    return caller_device(from_addr.uri.params.get("device") if from_addr else None, contact,
                         contact_uri)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]
