"""The plain folder copy: whole folders arrive or nothing changes."""

import asyncio
import hashlib
import os
import stat
from pathlib import Path

import pytest

from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.folder_copy import (
    Begin,
    CloseFile,
    Commit,
    CopyReceiver,
    Entry,
    MakeDirectory,
    OpenFile,
    WriteData,
    check_relative_path,
    encode_entry,
    encode_start,
    receive_folder,
    send_folder,
)
from protocols.channel.framing import Frame, FrameType

from .conftest import QUICK, open_pair


def snapshot(root):
    """Every path under root with its mode and content: equal snapshots, identical trees."""
    tree = {}
    for directory, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            content = Path(path).read_bytes() if stat.S_ISREG(info.st_mode) else None
            tree[os.path.relpath(path, root)] = (stat.S_IMODE(info.st_mode), content)
    return tree


def make_dataset(root):
    (root / "notes" / "2024").mkdir(parents=True)
    (root / "empty dir").mkdir()
    (root / "notes" / "2024" / "march.txt").write_text("spring\n")
    (root / "big.bin").write_bytes(os.urandom(300_000))
    (root / "empty.txt").write_bytes(b"")
    (root / "script.sh").write_text("#!/bin/sh\n")
    os.chmod(root / "script.sh", 0o755)
    return root


def frames_for(*entries_and_data):
    """COPY frames for a receiver, as a (possibly misbehaving) sender would send them."""
    return [Frame(kind, payload) for kind, payload in entries_and_data]


def file_frames(path, content, mode=0o100644):
    return [
        encode_entry(Entry(path, mode, len(content))),
        (FrameType.DATA, content),
        (FrameType.COPY_FILE_END, hashlib.sha256(content).digest()),
    ]


# The receiving state machine, without sockets.


def test_a_well_formed_transfer_becomes_file_actions():
    receiver = CopyReceiver()
    frames = frames_for(
        (FrameType.COPY_START, encode_start(1, 1, 5)),
        encode_entry(Entry("docs", 0o040755)),
        *file_frames("docs/a.txt", b"hello"),
        (FrameType.COPY_DONE, b""),
    )
    actions = [receiver.receive(frame) for frame in frames]
    assert [type(action) for action in actions] == [
        Begin,
        MakeDirectory,
        OpenFile,
        WriteData,
        CloseFile,
        Commit,
    ]
    assert actions[2].path.as_posix() == "docs/a.txt" and actions[2].permissions == 0o644
    assert (receiver.bytes_done, receiver.total_bytes) == (5, 5)


@pytest.mark.parametrize(
    "path",
    [
        "/etc/passwd",
        "../outside",
        "a/../../b",
        "a//b",
        "./a",
        "a/.",
        "",
        "nul\0byte",
        "a/" + "x" * 5000,
    ],
)
def test_a_path_that_could_leave_the_folder_is_refused(path):
    with pytest.raises(ChannelError) as caught:
        check_relative_path(path)
    assert caught.value.code is ErrorCode.TRANSFER


def test_a_plain_nested_path_is_accepted():
    assert check_relative_path("photos/2024/..hidden file").parts == (
        "photos",
        "2024",
        "..hidden file",
    )


@pytest.mark.parametrize(
    "mode", [stat.S_IFCHR | 0o666, stat.S_IFBLK | 0o660, stat.S_IFIFO | 0o644, stat.S_IFLNK | 0o777]
)
def test_device_files_fifos_and_links_are_refused(mode):
    receiver = CopyReceiver()
    receiver.receive(Frame(FrameType.COPY_START, encode_start(0, 1, 0)))
    with pytest.raises(ChannelError, match="not a regular file"):
        receiver.receive(Frame(*encode_entry(Entry("dev", mode))))


def test_set_uid_bits_from_the_sender_are_dropped():
    receiver = CopyReceiver()
    receiver.receive(Frame(FrameType.COPY_START, encode_start(0, 1, 0)))
    action = receiver.receive(Frame(*encode_entry(Entry("tool", stat.S_IFREG | 0o4755))))
    assert action.permissions == 0o755


