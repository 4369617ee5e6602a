"""Folder sync between two sides over a real pinned channel, in one process."""

import asyncio
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from peer.transfer_interface import TransferContext, TransferError
from peer.config import Dataset
from peer.folder_sync import FolderSync
from protocols.channel.errors import ChannelError
from protocols.channel.framing import FrameType
from protocols.channel.identity import DeviceIdentity
from protocols.rsync.manifest import FileEntry, Manifest
from protocols.rsync.messages import EXCHANGE_VERSION, Hello, changes_pieces, manifest_changes
from protocols.rsync.records import BatchEncoder, encode, encode_request, Tag
from session_xml import DataType, Direction, SyncProtocol

from ..channel.conftest import open_pair

LAPTOP, PHONE = "alice/laptop", "alice/phone"


@pytest.fixture(scope="module")
def identities(tmp_path_factory):
    root = tmp_path_factory.mktemp("identities")
    return {name: DeviceIdentity.load_or_create(root / name, name) for name in ("laptop", "phone")}


class Device:
    """A folder and its sync state with the other device; records the progress it is told."""

    def __init__(self, root: Path, name: str, remote: str) -> None:
        self.folder = root / f"{name}-photos"
        self.folder.mkdir(parents=True)
        self.state = root / f"{name}-state"
        self.state.mkdir()
        self.remote = remote
        self.reports: list[tuple] = []

    @property
    def dataset(self) -> Dataset:
        return Dataset("photos", DataType.FILES, self.folder, (SyncProtocol.RSYNC,))

    def context(self, direction: Direction, prepared: object = None) -> TransferContext:
        session = SimpleNamespace(direction=direction, source_device=LAPTOP, destination_device=PHONE)
        return TransferContext(self.dataset, session, self.remote, self.state,
                               lambda phase, **kw: self.reports.append((phase, kw)), prepared)

    def write(self, files: dict[str, bytes], mtime: float | None = None) -> None:
        for name, content in files.items():
            path = self.folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            if mtime is not None:
                os.utime(path, (mtime, mtime))

    def tree(self) -> dict[str, bytes]:
        return {p.relative_to(self.folder).as_posix(): p.read_bytes()
                for p in sorted(self.folder.rglob("*")) if p.is_file()
                and not p.name.startswith(".sipsync-partial-")
                and ".sipsync-versions" not in p.relative_to(self.folder).parts}


@pytest.fixture
def devices(tmp_path):
    return Device(tmp_path, "laptop", PHONE), Device(tmp_path, "phone", LAPTOP)


async def sync(identities, laptop, phone, direction=Direction.PUSH, transfer=FolderSync(),
               scan_ahead=False):
    """The laptop calls the phone; both results (or exceptions), caller's first. `scan_ahead`:
    each side's scan starts before the channel is set up, as in a session."""
    laptop_scan = transfer.prepare(laptop.dataset, laptop.state) if scan_ahead else None
    phone_scan = FolderSync().prepare(phone.dataset, phone.state) if scan_ahead else None
    callee_channel, caller_channel = await open_pair(identities["phone"], identities["laptop"])

    async def side(run, channel, context):
        async with channel:
            return await run(channel, context)

    return await asyncio.gather(
        side(transfer.as_caller, caller_channel, laptop.context(direction, laptop_scan)),
        side(FolderSync().as_callee, callee_channel, phone.context(direction, phone_scan)),
        return_exceptions=True)


def run(coro):
    return asyncio.run(coro)


async def open_as_caller(channel, manifest: Manifest) -> None:
    """What a (hostile) caller sends first: the hello, then its whole manifest."""
    await channel.send(FrameType.RSYNC_HELLO, Hello(EXCHANGE_VERSION, "").encode())
    for piece in changes_pieces(manifest_changes(manifest, None)):
        await channel.send(FrameType.RSYNC_MANIFEST, piece)
    await channel.send(FrameType.RSYNC_MANIFEST_END)


