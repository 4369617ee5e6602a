"""The dataset keeps its calendar: properties and unused time zones are stored beside the items
(with a version, for the sync), exported again, merged by later imports; older stores gain the
table when opened."""

import sqlite3

import pytest

from peer import record_formats
from peer.record_formats import ICALENDAR
from peer.record_schema import SCHEMA_VERSION
from peer.record_store import RecordStore
from protocols.syncml import StaleVersion
from tests.syncml.harness import Clock

OSLO = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Oslo\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\n"
        "TZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n")
CALENDAR = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nX-WR-CALNAME:Work\r\nCOLOR:teal\r\n" + OSLO +
            "BEGIN:VEVENT\r\nUID:e1\r\nDTSTART:20260101T100000Z\r\nSUMMARY:Kick-off\r\nEND:VEVENT\r\n"
            "END:VCALENDAR\r\n").encode()


@pytest.fixture
def store():
    with RecordStore(":memory:", clock=Clock()) as opened:
        yield opened


def test_an_import_keeps_the_calendar_properties_and_the_unused_time_zone_apart_from_the_items(store):
    report = store.import_bytes(CALENDAR)
    assert report.added == ("e1",) and report.calendar_changed
    metadata = store.dataset_metadata(ICALENDAR)
    assert metadata.version == 1
    assert b"X-WR-CALNAME:Work" in metadata.content and b"TZID:Europe/Oslo" in metadata.content
    assert b"BEGIN:VEVENT" not in metadata.content


def test_the_export_writes_the_calendar_back_and_imports_again_unchanged(store, tmp_path):
    store.import_bytes(CALENDAR)
    exported = store.export_bytes(ICALENDAR)
    assert exported.startswith(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nX-WR-CALNAME:Work\r\n")
    assert b"TZID:Europe/Oslo" in exported
    again = store.import_bytes(exported)
    assert again.unchanged == ("e1",) and not again.calendar_changed
    assert store.dataset_metadata(ICALENDAR).version == 1


def test_a_later_import_replaces_the_properties_it_names_and_keeps_the_others(store):
    store.import_bytes(CALENDAR)
    store.import_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:Office\r\nEND:VCALENDAR\r\n")
    content = store.dataset_metadata(ICALENDAR).content
    assert b"X-WR-CALNAME:Office" in content and b"X-WR-CALNAME:Work" not in content
    assert b"COLOR:teal" in content and b"TZID:Europe/Oslo" in content


def test_a_plain_header_is_no_calendar_data_and_changes_nothing(store):
    report = store.import_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//x//EN\r\nEND:VCALENDAR\r\n")
    assert report.calendar is None and store.dataset_metadata(ICALENDAR) is None


def test_a_sync_sets_the_metadata_only_from_the_version_it_saw(store):
    first = store.set_dataset_metadata(ICALENDAR, b"BEGIN:VCALENDAR\r\nNAME:A\r\nEND:VCALENDAR\r\n")
    second = store.set_dataset_metadata(ICALENDAR, b"BEGIN:VCALENDAR\r\nNAME:B\r\nEND:VCALENDAR\r\n",
                                        expected_version=first.version, modified=42.0)
    assert (second.version, second.modified) == (2, 42.0)
    with pytest.raises(StaleVersion):
        store.set_dataset_metadata(ICALENDAR, b"BEGIN:VCALENDAR\r\nNAME:C\r\nEND:VCALENDAR\r\n", expected_version=1)
    assert store.dataset_metadata(ICALENDAR).content.endswith(b"NAME:B\r\nEND:VCALENDAR\r\n")


def test_an_empty_dataset_with_only_a_calendar_exports_it(store):
    store.import_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nNAME:Empty\r\nEND:VCALENDAR\r\n")
    assert b"NAME:Empty" in store.export_bytes()


def test_a_store_written_before_the_metadata_table_existed_gains_it_when_opened(tmp_path):
    path = tmp_path / "records.db"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE items (id TEXT PRIMARY KEY, content BLOB, content_type TEXT NOT NULL,"
                      " hash TEXT NOT NULL, version INTEGER NOT NULL, modified REAL NOT NULL,"
                      " deleted INTEGER NOT NULL, created_seq INTEGER NOT NULL, seq INTEGER NOT NULL,"
                      " origin TEXT) WITHOUT ROWID;"
                      "INSERT INTO items VALUES ('a', x'00', 'text/vcard', 'h', 1, 1.0, 0, 1, 1, NULL);")
    old.close()
    with RecordStore(path) as store:
        assert [record.id for record in store.items()] == ["a"]
        assert store.dataset_metadata(ICALENDAR) is None
        store.import_bytes(b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nNAME:New\r\nEND:VCALENDAR\r\n")
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert check.execute("SELECT count(*) FROM dataset_meta").fetchone()[0] == 1
    check.close()


def test_the_calendar_summary_names_what_was_kept():
    summary = record_formats.calendar_summary(record_formats.parse(CALENDAR).calendar)
    assert summary == "calendar properties X-WR-CALNAME, COLOR and 1 time zone(s) no item uses"
