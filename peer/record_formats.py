"""vCard and iCalendar just deep enough for a record store: split a multi-card .vcf or a .ics into
items, find an item's UID, and join items back into one file. No dependency, no full parser."""

from __future__ import annotations

import re

VCARD = "text/vcard"
ICALENDAR = "text/calendar"

_CALENDAR_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")


class RecordFormatError(ValueError):
    """The file is not a vCard or iCalendar file this store can split."""


def _lines(data: bytes) -> list[str]:
    # surrogateescape keeps bytes of other charsets intact through the round trip
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    return _LINE_BREAK.split(text)


def _encode(lines: list[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="surrogateescape")


def unfold(lines: list[str]) -> list[str]:
    """Join RFC 6350/5545 folded lines (a continuation starts with one space or tab)."""
    logical: list[str] = []
    for line in lines:
        if line[:1] in (" ", "\t") and logical:
            logical[-1] += line[1:]
        else:
            logical.append(line)
    return logical


def _property(line: str) -> tuple[str, str]:
    """Name (upper case, without a vCard group prefix) and value of a content line."""
    colon = line.find(":")
    if colon < 0:
        return line.strip().upper(), ""
    head, value = line[:colon], line[colon + 1 :]
    name = head.split(";", 1)[0].rsplit(".", 1)[-1].strip().upper()
    return name, value


def _blocks(lines: list[str], kind: str) -> list[list[str]]:
    """Top-level BEGIN:kind ... END:kind blocks; lines between blocks must be blank."""
    blocks: list[list[str]] = []
    current: list[str] | None = None
    depth = 0
    for line in lines:
        name, value = _property(line) if line.strip() else ("", "")
        if current is None:
            if not line.strip():
                continue
            if name != "BEGIN" or value.strip().upper() != kind:
                raise RecordFormatError(f"expected BEGIN:{kind}, found {line[:60]!r}")
            current, depth = [line], 1
            continue
        if not line.strip():
            continue  # blank lines inside an object carry nothing
        current.append(line)
        if name == "BEGIN":
            depth += 1
        elif name == "END":
            depth -= 1
            if depth == 0:
                if value.strip().upper() != kind:
                    raise RecordFormatError(f"BEGIN:{kind} closed by {line[:60]!r}")
                blocks.append(current)
                current = None
    if current is not None:
        raise RecordFormatError(f"BEGIN:{kind} without END:{kind}")
    return blocks


def split_vcards(data: bytes) -> list[bytes]:
    """One item per vCard of a .vcf file, each with CRLF line ends."""
    return [_encode(block) for block in _blocks(_lines(data), "VCARD")]


def _components(block: list[str]) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """A VCALENDAR's own properties, its VTIMEZONEs and its other components."""
    header: list[str] = []
    timezones: list[list[str]] = []
    components: list[list[str]] = []
    inner = block[1:-1]
    index = 0
    while index < len(inner):
        name, value = _property(inner[index])
        if name != "BEGIN":
            header.append(inner[index])
            index += 1
            continue
        kind = value.strip().upper()
        depth, end = 0, index
        for end in range(index, len(inner)):
            inner_name, _ = _property(inner[end])
            depth += inner_name == "BEGIN"
            depth -= inner_name == "END"
            if depth == 0:
                break
        component = inner[index : end + 1]
        (timezones if kind == "VTIMEZONE" else components).append(component)
        index = end + 1
    return header, timezones, components


def _uid_of_component(component: list[str]) -> str | None:
    depth = 0
    for line in unfold(component):
        name, value = _property(line)
        if name == "BEGIN":
            depth += 1
        elif name == "END":
            depth -= 1
        elif name == "UID" and depth == 1:
            return value.strip() or None
    return None


def _tzid(timezone: list[str]) -> str:
    for line in unfold(timezone):
        name, value = _property(line)
        if name == "TZID":
            return value.strip()
    return ""


def split_icalendar(data: bytes) -> list[bytes]:
    """One item per UID of a .ics file (an event and its recurrence overrides stay together),
    each a VCALENDAR of its own with the calendar properties and the time zones it uses."""
    items: list[bytes] = []
    for block in _blocks(_lines(data), "VCALENDAR"):
        header, timezones, components = _components(block)
        groups: dict[str, list[list[str]]] = {}
        for number, component in enumerate(components):
            groups.setdefault(_uid_of_component(component) or f"\x00{number}", []).append(component)
        for group in groups.values():
            text = "\r\n".join(line for component in group for line in component)
            used = [tz for tz in timezones if _tzid(tz) and _tzid(tz) in text]
            lines = [block[0], *header]
            for component in [*used, *group]:
                lines.extend(component)
            lines.append(block[-1])
            items.append(_encode(lines))
    return items


def uid_of(content: bytes) -> str | None:
    """The UID that names this card or event on every device, if it has one."""
    lines = _lines(content)
    first = next((line for line in lines if line.strip()), "")
    _, kind = _property(first)
    kind = kind.strip().upper()
    if kind == "VCARD":
        return _uid_of_component(lines)
    if kind == "VCALENDAR":
        for component in _components(_blocks(lines, "VCALENDAR")[0])[2]:
            uid = _uid_of_component(component)
            if uid:
                return uid
    return None


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\,;nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


def summary_of(content: bytes, width: int = 60) -> str:
    """One line that names an item for a person: a card's FN, an event's SUMMARY, or the first
    line of other text."""
    lines = unfold(_lines(content))
    first = next((line for line in lines if line.strip()), "")
    name, kind = _property(first)
    wanted = {"VCARD": "FN", "VCALENDAR": "SUMMARY"}.get(kind.strip().upper()) if name == "BEGIN" else None
    text = first
    if wanted:
        text = _unescape(next((value for key, value in map(_property, lines) if key == wanted), ""))
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def join_vcards(items: list[bytes]) -> bytes:
    return b"".join(item if item.endswith(b"\n") else item + b"\r\n" for item in items)


def join_icalendar(items: list[bytes]) -> bytes:
    """All items in one VCALENDAR: the first item's calendar properties, each time zone once."""
    header: list[str] | None = None
    timezones: dict[str, list[str]] = {}
    components: list[list[str]] = []
    for item in items:
        for block in _blocks(_lines(item), "VCALENDAR"):
            item_header, item_timezones, item_components = _components(block)
            if header is None:
                header = item_header
            for timezone in item_timezones:
                timezones.setdefault(_tzid(timezone), timezone)
            components.extend(item_components)
    lines = ["BEGIN:VCALENDAR", *(header or ["VERSION:2.0", "PRODID:-//sipsync//records//EN"])]
    for component in [*timezones.values(), *components]:
        lines.extend(component)
    lines.append("END:VCALENDAR")
    return _encode(lines)


def sniff(data: bytes) -> str | None:
    """The content type of a vCard or iCalendar file, from its first line."""
    for line in _lines(data[:4096]):
        if line.strip():
            name, value = _property(line)
            if name == "BEGIN":
                return {"VCARD": VCARD, "VCALENDAR": ICALENDAR}.get(value.strip().upper())
            return None
    return None


def split(data: bytes, content_type: str | None = None) -> list[bytes]:
    content_type = content_type or sniff(data)
    if content_type == VCARD:
        return split_vcards(data)
    if content_type == ICALENDAR:
        return split_icalendar(data)
    raise RecordFormatError("not a vCard or iCalendar file")


def join(items: list[bytes], content_type: str) -> bytes:
    if content_type == VCARD:
        return join_vcards(items)
    if content_type == ICALENDAR:
        return join_icalendar(items)
    raise RecordFormatError(f"cannot join items of type {content_type}")