def test_a_push_creates_changes_renames_and_deletes_files_on_the_callee(identities, devices):
    laptop, phone = devices
    big = os.urandom(600_000)
    laptop.write({"a.txt": b"alpha", "trip/big.bin": big, "old-name.jpg": os.urandom(50_000)})
    first, answered = run(sync(identities, laptop, phone))
    assert answered.files == 3 and phone.tree() == laptop.tree()
    assert first.detail == "3 new; 0 unchanged"

    # A small edit in the big file, a rename, a deletion.
    laptop.write({"trip/big.bin": big[:1000] + b"EDIT" + big[1004:]})
    (laptop.folder / "old-name.jpg").rename(laptop.folder / "new-name.jpg")
    (laptop.folder / "a.txt").unlink()
    laptop.reports.clear()
    second, _ = run(sync(identities, laptop, phone))
    assert phone.tree() == laptop.tree()
    assert second.detail == "1 changed (delta), 1 new, 2 deleted; 0 unchanged"
    # The edit and the renamed file cost signatures and a few literal bytes, not 650 kB.
    assert second.bytes < 60_000
    counters = laptop.reports[-1][1]["counters"]
    assert counters["bytesLiteral"] < 5_000 and counters["bytesMatched"] >= 600_000
    assert counters["files"] == 2


def test_a_pull_brings_the_callee_folder_and_keeps_mode_and_mtime(identities, devices):
    laptop, phone = devices
    phone.write({"notes/todo.txt": b"buy milk"}, mtime=1_600_000_000)
    os.chmod(phone.folder / "notes/todo.txt", 0o600)
    result, _ = run(sync(identities, laptop, phone, Direction.PULL))
    assert result.files == 1 and laptop.tree() == {"notes/todo.txt": b"buy milk"}
    st = os.stat(laptop.folder / "notes/todo.txt")
    assert (st.st_mode & 0o777, int(st.st_mtime)) == (0o600, 1_600_000_000)


def test_two_way_merges_and_a_conflict_keeps_both_versions_newest_winning(identities, devices):
    laptop, phone = devices
    laptop.write({"shared.txt": b"v1", "only-laptop.txt": b"L"})
    phone.write({"only-phone.txt": b"P"})
    run(sync(identities, laptop, phone, Direction.TWO_WAY))
    assert laptop.tree() == phone.tree() == {"shared.txt": b"v1", "only-laptop.txt": b"L",
                                             "only-phone.txt": b"P"}

    laptop.write({"shared.txt": b"laptop edit"}, mtime=1_700_000_000)
    phone.write({"shared.txt": b"phone edit, newer"}, mtime=1_700_000_100)
    (phone.folder / "only-laptop.txt").unlink()
    result, _ = run(sync(identities, laptop, phone, Direction.TWO_WAY))
    assert laptop.tree() == phone.tree()
    copy = "shared.sync-conflict-20231114-221320-laptop.txt"
    assert laptop.tree() == {"shared.txt": b"phone edit, newer", copy: b"laptop edit",
                             "only-phone.txt": b"P"}
    assert result.detail == f"1 deleted, 1 conflict kept as {copy}; 1 unchanged"


@pytest.mark.parametrize("hostile_path", ["../escape.txt", "/tmp/escape.txt", "a/../../escape.txt"])
def test_a_manifest_path_that_climbs_out_is_refused_and_nothing_is_written(identities, devices,
                                                                           hostile_path):
    laptop, phone = devices

    class Hostile(FolderSync):
        async def as_caller(self, channel, context):
            entry = FileEntry(hostile_path, 5, 0, 0o644, bytes(16))
            await open_as_caller(channel, Manifest({hostile_path: entry}))
            while True:
                await channel.receive()

    caller, callee = run(sync(identities, laptop, phone, transfer=Hostile()))
    assert isinstance(callee, TransferError)
    assert str(callee).startswith(f"refused an unsafe path from {LAPTOP}: ")
    assert hostile_path in str(callee)
    assert isinstance(caller, ChannelError) and caller.remote and caller.reason == str(callee)
    assert not (phone.folder.parent / "escape.txt").exists() and phone.tree() == {}


def test_a_push_through_a_symlinked_folder_on_the_callee_is_refused(identities, devices, tmp_path):
    laptop, phone = devices
    outside = tmp_path / "outside"
    outside.mkdir()
    (phone.folder / "album").symlink_to(outside)
    laptop.write({"album/x.jpg": b"x"})
    caller, callee = run(sync(identities, laptop, phone))
    assert isinstance(callee, TransferError) and "symlink" in str(callee)
    assert isinstance(caller, ChannelError) and "symlink" in caller.reason
    assert list(outside.iterdir()) == []