def test_a_file_whose_content_does_not_match_its_hash_is_refused():
    receiver = CopyReceiver()
    frames = frames_for(
        (FrameType.COPY_START, encode_start(0, 1, 5)), *file_frames("a.txt", b"hello")
    )
    frames[-1] = Frame(FrameType.COPY_FILE_END, hashlib.sha256(b"other").digest())
    with pytest.raises(ChannelError, match="a.txt: the content hash does not match"):
        for frame in frames:
            receiver.receive(frame)


def test_more_content_than_announced_is_refused():
    receiver = CopyReceiver()
    receiver.receive(Frame(FrameType.COPY_START, encode_start(0, 1, 10)))
    receiver.receive(Frame(*encode_entry(Entry("a.txt", 0o100644, 3))))
    with pytest.raises(ChannelError, match="more content than the 3 bytes announced"):
        receiver.receive(Frame(FrameType.DATA, b"four"))


def test_a_path_announced_twice_is_refused():
    receiver = CopyReceiver()
    receiver.receive(Frame(FrameType.COPY_START, encode_start(2, 0, 0)))
    receiver.receive(Frame(*encode_entry(Entry("a", 0o040755))))
    with pytest.raises(ChannelError, match="announced twice"):
        receiver.receive(Frame(*encode_entry(Entry("a", 0o040755))))


def test_a_path_under_a_file_is_refused():
    receiver = CopyReceiver()
    for frame in frames_for((FrameType.COPY_START, encode_start(0, 2, 1)), *file_frames("a", b"x")):
        receiver.receive(frame)
    with pytest.raises(ChannelError, match="lies under a, which is a file"):
        receiver.receive(Frame(*encode_entry(Entry("a/b", 0o100644))))


def test_a_transfer_that_ends_short_of_what_it_announced_is_refused():
    receiver = CopyReceiver()
    receiver.receive(Frame(FrameType.COPY_START, encode_start(0, 2, 0)))
    with pytest.raises(ChannelError, match="announced 0 directories, 2 files"):
        receiver.receive(Frame(FrameType.COPY_DONE))


def test_a_transfer_must_begin_with_its_start_frame():
    with pytest.raises(ChannelError, match="began with DATA"):
        CopyReceiver().receive(Frame(FrameType.DATA, b"x"))


# Whole transfers over real channels.


async def test_a_folder_arrives_whole_with_its_modes_and_progress_reaches_the_total(
    callee, caller, tmp_path
):
    source = make_dataset(tmp_path / "source")
    target = tmp_path / "copy"
    server, client = await open_pair(callee, caller)
    seen = []
    summary, _ = await asyncio.wait_for(
        asyncio.gather(
            receive_folder(server, target, progress=lambda done, total: seen.append((done, total))),
            send_folder(client, source, chunk_size=64 * 1024),
        ),
        10,
    )
    assert snapshot(target) == snapshot(source)
    assert (summary.directories, summary.files) == (3, 4)
    assert seen[-1] == (summary.bytes, summary.bytes) and seen[0] == (0, summary.bytes)
    assert sorted(os.listdir(tmp_path)) == ["copy", "source"]  # no staging left behind
    await client.close()
    await server.close()


async def test_the_callee_can_send_and_an_existing_folder_is_replaced_in_one_step(
    callee, caller, tmp_path
):
    source = make_dataset(tmp_path / "source")
    target = tmp_path / "copy"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    server, client = await open_pair(callee, caller)
    await asyncio.wait_for(
        asyncio.gather(send_folder(server, source), receive_folder(client, target)), 10
    )
    assert snapshot(target) == snapshot(source)
    assert sorted(os.listdir(tmp_path)) == ["copy", "source"]
    await client.close()
    await server.close()


