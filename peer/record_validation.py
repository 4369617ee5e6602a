"""Whether an item's values are what the reference parsers accept: vobject reads each vCard (2.1,
3.0, 4.0: it is the maintained Python parser that knows all three, and decodes their base64 and
quoted-printable values), icalendar (RFC 5545 and 7986, the one Plone and CalDAV tools use) each
calendar item. They only judge: the item's own bytes are what is stored, never their output."""

from __future__ import annotations

import base64
import binascii
import re
import warnings

import icalendar
import vobject

from .record_text import Component, ContentLine, RecordFormatError

_QP_ESCAPE = re.compile(r"=(?![0-9A-Fa-f]{2})")
# A vCard content line up to its colon, as vobject parses it: a name (after an optional group),
# then parameters, each a name with values (quoted or not), or vCard 2.1's bare TYPE value.
_PARAM_VALUE = r'(?:"[^"]*"|[^";:,"]*)'
_VCARD_HEAD = re.compile(rf"^(?:[A-Za-z0-9_-]+\.)?[A-Za-z0-9_-]+(?:;[A-Za-z0-9_-]+(?:={_PARAM_VALUE}(?:,{_PARAM_VALUE})*)?)*$")


def _check_encoded_value(line: ContentLine) -> None:
    """A base64 or quoted-printable value must decode strictly; Python's decoders guess instead."""
    encoding = (line.param("ENCODING") or "").upper()
    if encoding in ("B", "BASE64"):
        try:
            base64.b64decode("".join(line.value.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise RecordFormatError(f"{line.name}: a base64 value that does not decode ({exc})", line.first + 1) from None
    elif encoding == "QUOTED-PRINTABLE":
        broken = _QP_ESCAPE.search(line.value)
        if broken:
            sample = line.value[broken.start() : broken.start() + 3]
            raise RecordFormatError(f"{line.name}: a broken quoted-printable value ({sample!r} is no escape)",
                                    line.first + 1)


def _unfolded_text(lines: list[str], component: Component) -> str:
    """The component as unfolded content lines, which both parsers read more reliably than the
    folded original (vobject trips over vCard 2.1 quoted-printable soft breaks)."""
    out = [f"BEGIN:{component.kind}"]
    for line in component.properties:
        head = lines[line.first].split(":", 1)[0]
        prefix = head.split(";", 1)[0]
        out.append(f"{prefix}{line.params}:{line.value}")
    for child in component.children:
        out.append(_unfolded_text(lines, child))
    out.append(f"END:{component.kind}")
    return "\r\n".join(out)


def _check_values(component: Component) -> None:
    for line in component.properties:
        _check_encoded_value(line)
    for child in component.children:
        _check_values(child)


def _has_encoded_values(component: Component) -> bool:
    return any(line.param("ENCODING") for part in component.walk() for line in part.properties)


def check_vcard(lines: list[str], card: Component) -> None:
    """Refuse a card vobject cannot read, or with a value that does not decode. Every card is held
    to content-line syntax here; vobject judges more than that only where a value is encoded
    (base64, quoted-printable), so only such cards cost its parse (most of an import's time
    otherwise: 0.8 ms a card)."""
    _check_values(card)
    for part in card.walk():
        for line in part.properties:
            # vobject's own rules for a content line, so that a card it is not asked about is
            # held to them too
            raw_name = lines[line.first].split(":", 1)[0].split(";", 1)[0]
            if ":" not in "".join(lines[line.first : line.last + 1]) or not _VCARD_HEAD.match(raw_name + line.params):
                raise RecordFormatError(f"not a content line (NAME:value): {lines[line.first][:60]!r}",
                                        line.first + 1)
    if not _has_encoded_values(card):
        return
    text = _unfolded_text(lines, card).encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            list(vobject.readComponents(text, validate=False))
    except Exception as exc:  # noqa: BLE001 - vobject raises many types; each is a reason to refuse
        raise RecordFormatError(f"the card starting here is unreadable: {_reason(exc)}", card.first + 1) from None


def check_calendar_components(lines: list[str], components: list[Component], first_line: int) -> None:
    """Refuse calendar components icalendar cannot read or finds broken values in."""
    for component in components:
        _check_values(component)
    body = "\r\n".join(_unfolded_text(lines, component) for component in components)
    text = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{body}\r\nEND:VCALENDAR\r\n"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calendar = icalendar.Calendar.from_ical(text.encode("utf-8", errors="surrogateescape"))
    except Exception as exc:  # noqa: BLE001 - as for vobject
        raise RecordFormatError(f"the calendar item starting here is unreadable: {_reason(exc)}", first_line) from None
    for part in calendar.walk():
        for prop, error in getattr(part, "errors", ()):
            raise RecordFormatError(f"{part.name} {prop}: {error}", first_line)


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:159] + "…"
