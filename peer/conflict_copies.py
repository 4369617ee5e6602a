"""A keep-both conflict copy with an identity of its own: the losing version of a card or event
rewritten with a new UID and marked as a copy (of which item, from which device, when), the way
Syncthing names a conflict file "NAME.sync-conflict-<date>-<time>-<device>". Every export that holds
the original and its copy then re-imports to the same set of items."""

from __future__ import annotations

import logging
import time
import uuid

from protocols.syncml.records import content_hash

from . import record_formats
from .record_text import Component, decode_lines, encode_lines, parse_tree

log = logging.getLogger(__name__)

# The property that marks a copy: its value is the UID of the item it is a copy of; its
# parameters say whose version it was and when that version was made.
CONFLICT_PROPERTY = "X-SIPSYNC-CONFLICT-OF"
_COPY_NAMESPACE = uuid.UUID("a3f1e6c2-71d4-4b0e-8c9a-2f5e7d6b1c08")
# Which property names the item for a person, to which the copy's marker is added.
_TITLE = {"VCARD": "FN", "VEVENT": "SUMMARY", "VTODO": "SUMMARY", "VJOURNAL": "SUMMARY"}


def conflict_marker(device: str, when: float) -> str:
    """What a person sees in the copy's name: 'sync-conflict-20261201-213000-laptop'."""
    return f"sync-conflict-{time.strftime('%Y%m%d-%H%M%S', time.gmtime(when))}-{device}"


def copy_uid(content: bytes, device: str, when: float) -> str:
    """A UID for the copy, the same on every device that makes the copy of the same version."""
    return str(uuid.uuid5(_COPY_NAMESPACE, f"{content_hash(content)}\x00{device}\x00{when!r}"))


def _param(value: str) -> str:
    # device names are letters, digits and '._-'; anything else would need quoting vCard 2.1 lacks
    return "".join(char if char.isalnum() or char in "._-" else "_" for char in value)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,")


def _rewrite(lines: list[str], component: Component, uid: str, marker_line: str, suffix: str) -> list[tuple[int, int, list[str]]]:
    """Edits (first, last, replacement lines) that give one component the copy's identity."""
    edits: list[tuple[int, int, list[str]]] = []
    uid_line = next((p for p in component.properties if p.name == "UID"), None)
    if uid_line is not None:
        edits.append((uid_line.first, uid_line.last, [f"UID:{uid}"]))
    else:  # a card or event without a UID gets one, right after BEGIN (and VERSION)
        version = next((p for p in component.properties if p.name == "VERSION"), None)
        after = version.last if version is not None else component.first
        edits.append((after + 1, after, [f"UID:{uid}"]))
    title = next((p for p in component.properties if p.name == _TITLE.get(component.kind)), None)
    if title is not None and (title.param("ENCODING") or "").upper() not in ("B", "BASE64"):
        edits.append((title.last, title.last, [lines[title.last] + f" ({suffix})"]))
    edits.append((component.last, component.last - 1, [marker_line]))  # before END
    return edits


def conflict_copy(content: bytes, content_type: str, device: str, when: float,
                  *, uid: str | None = None) -> tuple[str, bytes]:
    """The copy's UID and its content: `content` with the new UID in place of the old one (in a
    calendar item, in the master and every override), its name (FN, SUMMARY) followed by the
    conflict marker, and an X-SIPSYNC-CONFLICT-OF property naming the original. `uid` may name the
    new UID (the sync engine's deterministic copy id); other content types keep their bytes."""
    new_uid = uid or copy_uid(content, device, when)
    if content_type not in (record_formats.VCARD, record_formats.ICALENDAR):
        return new_uid, content
    original = record_formats.uid_of(content) or ""
    suffix = conflict_marker(device, when)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(when))
    marker_line = f"{CONFLICT_PROPERTY};X-DEVICE={_param(device)};X-TIME={stamp}:{_escape(original)}"
    lines = decode_lines(content)
    edits: list[tuple[int, int, list[str]]] = []
    for top in parse_tree(lines):
        if top.kind == "VCALENDAR":
            for child in top.children:
                if child.kind != "VTIMEZONE":
                    edits += _rewrite(lines, child, new_uid, marker_line, suffix)
        else:
            edits += _rewrite(lines, top, new_uid, marker_line, suffix)
    # From the bottom up, so each edit's line numbers still hold when it is made.
    for first, last, replacement in sorted(edits, key=lambda edit: (edit[0], edit[1]), reverse=True):
        lines[first : last + 1] = replacement
    return new_uid, encode_lines(lines)


def copy_content(content: bytes, content_type: str, device: str, when: float, copy_id: str) -> bytes:
    """The sync engine's keep-both hook (protocols.syncml.callee_writing.CopyContent): the copy
    named by the engine's deterministic `copy_id`, so every device makes the same bytes."""
    try:
        return conflict_copy(content, content_type, device, when, uid=copy_id)[1]
    except ValueError as exc:  # RecordFormatError among them
        # A version we cannot read is still kept whole rather than lost, if under its old UID.
        log.warning("conflict copy %s keeps the losing version's bytes: %s", copy_id, exc)
        return content
