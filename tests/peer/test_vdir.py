"""A dataset kept in a vdir folder: files other programs add, edit or remove reach the store on
refresh (by mtime, size and inode), what the store changed is written back atomically, a deletion
removes the file, and a file edited meanwhile is not overwritten."""

import os

import pytest

from peer.record_formats import ICALENDAR, VCARD
from peer.record_store import RecordStore, store_path
from peer.vdir import VdirFolder
from tests.syncml.harness import Clock, card, sync


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "contacts"
    path.mkdir()
    return path


@pytest.fixture
def store(folder):
    with RecordStore(store_path(folder), clock=Clock()) as opened:
        yield opened


def write_as_another_program(path, content: bytes, bump: int = 0) -> None:
    path.write_bytes(content)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + bump))  # an editor's save moves mtime


def test_a_file_another_program_added_is_read_into_the_store(store, folder):
    write_as_another_program(folder / "ann.vcf", card("Ann", uid="ann"))
    (folder / "notes.txt").write_text("not an item")
    (folder / ".hidden.vcf").write_bytes(card("Hidden", uid="hidden"))
    report = VdirFolder(store, folder, VCARD).refresh()
    assert report.read == ("ann",) and [r.id for r in store.items()] == ["ann"]
    assert VdirFolder(store, folder, VCARD).refresh().read == ()  # unchanged etag: not read again


def test_an_edit_by_another_program_is_picked_up_by_its_etag(store, folder):
    vdir = VdirFolder(store, folder, VCARD)
    write_as_another_program(folder / "ann.vcf", card("Ann", uid="ann"))
    vdir.refresh()
    write_as_another_program(folder / "ann.vcf", card("Annie", uid="ann"), bump=1_000_000)
    assert vdir.refresh().read == ("ann",)
    assert store.get("ann").content == card("Annie", uid="ann") and store.get("ann").meta.version == 2


def test_a_card_without_uid_keeps_its_id_when_another_program_edits_it(store, folder):
    vdir = VdirFolder(store, folder, VCARD)
    write_as_another_program(folder / "nameless.vcf", card("Nameless"))
    (first,) = vdir.refresh().read
    write_as_another_program(folder / "nameless.vcf", card("Named at last"), bump=1_000_000)
    assert vdir.refresh().read == (first,)
    assert [(r.id, r.meta.version) for r in store.items()] == [(first, 2)]


def test_a_removed_file_deletes_its_item(store, folder):
    vdir = VdirFolder(store, folder, VCARD)
    write_as_another_program(folder / "ann.vcf", card("Ann", uid="ann"))
    vdir.refresh()
    (folder / "ann.vcf").unlink()
    assert vdir.refresh().removed == ("ann",) and store.get("ann").meta.deleted


def test_a_store_change_is_written_to_a_file_named_after_the_uid_and_a_deletion_removes_it(store, folder):
    vdir = VdirFolder(store, folder, VCARD)
    store.add(card("Bob", uid="bob"))
    store.add(card("Odd", uid="odd/uid:with spaces"))
    report = vdir.write_back()
    assert set(report.written) == {"bob", "odd/uid:with spaces"}
    assert (folder / "bob.vcf").read_bytes() == card("Bob", uid="bob")
    names = sorted(path.name for path in folder.iterdir() if path.suffix == ".vcf")
    assert len(names) == 2 and all("/" not in name and " " not in name for name in names)
    assert not [path for path in folder.iterdir() if path.name.endswith(".tmp")]
    store.delete("bob")
    assert vdir.write_back().deleted == ("bob",) and not (folder / "bob.vcf").exists()
    assert vdir.refresh().read == ()  # what it wrote itself is not read back as a change


def test_a_file_edited_since_it_was_read_is_not_overwritten_and_its_edit_wins(store, folder):
    vdir = VdirFolder(store, folder, VCARD)
    write_as_another_program(folder / "ann.vcf", card("Ann", uid="ann"))
    vdir.refresh()
    store.replace("ann", card("Ann from a sync", uid="ann"))
    write_as_another_program(folder / "ann.vcf", card("Ann edited", uid="ann"), bump=1_000_000)
    assert vdir.write_back().skipped[0][0] == "ann.vcf"
    assert (folder / "ann.vcf").read_bytes() == card("Ann edited", uid="ann")
    vdir.refresh()
    assert store.get("ann").content == card("Ann edited", uid="ann")


def test_an_unreadable_file_is_named_and_left_alone(store, folder):
    write_as_another_program(folder / "broken.vcf", b"BEGIN:VCARD\r\nFN:x\r\n")
    write_as_another_program(folder / "two.vcf", card("A", uid="a") + card("B", uid="b"))
    report = VdirFolder(store, folder, VCARD).refresh()
    assert {name for name, _ in report.skipped} == {"broken.vcf", "two.vcf"}
    assert store.items() == [] and (folder / "broken.vcf").exists()


def test_two_vdir_datasets_converge_through_a_sync(tmp_path):
    ics = (b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:e1\r\nDTSTART:20260101T100000Z\r\n"
           b"SUMMARY:Kick-off\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    clock = Clock()
    left, right = tmp_path / "left", tmp_path / "right"
    left.mkdir(), right.mkdir()
    write_as_another_program(left / "e1.ics", ics)
    with RecordStore(store_path(left), clock=clock) as a, RecordStore(store_path(right), clock=clock) as b:
        VdirFolder(a, left, ICALENDAR).refresh()
        sync(a, b, clock=clock)
        VdirFolder(b, right, ICALENDAR).write_back()
        assert (right / "e1.ics").read_bytes() == ics
        write_as_another_program(right / "e1.ics", ics.replace(b"Kick-off", b"Kick-off moved"), bump=10**9)
        VdirFolder(b, right, ICALENDAR).refresh()
        sync(a, b, clock=clock)
        VdirFolder(a, left, ICALENDAR).write_back()
    assert b"Kick-off moved" in (left / "e1.ics").read_bytes()
