"""A keep-both copy gets its own UID, a marker of whose version it was and when, and the name
suffix a person recognises from Syncthing; an export of the original and its copy re-imports to
the same set of items."""

import pytest

from peer import record_formats
from peer.conflict_copies import CONFLICT_PROPERTY, conflict_copy, conflict_marker, copy_content
from peer.record_formats import ICALENDAR, VCARD
from peer.record_store import RecordStore
from protocols.syncml import ConflictPolicy, SyncCallee, SyncCaller, SyncMode
from protocols.syncml.loopback import run
from tests.syncml.harness import Clock

WHEN = 1_780_000_000.0  # 2026-05-28 20:26:40 UTC
CARD = b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ann\r\nFN:Ann\r\n  Smith\r\nTEL:+1555\r\nEND:VCARD\r\n"
SERIES = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:weekly\r\nSUMMARY:Review\r\n"
          b"DTSTART:20260105T100000Z\r\nRRULE:FREQ=WEEKLY\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly\r\n"
          b"RECURRENCE-ID:20260112T100000Z\r\nDTSTART:20260112T110000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def test_a_card_copy_has_a_new_uid_a_marked_name_and_names_the_original():
    uid, copy = conflict_copy(CARD, VCARD, "phone", WHEN)
    assert uid != "ann" and record_formats.uid_of(copy) == uid
    assert b"UID:ann" not in copy
    assert f"FN:Ann\r\n  Smith ({conflict_marker('phone', WHEN)})".encode() in copy
    assert f"{CONFLICT_PROPERTY};X-DEVICE=phone;X-TIME=20260528T202640Z:ann".encode() in copy
    assert b"TEL:+1555\r\n" in copy and record_formats.split(copy) == [copy]


def test_the_marker_reads_like_a_syncthing_conflict_name():
    assert conflict_marker("laptop", WHEN) == "sync-conflict-20260528-202640-laptop"


def test_an_event_copy_gives_the_master_and_every_override_the_new_uid():
    uid, copy = conflict_copy(SERIES, ICALENDAR, "laptop", WHEN)
    assert copy.count(f"UID:{uid}".encode()) == 2 and b"UID:weekly" not in copy
    assert b"SUMMARY:Review (sync-conflict-" in copy
    assert copy.count(CONFLICT_PROPERTY.encode()) == 2
    (item,) = record_formats.split(copy)
    assert item.count(b"BEGIN:VEVENT") == 2


def test_the_same_version_copied_twice_gets_the_same_uid_and_a_given_uid_is_used():
    assert conflict_copy(CARD, VCARD, "phone", WHEN) == conflict_copy(CARD, VCARD, "phone", WHEN)
    assert conflict_copy(CARD, VCARD, "phone", WHEN)[0] != conflict_copy(CARD, VCARD, "tablet", WHEN)[0]
    uid, copy = conflict_copy(CARD, VCARD, "phone", WHEN, uid="engine-copy-id")
    assert uid == "engine-copy-id" and b"UID:engine-copy-id\r\n" in copy


def test_a_card_without_uid_gets_one_and_other_content_keeps_its_bytes():
    uid, copy = conflict_copy(b"BEGIN:VCARD\r\nVERSION:2.1\r\nN:Doe\r\nEND:VCARD\r\n", VCARD, "phone", WHEN)
    assert copy.startswith(f"BEGIN:VCARD\r\nVERSION:2.1\r\nUID:{uid}\r\n".encode())
    assert conflict_copy(b"just a note", "text/plain", "phone", WHEN)[1] == b"just a note"


def test_an_export_holding_the_original_and_its_copy_reimports_to_the_same_items():
    for content, content_type in ((CARD, VCARD), (SERIES, ICALENDAR)):
        with RecordStore(":memory:", clock=Clock()) as store:
            store.import_bytes(content, content_type)
            uid, copy = conflict_copy(content, content_type, "phone", WHEN)
            store.add(copy, content_type)
            exported = store.export_bytes(content_type)
        with RecordStore(":memory:", clock=Clock()) as fresh:
            report = fresh.import_bytes(exported, content_type)
            assert sorted(report.added) == sorted([record_formats.uid_of(content), uid])
            assert fresh.get(uid).content == copy


def _sync(laptop: RecordStore, phone: RecordStore, mode: SyncMode, clock: Clock):
    """The laptop calls the phone, whose policy is keep-both with the peer's copy rewrite."""
    caller = SyncCaller(laptop, device="laptop", peer="phone", dataset="cal", mode=mode, clock=clock)
    callee = SyncCallee(phone, device="phone", dataset="cal", policy=ConflictPolicy.KEEP_BOTH,
                        clock=clock, copy_content=copy_content)
    assert run(caller, callee).completed
    return caller.report, callee.report


@pytest.mark.parametrize("mode", [SyncMode.TWO_WAY, SyncMode.SLOW])
@pytest.mark.parametrize("content, content_type", [(CARD, VCARD), (SERIES, ICALENDAR)])
def test_after_a_keep_both_sync_both_exports_reimport_to_the_same_count_and_the_next_sync_is_a_no_op(
        mode, content, content_type):
    clock = Clock()
    with RecordStore(":memory:", clock=clock) as laptop, RecordStore(":memory:", clock=clock) as phone:
        laptop.import_bytes(content, content_type)
        _sync(laptop, phone, SyncMode.TWO_WAY, clock)
        uid = record_formats.uid_of(content)
        laptop.replace(uid, content.replace(b"\r\nEND:V", b"\r\nCATEGORIES:laptop\r\nEND:V", 1))
        phone.replace(uid, content.replace(b"\r\nEND:V", b"\r\nCATEGORIES:phone\r\nEND:V", 1))
        _, callee_report = _sync(laptop, phone, mode, clock)
        (conflict,) = callee_report.conflicts
        copy = phone.get(conflict.copy_id).content
        # The phone's later edit won; the laptop's version is the copy, with its own UID.
        assert record_formats.uid_of(copy) == conflict.copy_id and b"CATEGORIES:laptop" in copy
        assert b"X-DEVICE=laptop" in copy and laptop.get(conflict.copy_id).content == copy
        for store in (laptop, phone):
            exported = store.export_bytes(content_type)
            with RecordStore(":memory:", clock=clock) as fresh:
                assert fresh.import_bytes(exported, content_type).items == 2 == len(fresh.items())
        caller_again, callee_again = _sync(laptop, phone, SyncMode.TWO_WAY, clock)
        assert caller_again.items_sent == callee_again.items_sent == 0
