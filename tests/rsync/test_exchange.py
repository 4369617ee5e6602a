"""Both sides of a folder sync agree on every file from the two manifests alone."""

import pytest

from protocols.rsync.errors import ExchangeError, UnsafePath, WireFormatError
from protocols.rsync.exchange import Arrival, check_remote, manifest_digest, prepare
from protocols.rsync.manifest import FileEntry, Manifest
import os

import zstandard

from protocols.rsync.messages import (
    DeltaFigures,
    FileRequest,
    Hello,
    ManifestAssembler,
    changes_pieces,
    manifest_changes,
)
from protocols.rsync.plan import Direction



def entry(path, content, mtime=1):
    return FileEntry(path, len(content), mtime * 10**9, 0o644, content.ljust(16, b".")[:16])


def manifest(*entries):
    return Manifest({e.path: e for e in entries})


def both(laptop, phone, direction, base=None):
    """The caller's (laptop's) exchange and the callee's (phone's), as each side prepares it."""
    return (prepare(laptop, phone, direction, base, local_name="laptop", remote_name="phone"),
            prepare(phone, laptop, direction.opposite, base, local_name="phone", remote_name="laptop"))


@pytest.mark.parametrize("direction", list(Direction))
def test_what_one_side_asks_for_is_exactly_what_the_other_serves(direction):
    base = manifest(entry("gone", b"g"), entry("both", b"b0"))
    laptop = manifest(entry("new-here", b"n"), entry("both", b"laptop", 5), entry("same", b"s"))
    phone = manifest(entry("new-there", b"t"), entry("both", b"phone", 9), entry("same", b"s"),
                     entry("gone", b"g"))
    mine, theirs = both(laptop, phone, direction, base)
    assert {i.path for i in mine.incoming} == theirs.serves
    assert {i.path for i in theirs.incoming} == mine.serves
    assert manifest_digest(mine.synced()) == manifest_digest(theirs.synced())


def test_only_a_side_whose_folder_changes_has_anything_to_make_durable():
    same = manifest(entry("a", b"a"), entry("b", b"b"))
    assert not any(ex.changes_here for ex in both(same, same, Direction.TWO_WAY, base=same))
    edited = manifest(entry("a", b"a2", mtime=2), entry("b", b"b"))
    laptop, phone = both(edited, same, Direction.PUSH, base=same)
    assert (laptop.changes_here, phone.changes_here) == (False, True)
    laptop, phone = both(manifest(entry("a", b"a")), same, Direction.PUSH, base=same)
    assert (laptop.changes_here, phone.changes_here) == (False, True)  # b is deleted there


def test_a_conflict_has_the_same_copy_name_on_both_sides_and_both_versions_cross():
    laptop = manifest(entry("r.txt", b"laptop", 5))
    phone = manifest(entry("r.txt", b"phone", 9))
    mine, theirs = both(laptop, phone, Direction.TWO_WAY)
    copy = "r.sync-conflict-19700101-000005-laptop.txt"
    # The laptop lost: it keeps its version under the copy name, then takes the phone's.
    assert mine.keep_copies == (("r.txt", copy),)
    assert [(i.target, i.basis, i.arrival) for i in mine.incoming] == [("r.txt", "r.txt", Arrival.CONFLICT)]
    # The phone won: the laptop's version arrives as the copy, rebuilt from the phone's file.
    assert [(i.target, i.basis) for i in theirs.incoming] == [(copy, "r.txt")]
    assert set(mine.synced().entries) == {"r.txt", copy}


def test_a_renamed_file_is_rebuilt_from_the_old_name_which_goes_afterwards():
    base = manifest(entry("old.jpg", b"photo"))
    laptop = manifest(entry("new.jpg", b"photo"))
    phone = manifest(entry("old.jpg", b"photo"))
    _, theirs = both(laptop, phone, Direction.PUSH, base)
    assert [(i.path, i.basis, i.arrival) for i in theirs.incoming] == [("new.jpg", "old.jpg", Arrival.MOVED)]
    assert theirs.deletions == ("old.jpg",)


def test_without_a_shared_base_nothing_is_deleted():
    laptop = manifest()
    phone = manifest(entry("mine.txt", b"m"))
    _, theirs = both(laptop, phone, Direction.PUSH, None)
    assert theirs.deletions == () and theirs.summary() == "in sync already, 0 unchanged, 1 left alone on one side"


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a//b", "a/./b", "a/../../x", "nul\0byte", ""])
def test_a_peer_manifest_with_an_unsafe_path_is_refused(path):
    with pytest.raises(UnsafePath):
        check_remote(manifest(entry(path, b"x")))


def test_a_peer_manifest_entry_with_a_bad_hash_is_refused():
    with pytest.raises(WireFormatError):
        check_remote(Manifest({"a": FileEntry("a", 1, 0, 0o644, b"short")}))


def test_a_request_outside_the_plan_or_past_the_file_end_is_refused():
    laptop = manifest(entry("send-me", b"12345"), entry("same", b"s"))
    phone = manifest(entry("same", b"s"))
    mine, _ = both(laptop, phone, Direction.PUSH)
    assert mine.check_request(FileRequest("send-me", 5)).size == 5
    for request in (FileRequest("same"), FileRequest("../etc/passwd"), FileRequest("send-me", 6)):
        with pytest.raises(ExchangeError):
            mine.check_request(request)
    pull, _ = both(laptop, phone, Direction.PULL)
    with pytest.raises(ExchangeError):
        pull.check_request(FileRequest("send-me"))


def test_messages_round_trip_and_malformed_ones_are_typed_errors():
    big = manifest(*(FileEntry(f"folder/file-{i:05}.txt", 1, i, 0o644, os.urandom(16))
                     for i in range(20000)))
    assembler = ManifestAssembler()
    pieces = changes_pieces(manifest_changes(big, None))
    assert len(pieces) > 1
    for piece in pieces:
        assembler.feed(piece)
    assert assembler.finish_changes(None) == (big, set(big.entries))
    assert FileRequest.decode(FileRequest("a b/c", 7).encode()) == FileRequest("a b/c", 7)
    assert Hello.decode(Hello(2, "ab").encode()) == Hello(2, "ab")
    assert DeltaFigures.decode(DeltaFigures(3, 4).encode()) == DeltaFigures(3, 4)
    for bad in (b"", b"[]", b'{"path": 1, "resume": 0}', b'{"path": "a", "resume": -1}'):
        with pytest.raises(WireFormatError):
            FileRequest.decode(bad)
    for text in (b'{"set": [["a", 1]], "drop": []}', b'{"set": []}', b"not json"):
        broken = ManifestAssembler()
        broken.feed(zstandard.ZstdCompressor().compress(text))
        with pytest.raises(WireFormatError):
            broken.finish_changes(None)


def test_manifest_changes_against_an_agreed_state_carry_only_what_changed():
    base = manifest(*(entry(f"f{i}", b"%d" % i) for i in range(1000)))
    now = dict(base.entries)
    now["f7"] = entry("f7", b"edited", mtime=9)
    del now["f8"]
    data = manifest_changes(Manifest(now), base)
    assert len(data) < 200
    assembler = ManifestAssembler()
    assembler.feed(data)
    assert assembler.finish_changes(base) == (Manifest(dict(sorted(now.items()))), {"f7", "f8"})