def test_a_request_for_a_file_the_plan_does_not_send_is_refused(identities, devices):
    laptop, phone = devices
    phone.write({"secret.txt": b"s"})  # a push: the phone sends nothing

    class Greedy(FolderSync):
        async def as_caller(self, channel, context):
            await open_as_caller(channel, Manifest())
            while (await channel.receive()).kind is not FrameType.RSYNC_MANIFEST_END:
                pass
            batch = BatchEncoder()
            batch.add(encode_request("secret.txt", 0))
            batch.add(encode(Tag.SIGNATURE_END))
            await channel.send(FrameType.RSYNC_BATCH, batch.take())
            while True:
                await channel.receive()

    caller, callee = run(sync(identities, laptop, phone, transfer=Greedy()))
    assert isinstance(callee, TransferError) and "'secret.txt'" in str(callee)
    assert isinstance(caller, ChannelError) and caller.remote


def test_an_interrupted_push_resumes_and_sends_less_the_second_time(identities, devices):
    laptop, phone = devices
    content = os.urandom(6 << 20)
    laptop.write({"video.mp4": content})
    phone.write({"video.mp4": b"the old video"})

    class Interrupted(FolderSync):
        async def as_caller(self, channel, context):
            def progress(phase, **kw):
                if kw["bytes_done"] > 3 << 20:
                    channel.abort()  # the connection drops mid-file
            context = TransferContext(context.dataset, context.session, context.remote_device,
                                      context.state_dir, progress)
            return await super().as_caller(channel, context)

    caller, callee = run(sync(identities, laptop, phone, transfer=Interrupted()))
    assert isinstance(caller, ChannelError) and isinstance(callee, ChannelError)
    assert phone.tree() == {"video.mp4": b"the old video"}  # a half file replaces nothing

    resumed, _ = run(sync(identities, laptop, phone))
    assert phone.tree() == {"video.mp4": content}
    assert resumed.bytes < (4 << 20)
    assert not list(phone.folder.glob(".sipsync-partial-*"))


class KeptVersions:
    """Stands in for peer/versions.py's VersionStore: what a sync hands it before replacing or
    deleting a file, with the bytes that were there."""

    def __init__(self) -> None:
        self.kept: dict[str, bytes] = {}

    def for_root(self, root: Path):
        def keep(relative: str, now=None):
            path = root / relative
            if path.is_file() and not path.is_symlink():
                self.kept[relative] = path.read_bytes()
                return path
            return None
        return keep


def test_a_mirror_makes_the_callee_an_exact_copy_and_keeps_what_it_removed(identities, devices):
    laptop, phone = devices
    laptop.write({"a.txt": b"new a", "sub/b.txt": b"b"})
    (laptop.folder / "empty").mkdir()
    (laptop.folder / "sub" / "to-a").symlink_to("../a.txt")
    phone.write({"a.txt": b"phone's a", "stale.txt": b"stale", "old/deep.txt": b"deep"})
    versions = KeptVersions()
    caller, callee = run(sync(identities, laptop, phone, Direction.MIRROR,
                              transfer=FolderSync(versions.for_root)))
    assert not isinstance(callee, Exception), callee
    # (the callee side keeps its own versions; the caller replaced nothing)
    assert phone.tree() == laptop.tree()
    assert os.readlink(phone.folder / "sub" / "to-a") == "../a.txt"
    assert (phone.folder / "empty").is_dir() and not (phone.folder / "old").exists()


def test_a_mirror_hands_every_replaced_and_deleted_file_to_the_versions(identities, devices):
    laptop, phone = devices
    laptop.write({"a.txt": b"new a"})
    phone.write({"a.txt": b"phone's a", "stale.txt": b"stale"})
    versions = KeptVersions()

    async def mirrored():
        callee_channel, caller_channel = await open_pair(identities["phone"], identities["laptop"])

        async def side(run, channel, context):
            async with channel:
                return await run(channel, context)

        return await asyncio.gather(
            side(FolderSync().as_caller, caller_channel, laptop.context(Direction.MIRROR)),
            side(FolderSync(versions.for_root).as_callee, callee_channel,
                 phone.context(Direction.MIRROR)))

    caller, callee = run(mirrored())
    assert phone.tree() == {"a.txt": b"new a"}
    assert versions.kept == {"a.txt": b"phone's a", "stale.txt": b"stale"}
    assert callee.detail == "1 changed (delta), 1 deleted; 0 unchanged"