async def test_links_and_special_files_are_left_out_and_listed(callee, caller, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "real.txt").write_text("real")
    os.symlink("/etc/passwd", source / "link")
    os.mkfifo(source / "pipe")
    server, client = await open_pair(callee, caller)
    _, summary = await asyncio.wait_for(
        asyncio.gather(receive_folder(server, tmp_path / "copy"), send_folder(client, source)), 10
    )
    assert sorted(summary.skipped) == ["link", "pipe"]
    assert os.listdir(tmp_path / "copy") == ["real.txt"]
    await client.close()
    await server.close()


async def test_a_sender_that_vanishes_mid_file_leaves_the_target_exactly_as_it_was(
    callee, caller, tmp_path
):
    source = tmp_path / "source"
    source.mkdir()
    (source / "large.bin").write_bytes(os.urandom(200_000))
    target = make_dataset(tmp_path / "copy")
    before = snapshot(target)
    server, client = await open_pair(callee, caller)

    def crash_midway(done, total):
        if done >= 50_000:
            client.abort()

    receiving = asyncio.create_task(receive_folder(server, target))
    with pytest.raises(ChannelError):
        await asyncio.wait_for(
            send_folder(client, source, progress=crash_midway, chunk_size=16 * 1024), 10
        )
    with pytest.raises(ChannelError) as caught:
        await asyncio.wait_for(receiving, 10)
    assert caught.value.code is ErrorCode.GONE and "vanished" in str(caught.value)
    assert snapshot(target) == before
    assert sorted(os.listdir(tmp_path)) == ["copy", "source"]


async def test_a_path_escaping_the_folder_is_refused_nothing_is_written_and_the_sender_hears_why(
    callee, caller, tmp_path
):
    target = tmp_path / "copy"
    server, client = await open_pair(callee, caller)
    receiving = asyncio.create_task(receive_folder(server, target))
    await client.send(FrameType.COPY_START, encode_start(0, 1, 4))
    for kind, payload in file_frames("../escaped.txt", b"evil"):
        await client.send(kind, payload)
    with pytest.raises(ChannelError) as told:
        await asyncio.wait_for(client.receive(), 10)
    with pytest.raises(ChannelError) as refused:
        await asyncio.wait_for(receiving, 10)
    assert "not plain and relative" in refused.value.reason
    assert told.value.remote and told.value.reason == refused.value.reason
    assert os.listdir(tmp_path) == []


async def test_a_sender_hears_the_receivers_reason_for_refusing(callee, caller, tmp_path):
    source = make_dataset(tmp_path / "source")
    (source / "large.bin").write_bytes(bytes(8 * 1024 * 1024))  # still sending when refused
    (tmp_path / "copy").write_text("a file where the folder should go")
    server, client = await open_pair(callee, caller)
    results = await asyncio.wait_for(
        asyncio.gather(
            receive_folder(server, tmp_path / "copy"),
            send_folder(client, source),
            return_exceptions=True,
        ),
        10,
    )
    refused, told = results
    assert refused.reason.endswith("copy exists and is not a folder")
    assert told.remote and told.reason == refused.reason
    assert (tmp_path / "copy").read_text() == "a file where the folder should go"


async def test_a_caller_with_another_certificate_gets_nothing_written(
    callee, caller, intruder, tmp_path
):
    from protocols.channel.connection import connect, listen

    source = make_dataset(tmp_path / "source")
    target = make_dataset(tmp_path / "copy")
    before = snapshot(target)

    async def callee_side(listener):
        channel = await listener.accept()
        return await receive_folder(channel, target)

    async def intruder_side(port):
        channel = await connect(
            intruder, "127.0.0.1", port, callee.fingerprint, "token-1", timeouts=QUICK
        )
        return await send_folder(channel, source)

    listener = await listen(callee, caller.fingerprint, "token-1", timeouts=QUICK)
    async with listener:
        results = await asyncio.wait_for(
            asyncio.gather(
                callee_side(listener), intruder_side(listener.port), return_exceptions=True
            ),
            10,
        )
    assert all(isinstance(result, ChannelError) for result in results)
    assert results[0].code is ErrorCode.PINNING
    assert snapshot(target) == before
    assert sorted(os.listdir(tmp_path)) == ["copy", "source"]
