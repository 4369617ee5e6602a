"""Splitting .vcf and .ics files into items, UIDs, and joining items back."""

import pytest

from peer.record_formats import (
    ICALENDAR,
    VCARD,
    RecordFormatError,
    join,
    sniff,
    split,
    split_icalendar,
    split_vcards,
    uid_of,
)

VCF = (
    b"BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ann\r\nUID:urn:uuid:0f\r\n 1e\r\nEND:VCARD\r\n"
    b"\r\n"
    b"BEGIN:VCARD\nVERSION:4.0\nFN:Bob\nitem1.UID:bob-uid\nEND:VCARD\n"
    b"BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Cy\r\nEND:VCARD\r\n"
)

ICS = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n"
    b"BEGIN:VTIMEZONE\r\nTZID:Europe/Paris\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
    b"TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    b"BEGIN:VEVENT\r\nUID:weekly\r\nDTSTART;TZID=Europe/Paris:20260105T100000\r\nRRULE:FREQ=WEEKLY\r\n"
    b"BEGIN:VALARM\r\nACTION:DISPLAY\r\nUID:not-the-event\r\nEND:VALARM\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:once\r\nDTSTART:20260110T090000Z\r\nEND:VEVENT\r\n"
    b"BEGIN:VEVENT\r\nUID:weekly\r\nRECURRENCE-ID;TZID=Europe/Paris:20260112T100000\r\n"
    b"DTSTART;TZID=Europe/Paris:20260112T110000\r\nEND:VEVENT\r\n"
    b"END:VCALENDAR\r\n"
)


def test_a_multi_card_vcf_splits_into_one_item_per_card_with_crlf_lines():
    cards = split_vcards(VCF)
    assert len(cards) == 3
    assert all(card.startswith(b"BEGIN:VCARD\r\n") and card.endswith(b"END:VCARD\r\n") for card in cards)
    assert b"FN:Bob\r\n" in cards[1]


def test_a_folded_uid_is_unfolded_and_a_grouped_uid_is_found():
    cards = split_vcards(VCF)
    assert [uid_of(card) for card in cards] == ["urn:uuid:0f1e", "bob-uid", None]


def test_an_event_and_its_recurrence_override_stay_one_item():
    items = split_icalendar(ICS)
    assert [uid_of(item) for item in items] == ["weekly", "once"]
    assert items[0].count(b"BEGIN:VEVENT") == 2


def test_each_calendar_item_carries_only_the_time_zones_it_uses():
    weekly, once = split_icalendar(ICS)
    assert b"TZID:Europe/Paris" in weekly and b"PRODID:-//test//EN" in weekly
    assert b"VTIMEZONE" not in once


def test_the_uid_of_an_alarm_is_not_taken_for_the_events():
    assert uid_of(split_icalendar(ICS)[0]) == "weekly"


def test_joined_items_split_back_into_the_same_items():
    for data, content_type in ((VCF, VCARD), (ICS, ICALENDAR)):
        items = split(data)
        assert split(join(items, content_type)) == items


def test_the_file_type_is_recognised_from_its_first_line():
    assert sniff(VCF) == VCARD
    assert sniff(b"\xef\xbb\xbf" + ICS) == ICALENDAR
    assert sniff(b"hello") is None


@pytest.mark.parametrize(
    "data",
    [
        b"FN:stray\r\nBEGIN:VCARD\r\nEND:VCARD\r\n",
        b"BEGIN:VCARD\r\nFN:Ann\r\n",
        b"BEGIN:VCARD\r\nEND:VCALENDAR\r\n",
        b"not a card at all",
    ],
)
def test_a_file_that_is_not_a_clean_list_of_cards_is_refused(data):
    with pytest.raises(RecordFormatError):
        split(data, VCARD)


def test_bytes_that_are_not_utf8_survive_a_split_unchanged():
    latin1 = b"BEGIN:VCARD\r\nVERSION:2.1\r\nFN;CHARSET=ISO-8859-1:Ren\xe9\r\nEND:VCARD\r\n"
    assert split_vcards(latin1) == [latin1]