def test_a_mode_only_change_is_counted_and_sends_no_content(identities, devices):
    laptop, phone = devices
    laptop.write({"run.sh": b"#!/bin/sh\necho hi\n" * 100})
    run(sync(identities, laptop, phone))
    os.chmod(laptop.folder / "run.sh", 0o755)
    laptop.reports.clear()
    result, _ = run(sync(identities, laptop, phone))
    assert result.files == 1 and result.detail == "1 metadata only; 0 unchanged"
    assert os.stat(phone.folder / "run.sh").st_mode & 0o777 == 0o755
    assert laptop.reports[-1][1]["counters"]["bytesLiteral"] == 0
    assert result.bytes < 2_000


def test_a_symlink_leading_out_is_skipped_and_said_in_the_result(identities, devices):
    laptop, phone = devices
    laptop.write({"a.txt": b"a"})
    (laptop.folder / "passwd").symlink_to("/etc/passwd")
    result, answered = run(sync(identities, laptop, phone))
    assert phone.tree() == {"a.txt": b"a"} and not os.path.lexists(phone.folder / "passwd")
    assert result.skipped == ("passwd (symlink to '/etc/passwd' leads out of the dataset)",)
    assert answered.skipped == result.skipped


def test_a_no_op_sync_costs_bytes_for_what_changed_not_for_the_tree(identities, devices):
    laptop, phone = devices
    laptop.write({f"d{i % 10}/f{i}.txt": b"x%d" % i for i in range(500)})
    first, _ = run(sync(identities, laptop, phone))
    again, _ = run(sync(identities, laptop, phone))
    assert again.detail == "in sync already, 500 unchanged" and again.bytes < 1_000
    laptop.write({"d3/f3.txt": b"edited"})
    edited, _ = run(sync(identities, laptop, phone))
    assert edited.detail == "1 changed (delta); 499 unchanged" and edited.bytes < 2_000
    assert first.bytes > 5 * edited.bytes


@pytest.mark.parametrize("first_frame, version", [
    ((FrameType.RSYNC_HELLO, Hello(EXCHANGE_VERSION + 1, "").encode()), EXCHANGE_VERSION + 1),
    ((FrameType.RSYNC_MANIFEST, b'{"files": []}'), 1),
])
def test_a_peer_speaking_another_exchange_version_is_refused_with_both_numbers(
        identities, devices, first_frame, version):
    laptop, phone = devices

    class Other(FolderSync):
        async def as_caller(self, channel, context):
            await channel.send(*first_frame)
            while True:
                await channel.receive()

    caller, callee = run(sync(identities, laptop, phone, transfer=Other()))
    assert isinstance(callee, TransferError)
    assert f"exchange version {version}; this side speaks version {EXCHANGE_VERSION}" in str(callee)
    assert isinstance(caller, ChannelError) and caller.reason == str(callee)


def test_files_received_are_not_read_again_by_the_next_scan(identities, devices):
    from protocols.rsync.manifest import HashCache, scan

    laptop, phone = devices
    laptop.write({"a.bin": os.urandom(5000), "sub/b.bin": os.urandom(7000)})
    run(sync(identities, laptop, phone))
    cache = HashCache(phone.state / "hashes.json")
    scan(phone.folder, cache)
    assert (cache.hits, cache.misses) == (2, 0)


