"""Honest imports: a file is imported whole or refused with the line and the reason, and a refused
file changes nothing; what real files hold (BOM, CRLF or LF, folding, quoted-printable, base64,
vCard 2.1, 3.0, 4.0, calendars without items) is read; hostile files are refused quickly."""

import base64
import time

import pytest

from peer import record_formats
from peer.record_formats import ICALENDAR, VCARD, RecordFormatError
from peer.record_store import RecordStore
from peer.record_text import MAX_DEPTH
from tests.syncml.harness import Clock

GOOD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:good\r\nFN:Good\r\nEND:VCARD\r\n"
PHOTO = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(64))).decode()


@pytest.fixture
def store():
    with RecordStore(":memory:", clock=Clock()) as opened:
        yield opened


def refusal(data: bytes, content_type: str | None = None) -> RecordFormatError:
    with pytest.raises(RecordFormatError) as raised:
        record_formats.parse(data, content_type)
    return raised.value


def test_a_card_whose_base64_photo_does_not_decode_is_refused_with_its_line():
    bad = GOOD.replace(b"END:VCARD", b"PHOTO;ENCODING=b;TYPE=PNG:iVBORw0KGgo*!!\r\nEND:VCARD")
    error = refusal(GOOD + bad)
    assert error.line == 10 and "PHOTO" in error.reason and "base64" in error.reason


def test_a_broken_quoted_printable_line_is_refused_with_its_line():
    card = (b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;Jo\r\nNOTE;ENCODING=QUOTED-PRINTABLE:caf=E9 and =ZZ\r\n"
            b"END:VCARD\r\n")
    error = refusal(card)
    assert error.line == 4 and "quoted-printable" in error.reason and "=ZZ" in error.reason


def test_quoted_printable_soft_line_breaks_and_a_base64_value_ending_in_a_blank_line_are_read():
    card = (b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe;Jo\r\nNOTE;ENCODING=QUOTED-PRINTABLE:first=0D=0A=\r\nsecond\r\n"
            b"PHOTO;ENCODING=BASE64;TYPE=PNG:\r\n " + PHOTO[:40].encode() + b"\r\n " + PHOTO[40:].encode() +
            b"\r\n\r\nUID:jo\r\nEND:VCARD\r\n")
    (item,) = record_formats.split(card)
    assert item == card  # the blank line that ends the BASE64 value is kept
    assert record_formats.uid_of(item) == "jo"


def test_lf_line_ends_and_a_bom_are_read_and_the_item_keeps_its_folding():
    card = "\ufeffBEGIN:VCARD\nVERSION:4.0\nUID:ü\nNOTE:a long note fol\n ded here\nFN:Zoë\nEND:VCARD\n".encode()
    (item,) = record_formats.split(card)
    assert item == card[3:].replace(b"\n", b"\r\n")


def test_a_calendar_value_icalendar_rejects_is_refused():
    ics = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:2026-13-45\r\nEND:VEVENT\r\n"
           b"END:VCALENDAR\r\n")
    error = refusal(ics)
    assert error.line == 3 and "DTSTART" in error.reason


@pytest.mark.parametrize("data, reason", [
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:" + b"x" * (5 * 1024 * 1024) + b"\r\nEND:VCARD\r\n", "longer than"),
    (b"BEGIN:VCARD\r\n" * (MAX_DEPTH + 1) + b"END:VCARD\r\n" * (MAX_DEPTH + 1), "nested deeper"),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ren\xe9\r\nEND:VCARD\r\n", "not UTF-8"),
    (b"\xff\xfeB\x00E\x00G\x00I\x00N\x00", "UTF-16"),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:a\x00b\r\nEND:VCARD\r\n", "control character"),
    (b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Ann\r\n", "without END:VCARD"),
    (b"BEGIN:VCARD\r\nEND:VCARD\r\ntrailing words\r\n", "outside any component"),
], ids=["huge-line", "deep-nesting", "latin1-without-charset", "utf16", "nul", "unclosed", "stray-line"])
def test_a_hostile_file_is_refused_quickly_with_a_reason_and_changes_nothing(store, data, reason):
    store.import_bytes(GOOD)
    before = store.current_seq()
    started = time.monotonic()
    with pytest.raises(RecordFormatError, match=reason):
        store.import_bytes(data, VCARD)
    assert time.monotonic() - started < 5
    assert store.current_seq() == before and [r.id for r in store.items()] == ["good"]


def test_a_file_with_one_bad_item_among_good_ones_writes_none_of_them(store):
    bad = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bad\r\nPHOTO;ENCODING=b:@@@@\r\nEND:VCARD\r\n"
    with pytest.raises(RecordFormatError, match="line 9"):
        store.import_bytes(GOOD + bad)
    assert store.items() == [] and store.current_seq() == 0


def test_an_import_that_fails_while_writing_leaves_the_store_as_it_was(store, monkeypatch):
    second = GOOD.replace(b"good", b"second")
    calls = []
    real_add = store.add

    def failing_add(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_add(*args, **kwargs)

    monkeypatch.setattr(store, "add", failing_add)
    with pytest.raises(OSError):
        store.import_bytes(GOOD + second)
    assert len(calls) == 2 and store.items() == [] and store.current_seq() == 0


def test_a_vcard_21_line_in_the_charset_it_names_is_kept_byte_for_byte():
    card = b"BEGIN:VCARD\r\nVERSION:2.1\r\nN;CHARSET=ISO-8859-1:Ren\xe9\r\nEND:VCARD\r\n"
    assert record_formats.split(card) == [card]


def test_a_file_with_only_calendar_properties_is_imported_as_the_datasets_calendar(store):
    ics = ("\ufeffBEGIN:VCALENDAR\r\nVERSION:2.0\r\nX-WR-CALNAME:Ferien äöü\r\nREFRESH-INTERVAL;VALUE=DURATION:P1D\r\n"
           "END:VCALENDAR\r\n").encode()
    report = store.import_bytes(ics)
    assert report.items == 0 and report.calendar_changed
    assert "X-WR-CALNAME" in report.calendar and "REFRESH-INTERVAL" in report.calendar
    assert "X-WR-CALNAME:Ferien äöü".encode() in store.export_bytes(ICALENDAR)


def test_an_ics_of_bare_vtimezones_is_read_as_one_calendar_of_time_zones():
    ics = (b"BEGIN:VTIMEZONE\nTZID:Europe/Oslo\nBEGIN:STANDARD\nDTSTART:19701025T030000\nTZOFFSETFROM:+0200\n"
           b"TZOFFSETTO:+0100\nEND:STANDARD\nEND:VTIMEZONE\n")
    assert record_formats.sniff(ics) == ICALENDAR
    parsed = record_formats.parse(ics)
    assert parsed.items == () and b"TZID:Europe/Oslo" in parsed.calendar


@pytest.mark.parametrize("line", ["garbage without a colon", "TEL;=x:1", 'TEL;TYPE="open:1', ";TYPE=x:1"])
def test_a_card_line_that_is_no_content_line_is_refused_as_vobject_would(line):
    card = f"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann\r\n{line}\r\nEND:VCARD\r\n".encode()
    error = refusal(card)
    assert error.line == 4 and "not a content line" in error.reason


def test_a_quoted_printable_value_that_is_not_text_in_its_charset_is_refused_by_vobject():
    card = b"BEGIN:VCARD\r\nVERSION:2.1\r\nN;ENCODING=QUOTED-PRINTABLE;CHARSET=UTF-8:=C3=28\r\nEND:VCARD\r\n"
    error = refusal(card)
    assert error.line == 1 and "unreadable" in error.reason and "utf-8" in error.reason
