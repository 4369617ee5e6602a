"""Items as vCard and iCalendar define them: one item per vCard, one per iCalendar UID (a master
with all its overrides, across every VCALENDAR of a file, with the VTIMEZONEs it references), and
the calendar's own properties and unreferenced time zones apart, as the dataset's calendar.

An item's bytes are a slice of the user's file (line ends made CRLF, a BOM dropped): folding, blank
lines, case and charsets stay as written. Structure comes from record_text, judgement of the values
from the reference parsers (record_validation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import record_validation
from .record_text import (
    MAX_ITEM_BYTES,
    Component,
    RecordFormatError,
    check_charsets,
    content_lines,
    decode_lines,
    encode_lines,
    parse_tree,
)

__all__ = [
    "ICALENDAR", "VCARD", "ParsedFile", "RecordFormatError", "calendar_summary", "join", "merge_calendars",
    "parse", "sniff", "split", "split_icalendar", "split_vcards", "summary_of", "uid_of",
]

VCARD = "text/vcard"
ICALENDAR = "text/calendar"

# Components an .ics may hold at the top level without a VCALENDAR around them (time zone files
# and some exports do this); they are read as if in one.
_BARE_CALENDAR_COMPONENTS = frozenset({"VTIMEZONE", "VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY"})
# Calendar properties that every item and every file has anyway: alone they are no calendar data.
_PLAIN_HEADER = frozenset({"VERSION", "PRODID"})
_DEFAULT_HEADER = ["VERSION:2.0", "PRODID:-//sipsync//records//EN"]
_LINE_BREAK = re.compile(r"\r\n|\n|\r")


@dataclass(frozen=True, slots=True)
class ParsedFile:
    """What a file holds: its items, and for iCalendar the calendar's own data (a VCALENDAR of its
    properties and unreferenced VTIMEZONEs), None when it has nothing beyond VERSION and PRODID."""

    content_type: str
    items: tuple[bytes, ...]
    calendar: bytes | None = None
    uids: tuple[str | None, ...] = ()  # each item's UID, as uid_of would find it


def sniff(data: bytes) -> str | None:
    """The content type of a vCard or iCalendar file, from its first line."""
    text = data[:4096].decode("utf-8", errors="replace").lstrip("\ufeff")
    for line in _LINE_BREAK.split(text):
        if line.strip():
            head, _, value = line.partition(":")
            if head.strip().upper() != "BEGIN":
                return None
            kind = value.strip().upper()
            if kind == "VCARD":
                return VCARD
            if kind == "VCALENDAR" or kind in _BARE_CALENDAR_COMPONENTS:
                return ICALENDAR
            return None
    return None


def _slice(lines: list[str], component: Component) -> list[str]:
    return lines[component.first : component.last + 1]


def _checked_size(item: bytes, line: int) -> bytes:
    if len(item) > MAX_ITEM_BYTES:
        raise RecordFormatError(f"an item larger than {MAX_ITEM_BYTES // (1024 * 1024)} MiB", line)
    return item


def _vcards(lines: list[str], tree: list[Component]) -> ParsedFile:
    items, uids = [], []
    for card in tree:
        if card.kind != "VCARD":
            raise RecordFormatError(f"expected BEGIN:VCARD, found BEGIN:{card.kind}", card.first + 1)
        version = (card.value_of("VERSION") or "").strip()
        check_charsets(lines, card, allow_charset_param=version == "2.1")
        record_validation.check_vcard(lines, card)
        items.append(_checked_size(encode_lines(_slice(lines, card)), card.first + 1))
        uids.append((card.value_of("UID") or "").strip() or None)
    return ParsedFile(VCARD, tuple(items), None, tuple(uids))


def _tzids_used(component: Component) -> list[str]:
    return [tzid for part in component.walk() for line in part.properties if (tzid := line.param("TZID"))]


@dataclass(slots=True)
class _Group:
    """The components of one UID, and the header of the VCALENDAR where it first appeared."""

    header: list[str]
    components: list[Component]


def _calendars(lines: list[str], tree: list[Component]) -> ParsedFile:
    groups: dict[str, _Group] = {}
    timezones: dict[str, Component] = {}
    header_lines: dict[str, list[str]] = {}  # first occurrence of each calendar property, in order
    bare: list[Component] = []
    calendars: list[tuple[list[str], list[Component]]] = []
    for top in tree:
        if top.kind == "VCALENDAR":
            check_charsets(lines, top, allow_charset_param=False)
            header = [line for prop in top.properties for line in lines[prop.first : prop.last + 1]]
            for prop in top.properties:
                header_lines.setdefault(prop.name, lines[prop.first : prop.last + 1])
            calendars.append((header, top.children))
        elif top.kind in _BARE_CALENDAR_COMPONENTS:
            check_charsets(lines, top, allow_charset_param=False)
            bare.append(top)
        else:
            raise RecordFormatError(f"expected BEGIN:VCALENDAR, found BEGIN:{top.kind}", top.first + 1)
    if bare:
        calendars.append((list(_DEFAULT_HEADER), bare))
    for header, children in calendars:
        for number, component in enumerate(children):
            if component.kind == "VTIMEZONE":
                tzid = (component.value_of("TZID") or "").strip()
                timezones.setdefault(tzid or f"\x00{component.first}", component)
                continue
            uid = (component.value_of("UID") or "").strip() or f"\x00{component.first}:{number}"
            groups.setdefault(uid, _Group(header, [])).components.append(component)
    used: set[str] = set()
    items, uids = [], []
    for uid, group in groups.items():
        first_line = group.components[0].first + 1
        record_validation.check_calendar_components(lines, group.components, first_line)
        wanted = {tzid for component in group.components for tzid in _tzids_used(component)}
        used |= wanted
        carried = [tz for tzid, tz in timezones.items() if tzid in wanted]
        item_lines = ["BEGIN:VCALENDAR", *group.header]
        for component in [*carried, *group.components]:
            item_lines.extend(_slice(lines, component))
        item_lines.append("END:VCALENDAR")
        items.append(_checked_size(encode_lines(item_lines), first_line))
        uids.append(None if uid.startswith("\x00") else uid)
    unreferenced = [tz for tzid, tz in timezones.items() if tzid not in used]
    if unreferenced:
        record_validation.check_calendar_components(lines, unreferenced, unreferenced[0].first + 1)
    calendar = None
    if unreferenced or set(header_lines) - _PLAIN_HEADER:
        header = [line for prop_lines in header_lines.values() for line in prop_lines]
        calendar_lines = ["BEGIN:VCALENDAR", *(header or _DEFAULT_HEADER)]
        for timezone in unreferenced:
            calendar_lines.extend(_slice(lines, timezone))
        calendar_lines.append("END:VCALENDAR")
        calendar = encode_lines(calendar_lines)
    return ParsedFile(ICALENDAR, tuple(items), calendar, tuple(uids))


def parse(data: bytes, content_type: str | None = None) -> ParsedFile:
    """Every item of a .vcf or .ics file, and its calendar data; a file with anything this cannot
    keep is refused whole, with the line and the reason."""
    content_type = content_type or sniff(data)
    if content_type not in (VCARD, ICALENDAR):
        raise RecordFormatError("not a vCard or iCalendar file")
    lines = decode_lines(data)
    tree = parse_tree(lines)
    if not tree:
        raise RecordFormatError("the file holds no vCard or iCalendar data")
    if content_type == VCARD:
        return _vcards(lines, tree)
    return _calendars(lines, tree)


def split_vcards(data: bytes) -> list[bytes]:
    """One item per vCard of a .vcf file, each with CRLF line ends."""
    return list(parse(data, VCARD).items)


def split_icalendar(data: bytes) -> list[bytes]:
    """One item per UID of a .ics file (an event and its recurrence overrides stay together),
    each a VCALENDAR of its own with the calendar properties and the time zones it uses."""
    return list(parse(data, ICALENDAR).items)


def split(data: bytes, content_type: str | None = None) -> list[bytes]:
    return list(parse(data, content_type).items)


def _item_tree(content: bytes) -> tuple[list[str], list[Component]]:
    lines = decode_lines(content)
    return lines, parse_tree(lines)


def uid_of(content: bytes) -> str | None:
    """The UID that names this card or event on every device, if it has one."""
    try:
        _, tree = _item_tree(content)
    except RecordFormatError:
        return None
    if not tree:
        return None
    top = tree[0]
    if top.kind == "VCALENDAR":
        for component in top.children:
            if component.kind != "VTIMEZONE":
                uid = (component.value_of("UID") or "").strip()
                if uid:
                    return uid
        return None
    return (top.value_of("UID") or "").strip() or None


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\,;nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def summary_of(content: bytes, width: int = 60) -> str:
    """One line that names an item for a person: a card's FN, an event's SUMMARY, or the first
    line of other text."""
    lines = _LINE_BREAK.split(content.decode("utf-8", errors="replace"))
    logical = content_lines(lines)
    first = logical[0] if logical else None
    wanted = None
    if first is not None and first.name == "BEGIN":
        wanted = {"VCARD": "FN", "VCALENDAR": "SUMMARY"}.get(first.value.strip().upper())
    text = next((line for line in lines if line.strip()), "")
    if wanted:
        text = _unescape(next((line.value for line in logical if line.name == wanted), ""))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def join_vcards(items: list[bytes]) -> bytes:
    return b"".join(item if item.endswith(b"\n") else item + b"\r\n" for item in items)


def _calendar_parts(content: bytes) -> tuple[list[str], list[tuple[str, list[str]]], list[list[str]]]:
    """A VCALENDAR's header lines, its time zones (TZID, lines) and its other components' lines."""
    lines, tree = _item_tree(content)
    header: list[str] = []
    timezones: list[tuple[str, list[str]]] = []
    components: list[list[str]] = []
    for calendar in tree:
        header += [line for prop in calendar.properties for line in lines[prop.first : prop.last + 1]]
        for child in calendar.children:
            if child.kind == "VTIMEZONE":
                timezones.append(((child.value_of("TZID") or "").strip(), _slice(lines, child)))
            else:
                components.append(_slice(lines, child))
    return header, timezones, components


def join_icalendar(items: list[bytes], calendar: bytes | None = None) -> bytes:
    """All items in one VCALENDAR: the calendar's properties (else the first item's), each time
    zone once, the calendar's unreferenced time zones after the items' own."""
    header: list[str] | None = None
    timezones: dict[str, list[str]] = {}
    components: list[list[str]] = []
    if calendar is not None:
        header, calendar_timezones, _ = _calendar_parts(calendar)
    for item in items:
        item_header, item_timezones, item_components = _calendar_parts(item)
        if header is None:
            header = item_header
        for tzid, timezone in item_timezones:
            timezones.setdefault(tzid, timezone)
        components.extend(item_components)
    if calendar is not None:
        for tzid, timezone in calendar_timezones:
            timezones.setdefault(tzid, timezone)
    lines = ["BEGIN:VCALENDAR", *(header or _DEFAULT_HEADER)]
    for component in [*timezones.values(), *components]:
        lines.extend(component)
    lines.append("END:VCALENDAR")
    return encode_lines(lines)


def join(items: list[bytes], content_type: str, calendar: bytes | None = None) -> bytes:
    if content_type == VCARD:
        return join_vcards(items)
    if content_type == ICALENDAR:
        return join_icalendar(items, calendar)
    raise RecordFormatError(f"cannot join items of type {content_type}")


def merge_calendars(current: bytes | None, incoming: bytes) -> bytes:
    """The dataset's calendar after importing a file's: each property the file names replaces the
    dataset's, the others stay; its time zones replace those of the same TZID."""
    if current is None:
        return incoming
    old_header, old_timezones, _ = _calendar_parts(current)
    new_header, new_timezones, _ = _calendar_parts(incoming)
    named = {name for name, _ in _header_properties(new_header)}
    kept = [lines for name, lines in _header_properties(old_header) if name not in named]
    header = [line for lines in kept for line in lines] + new_header
    timezones = dict(old_timezones)
    timezones.update(new_timezones)
    out = ["BEGIN:VCALENDAR", *header]
    for timezone in timezones.values():
        out.extend(timezone)
    out.append("END:VCALENDAR")
    return encode_lines(out)


def _header_properties(header: list[str]) -> list[tuple[str, list[str]]]:
    return [(prop.name, header[prop.first : prop.last + 1]) for prop in content_lines(header)]


def calendar_summary(calendar: bytes) -> str:
    """What a person reads about a calendar's own data: its properties and time zones."""
    header, timezones, _ = _calendar_parts(calendar)
    names = [name for name, _ in _header_properties(header) if name not in _PLAIN_HEADER]
    parts = []
    if names:
        parts.append("calendar properties " + ", ".join(dict.fromkeys(names)))
    if timezones:
        parts.append(f"{len(timezones)} time zone(s) no item uses")
    return " and ".join(parts) or "no calendar properties"