def test_a_long_scan_keeps_the_peer_from_timing_out_with_empty_manifest_pieces(
        identities, devices, monkeypatch):
    import threading

    import peer.folder_sync as folder_sync

    laptop, phone = devices
    scanned = threading.Event()
    real_scan = folder_sync.scan

    def slow_scan(*args, **kwargs):
        assert scanned.wait(20), "the scan was never let go"
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(folder_sync, "scan", slow_scan)
    monkeypatch.setattr(folder_sync, "KEEPALIVE", 0.01)
    seen: list[bytes] = []

    class Watching(FolderSync):
        async def as_caller(self, channel, context):
            await channel.send(FrameType.RSYNC_HELLO, Hello(EXCHANGE_VERSION, "").encode())
            assert (await channel.receive()).kind is FrameType.RSYNC_HELLO
            while True:
                frame = await channel.receive()
                assert frame.kind is FrameType.RSYNC_MANIFEST
                seen.append(bytes(frame.payload))
                if len(seen) == 3:
                    scanned.set()  # three "still scanning" pieces: let the scan end
                if frame.payload:
                    return "the manifest came after them"

    caller, _ = run(sync(identities, laptop, phone, transfer=Watching()))
    assert caller == "the manifest came after them"
    assert seen[:3] == [b"", b"", b""] and seen[-1] != b""


def test_the_datasets_own_versioning_keeps_what_a_sync_replaced_and_deleted(identities, devices):
    laptop, phone = devices
    laptop.write({"a.txt": b"new a"})
    phone.write({"a.txt": b"phone's a", "stale.txt": b"stale"})
    caller, callee = run(sync(identities, laptop, phone, Direction.MIRROR))
    assert not isinstance(callee, Exception), callee
    kept = {p.relative_to(phone.folder / ".sipsync-versions").as_posix().split("~")[0]: p.read_bytes()
            for p in (phone.folder / ".sipsync-versions").rglob("*") if p.is_file()}
    assert kept == {"a": b"phone's a", "stale": b"stale"}
    assert phone.tree() == laptop.tree() == {"a.txt": b"new a"}


def test_scans_started_before_the_channel_sync_the_same_and_a_second_sync_is_a_no_op(
        identities, devices):
    laptop, phone = devices
    laptop.write({"a.txt": b"alpha", "trip/b.bin": os.urandom(80_000)})
    phone.write({"stale.txt": b"old"})
    first, _ = run(sync(identities, laptop, phone, Direction.MIRROR, scan_ahead=True))
    assert phone.tree() == laptop.tree()
    assert first.detail == "2 new, 1 deleted; 0 unchanged"
    second, answered = run(sync(identities, laptop, phone, Direction.MIRROR, scan_ahead=True))
    assert (second.files, answered.files) == (0, 0)
    assert second.detail == answered.detail == "in sync already, 2 unchanged"


def test_a_scan_for_the_same_partner_waits_for_the_one_under_way_and_reads_its_hashes(devices):
    """A refused session's scan may still be saving the hash cache when the retry scans."""
    laptop, _ = devices
    laptop.write({f"f{i}.txt": os.urandom(2_000) for i in range(40)})

    async def two_scans():
        first = FolderSync().prepare(laptop.dataset, laptop.state)
        second = FolderSync().prepare(laptop.dataset, laptop.state)
        await asyncio.gather(first.manifest, second.manifest)
        return first, second

    first, second = run(two_scans())
    assert (first.hashes.misses, first.hashes.hits) == (40, 0)
    assert (second.hashes.misses, second.hashes.hits) == (0, 40)
    assert first.manifest.result().entries == second.manifest.result().entries


def test_a_false_block_match_over_the_channel_is_asked_again_and_lands_right(
        identities, devices, monkeypatch, caplog):
    from protocols.rsync import receiving
    from protocols.rsync.signature import choose_block_size
    from tests.rsync.cases import colliding_block

    laptop, phone = devices
    old = os.urandom(64 << 10)
    phone.write({"shared.bin": old}, mtime=1_700_000_000)
    laptop.write({"shared.bin": old}, mtime=1_700_000_000)
    run(sync(identities, laptop, phone))
    block = choose_block_size(len(old))  # the second block follows a match: tried by its hash alone
    new = old[:block] + colliding_block(old[block:2 * block], 2) + old[2 * block:]
    laptop.write({"shared.bin": new, "neighbour.txt": b"lands at the first try"},
                 mtime=1_700_000_100)
    monkeypatch.setattr(receiving, "strong_len_for", lambda new_size, basis_size, block_size: 2)
    caplog.set_level("INFO", logger="peer.folder_sync")
    result, answered = run(sync(identities, laptop, phone))
    assert phone.tree() == laptop.tree()
    assert answered.files == 2 and result.detail.startswith("1 changed (delta), 1 new")
    assert "asked for shared.bin again with whole strong hashes" in caplog.text
