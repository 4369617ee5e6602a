"""The registration event package's body (RFC 3680, `application/reginfo+xml`): which devices are
online, as a NOTIFY carries it. One <registration> per user (address of record), one <contact> per
device; what sipsync adds (device name, online-since, last-seen, user agent, why a device went
away) sits in an extension element of its own namespace, which RFC 3680 lets others ignore."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from lxml import etree

from protocols.untrusted_xml import UntrustedXmlError, parse_untrusted

CONTENT_TYPE = "application/reginfo+xml"
EVENT = "reg"
NAMESPACE = "urn:ietf:params:xml:ns:reginfo"
EXTENSION = "urn:sipsync:presence:1"
MAX_BODY_BYTES = 256 * 1024
MAX_DEPTH = 6  # reginfo / registration / contact / uri: the slack is for extensions
_R = f"{{{NAMESPACE}}}"
_X = f"{{{EXTENSION}}}"


class RegInfoError(ValueError):
    """A reginfo body that cannot be read; `reason` is meant for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ContactEvent(Enum):
    """Why a contact's state is what it is (RFC 3680 section 5.2.2's event attribute)."""

    REGISTERED = "registered"
    CREATED = "created"
    REFRESHED = "refreshed"
    SHORTENED = "shortened"
    EXPIRED = "expired"
    DEACTIVATED = "deactivated"
    PROBATION = "probation"
    UNREGISTERED = "unregistered"
    REJECTED = "rejected"  # removed or disabled by an admin; DeviceState.reason says which


@dataclass(frozen=True, slots=True)
class DeviceState:
    user: str
    device: str
    online: bool
    event: ContactEvent
    contact: str = ""             # the device's contact URI while online
    expires: int | None = None    # seconds left of its registration while online
    online_since: float | None = None
    last_seen: float | None = None
    user_agent: str = ""
    reason: str = ""              # why it went away, for a person


@dataclass(frozen=True, slots=True)
class RegInfo:
    version: int
    full: bool                    # state="full": every device the watcher may see; else changes
    devices: tuple[DeviceState, ...]


def build(info: RegInfo, realm: str) -> bytes:
    root = etree.Element(_R + "reginfo", nsmap={None: NAMESPACE, "ss": EXTENSION})
    root.set("version", str(info.version))
    root.set("state", "full" if info.full else "partial")
    by_user: dict[str, list[DeviceState]] = {}
    for device in info.devices:
        by_user.setdefault(device.user, []).append(device)
    for user, devices in by_user.items():
        registration = etree.SubElement(root, _R + "registration")
        registration.set("aor", f"sip:{user}@{realm}")
        registration.set("id", user)
        registration.set("state", "active" if any(d.online for d in devices) else "terminated")
        for device in devices:
            _contact(registration, device, f"sip:{user}@{realm}")
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def _contact(registration: etree._Element, device: DeviceState, aor: str) -> None:
    contact = etree.SubElement(registration, _R + "contact")
    contact.set("id", f"{device.user}/{device.device}")
    contact.set("state", "active" if device.online else "terminated")
    contact.set("event", device.event.value)
    if device.expires is not None:
        contact.set("expires", str(max(0, device.expires)))
    # RFC 3680 wants a URI even for a device that is gone: its address of record stands in.
    etree.SubElement(contact, _R + "uri").text = device.contact or aor
    param = etree.SubElement(contact, _R + "unknown-param")
    param.set("name", "device")
    param.text = device.device
    extra = etree.SubElement(contact, _X + "device")
    for name, value in (("online-since", device.online_since), ("last-seen", device.last_seen)):
        if value is not None:
            extra.set(name, f"{value:.3f}")
    if device.user_agent:
        extra.set("user-agent", device.user_agent)
    if device.reason:
        extra.set("reason", device.reason)


def parse(data: bytes) -> RegInfo:
    """A NOTIFY body from the server, checked: RegInfoError says what is wrong."""
    try:
        root = parse_untrusted(data, max_bytes=MAX_BODY_BYTES, max_depth=MAX_DEPTH)
    except UntrustedXmlError as exc:
        raise RegInfoError(exc.reason) from None
    if root.tag != _R + "reginfo":
        raise RegInfoError(f"expected <reginfo> in {NAMESPACE}, got {etree.QName(root).localname!r}")
    version = _integer(root.get("version"), "version")
    state = root.get("state")
    if state not in ("full", "partial"):
        raise RegInfoError(f"reginfo state must be full or partial, not {state!r}")
    devices = []
    for registration in root.iterchildren(_R + "registration"):
        aor = registration.get("aor") or ""
        user = aor.removeprefix("sip:").partition("@")[0]
        if not user:
            raise RegInfoError(f"registration without a user in its aor {aor!r}")
        devices += [_device(user, contact) for contact in registration.iterchildren(_R + "contact")]
    return RegInfo(version, state == "full", tuple(devices))


def _device(user: str, contact: etree._Element) -> DeviceState:
    name = next((p.text or "" for p in contact.iterchildren(_R + "unknown-param")
                 if p.get("name") == "device"), "")
    if not name:
        name = (contact.get("id") or "").partition("/")[2]
    if not name:
        raise RegInfoError(f"a contact of {user} names no device")
    state = contact.get("state")
    if state not in ("active", "terminated"):
        raise RegInfoError(f"contact state must be active or terminated, not {state!r}")
    try:
        event = ContactEvent(contact.get("event"))
    except ValueError:
        raise RegInfoError(f"unknown contact event {contact.get('event')!r}") from None
    uri = contact.find(_R + "uri")
    extra = contact.find(_X + "device")
    attrs = extra.attrib if extra is not None else {}
    expires = contact.get("expires")
    return DeviceState(
        user=user, device=name, online=state == "active", event=event,
        contact=(uri.text or "").strip() if uri is not None and state == "active" else "",
        expires=_integer(expires, "expires") if expires is not None else None,
        online_since=_seconds(attrs.get("online-since"), "online-since"),
        last_seen=_seconds(attrs.get("last-seen"), "last-seen"),
        user_agent=attrs.get("user-agent", ""), reason=attrs.get("reason", ""),
    )


def _integer(text: str | None, what: str) -> int:
    if text is None or not text.strip().isdigit() or len(text.strip()) > 10:
        raise RegInfoError(f"{what} must be a whole number, not {text!r}")
    return int(text)


def _seconds(text: str | None, what: str) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise RegInfoError(f"{what} must be seconds since the epoch, not {text!r}") from None
    if not 0 <= value < 1e11:
        raise RegInfoError(f"{what} is out of range: {text!r}")
    return value
