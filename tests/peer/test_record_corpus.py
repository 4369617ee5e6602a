"""Every file of tests/corpus (public vCard and iCalendar test files, see SOURCES.md) goes through
import, export and re-import, and through a two-way sync to a second device: the items come back
the same after normalization (PRODID, line folding and line ends aside), recurrence sets whole,
the calendar's own properties and time zones kept."""

from pathlib import Path

import pytest

from peer import record_formats
from peer.record_store import RecordStore, item_id_for
from peer.record_text import content_lines, decode_lines
from tests.syncml.harness import Clock, sync

CORPUS = Path(__file__).parent.parent / "corpus"
FILES = sorted(path for path in CORPUS.iterdir() if path.suffix in (".vcf", ".ics"))


def normalized(content: bytes) -> list[str]:
    """The logical lines of an item or calendar, unfolded, without PRODID."""
    lines = decode_lines(content)
    return [lines[line.first].split(":", 1)[0].split(";", 1)[0].upper() + line.params + ":" + line.value
            for line in content_lines(lines) if line.name != "PRODID"]


def items_by_uid(data: bytes) -> dict[str, list[str]]:
    """Items keyed by UID (by their content for an item without one)."""
    parsed = record_formats.parse(data)
    keyed = {}
    for item in parsed.items:
        key = record_formats.uid_of(item) or "\n".join(components(normalized(item)))
        keyed[key] = normalized(item)
    return keyed


def calendar_lines(data: bytes) -> list[str]:
    parsed = record_formats.parse(data)
    return normalized(parsed.calendar) if parsed.calendar is not None else []


def components(item: list[str]) -> list[str]:
    """The component lines of an iCalendar item: what must survive a round trip whatever the
    header says."""
    return [line for line in item if line not in ("BEGIN:VCALENDAR", "END:VCALENDAR") and
            not line.startswith(("VERSION", "CALSCALE", "METHOD", "X-WR-", "NAME", "DESCRIPTION:", "COLOR"))]


def test_the_corpus_covers_the_cases_it_is_there_for():
    names = {path.name for path in FILES}
    assert len(FILES) >= 30 and (CORPUS / "SOURCES.md").exists()
    documented = (CORPUS / "SOURCES.md").read_text()
    assert all(name in documented for name in names)
    data = {path.name: path.read_bytes() for path in FILES}
    assert any(content.startswith(b"\xef\xbb\xbf") for content in data.values())
    assert any(b"VERSION:2.1" in content and b"QUOTED-PRINTABLE" in content and b"BASE64" in content
               for content in data.values())
    assert any(content.count(b"BEGIN:VCALENDAR") > 1 for content in data.values())
    assert any(not record_formats.parse(content).items and record_formats.parse(content).calendar
               for content in data.values())


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_a_corpus_file_exports_and_reimports_to_the_same_items_and_calendar(path, tmp_path):
    original = path.read_bytes()
    with RecordStore(tmp_path / "a.db", clock=Clock()) as store:
        report = store.import_bytes(original)
        exported = store.export_bytes(record_formats.parse(original).content_type)
    before, after = items_by_uid(original), items_by_uid(exported)
    assert report.items == len(before)
    assert set(after) == set(before)
    for uid, item in before.items():
        assert components(after[uid]) == components(item), uid
    wanted = calendar_lines(original)
    assert all(line in calendar_lines(exported) for line in wanted)
    with RecordStore(tmp_path / "b.db", clock=Clock()) as again:
        assert again.import_bytes(exported).items == len(before)


@pytest.mark.parametrize("path", FILES, ids=[path.name for path in FILES])
def test_a_corpus_file_synced_two_way_arrives_whole_on_the_other_device(path):
    original = path.read_bytes()
    content_type = record_formats.parse(original).content_type
    clock = Clock()
    with RecordStore(":memory:", clock=clock) as a, RecordStore(":memory:", clock=clock) as b:
        a.import_bytes(original)
        assert sync(a, b, clock=clock).wire.completed
        exported = b.export_bytes(content_type)
        again = sync(a, b, clock=clock)
        assert again.callee.report.items_applied == 0  # nothing left to move
    before, after = items_by_uid(original), items_by_uid(exported)
    assert set(after) == set(before)
    for uid, item in before.items():
        assert components(after[uid]) == components(item), uid


def test_a_recurrence_set_spread_over_three_vcalendars_is_one_item_with_all_its_parts():
    data = (CORPUS / "own-recurrence_set_across_vcalendars.ics").read_bytes()
    parsed = record_formats.parse(data)
    by_uid = {record_formats.uid_of(item): item for item in parsed.items}
    assert set(by_uid) == {"standup-2026@example.com", "todo-slides@example.com", "journal-1@example.com"}
    standup = by_uid["standup-2026@example.com"]
    assert standup.count(b"BEGIN:VEVENT") == 3 and standup.count(b"RECURRENCE-ID") == 2
    assert standup.count(b"BEGIN:VTIMEZONE") == 1 and b"BEGIN:VALARM" in standup
    assert b"VTIMEZONE" not in by_uid["todo-slides@example.com"]
    assert item_id_for(standup) == "standup-2026@example.com"
