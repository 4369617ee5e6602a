"""The text layer under vCard and iCalendar: bytes to numbered physical lines (BOM, CRLF or LF,
charsets, limits on hostile input), content lines (name, parameters, value) and the BEGIN/END tree.
It never rewrites a line: what it finds are spans of the original lines, so items can be sliced."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# Limits that no real card or event reaches, so that a hostile file is refused quickly: a vCard 3.0
# PHOTO written as one physical line stays far below the line limit.
MAX_LINE_CHARS = 4 * 1024 * 1024
MAX_DEPTH = 8  # VCALENDAR > VEVENT > VALARM is 3; a vCard 2.1 AGENT nests one VCARD more
MAX_ITEM_BYTES = 32 * 1024 * 1024

_LINE_BREAK = re.compile(r"\r\n|\n|\r")
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


class RecordFormatError(ValueError):
    """The file is not a vCard or iCalendar file this store can split, with the line and reason."""

    def __init__(self, reason: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {reason}" if line is not None else reason)
        self.reason = reason
        self.line = line


def decode_lines(data: bytes) -> list[str]:
    """The physical lines of a file, without line ends or a byte-order mark. Bytes that are not
    UTF-8 are kept as surrogates (so they survive a round trip); `check_charsets` judges them."""
    if data.startswith(_UTF16_BOMS):
        raise RecordFormatError("the file is UTF-16; vCard and iCalendar files are UTF-8", 1)
    text = data.decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()  # the line end of the last line
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_CHARS:
            raise RecordFormatError(f"the line is longer than {MAX_LINE_CHARS // (1024 * 1024)} MiB", number)
        if _CONTROL.search(line):
            raise RecordFormatError("a control character (binary data?) in the text", number)
    return lines


def encode_lines(lines: list[str]) -> bytes:
    """Lines joined with CRLF, the line end RFC 6350 and RFC 5545 prescribe."""
    return ("\r\n".join(lines) + "\r\n").encode("utf-8", errors="surrogateescape")


@dataclass(frozen=True, slots=True)
class ContentLine:
    """One logical (unfolded) line: where it starts and ends among the physical lines."""

    first: int  # index of its first physical line
    last: int  # index of its last physical line (folded or quoted-printable continuations)
    name: str  # upper case, without a vCard group prefix
    params: str  # the raw text between the name and the colon, starting with ';' (or empty)
    value: str

    def param(self, wanted: str) -> str | None:
        """A parameter's value (quotes removed); a vCard 2.1 bare `;BASE64` counts as ENCODING."""
        for part in _split_params(self.params):
            key, equals, value = part.partition("=")
            key = key.strip().upper()
            if equals and key == wanted:
                return value.strip().strip('"')
            if not equals and wanted == "ENCODING" and key in ("BASE64", "QUOTED-PRINTABLE", "B"):
                return key
        return None


def _split_params(params: str) -> list[str]:
    parts, current, quoted = [], [], False
    for char in params:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part]


def parse_head(text: str) -> tuple[str, str, str]:
    """Name, parameters and value of an unfolded content line (the colon outside quotes)."""
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            head, value = text[:index], text[index + 1 :]
            break
    else:
        head, value = text, ""
    semicolon = head.find(";")
    name, params = (head, "") if semicolon < 0 else (head[:semicolon], head[semicolon:])
    return name.rsplit(".", 1)[-1].strip().upper(), params, value


def _is_quoted_printable(head: str) -> bool:
    return "QUOTED-PRINTABLE" in head.upper()


def content_lines(lines: list[str], start: int = 0, stop: int | None = None) -> list[ContentLine]:
    """The logical lines of lines[start:stop]: RFC folding (a continuation starts with a space or
    tab) and vCard 2.1 quoted-printable soft breaks (a line ending in '=') are joined."""
    stop = len(lines) if stop is None else stop
    found: list[ContentLine] = []
    index = start
    while index < stop:
        line = lines[index]
        if not line.strip():
            index += 1  # blank lines are kept in the bytes but are no content line
            continue
        first, parts = index, [line]
        quoted_printable = _is_quoted_printable(line.split(":", 1)[0])
        index += 1
        while index < stop:
            following = lines[index]
            if quoted_printable and parts[-1].endswith("=") and following.strip():
                parts[-1] = parts[-1][:-1]  # a soft line break joins without the '='
                parts.append(following)
            elif following[:1] in (" ", "\t") and following.strip():
                parts.append(following[1:])
            else:
                break
            index += 1
        name, params, value = parse_head("".join(parts))
        found.append(ContentLine(first, index - 1, name, params, value))
    return found


@dataclass(slots=True)
class Component:
    """A BEGIN:KIND ... END:KIND block: its span of physical lines, its own content lines and the
    components nested in it."""

    kind: str
    first: int
    last: int = -1
    properties: list[ContentLine] = field(default_factory=list)
    children: list[Component] = field(default_factory=list)

    def value_of(self, name: str) -> str | None:
        return next((p.value for p in self.properties if p.name == name), None)

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()


def parse_tree(lines: list[str]) -> list[Component]:
    """The top-level components of a file; anything but blank lines between them is refused."""
    top: list[Component] = []
    stack: list[Component] = []
    for line in content_lines(lines):
        if line.name == "BEGIN":
            kind = line.value.strip().upper()
            if not kind:
                raise RecordFormatError("BEGIN without a component name", line.first + 1)
            if len(stack) >= MAX_DEPTH:
                raise RecordFormatError(f"components nested deeper than {MAX_DEPTH} levels", line.first + 1)
            component = Component(kind, line.first)
            (stack[-1].children if stack else top).append(component)
            stack.append(component)
        elif line.name == "END":
            kind = line.value.strip().upper()
            if not stack:
                raise RecordFormatError(f"END:{kind} without BEGIN:{kind}", line.first + 1)
            if stack[-1].kind != kind:
                raise RecordFormatError(f"BEGIN:{stack[-1].kind} closed by END:{kind}", line.first + 1)
            stack.pop().last = line.last
        elif not stack:
            raise RecordFormatError(f"a line outside any component: {lines[line.first][:60]!r}", line.first + 1)
        else:
            stack[-1].properties.append(line)
    if stack:
        raise RecordFormatError(f"BEGIN:{stack[-1].kind} without END:{stack[-1].kind}", stack[-1].first + 1)
    return top


def check_charsets(lines: list[str], component: Component, *, allow_charset_param: bool) -> None:
    """Refuse bytes that are not UTF-8, except in a vCard 2.1 line whose CHARSET names them."""
    for line in component.properties:
        for index in range(line.first, line.last + 1):
            if _NOT_UTF8.search(lines[index]):
                if allow_charset_param and line.param("CHARSET") not in (None, "UTF-8", "utf-8"):
                    break
                raise RecordFormatError("bytes that are not UTF-8 (and no CHARSET parameter says what they are)",
                                        index + 1)
    for child in component.children:
        check_charsets(lines, child, allow_charset_param=allow_charset_param)
