"""A file whose rebuilt bytes fail their whole-file hash is asked for again, never installed."""

import os
from pathlib import Path

import pytest
import xxhash

from protocols.rsync import receiving
from protocols.rsync.errors import IntegrityError
from protocols.rsync.hashes import HashKind
from protocols.rsync.exchange import prepare
from protocols.rsync.manifest import scan
from protocols.rsync.plan import Direction
from protocols.rsync.receiving import FileReceiver
from protocols.rsync.records import Record, Tag, decode_request, encode, encode_delta_end
from protocols.rsync.serving import FileServer
from protocols.rsync.signature import choose_block_size
from protocols.rsync.wire import DeltaHeader, encode_delta_header, encode_end, encode_literal

from .cases import colliding_block
from .test_pipeline import batched, exchange_files


@pytest.fixture
def two_byte_hashes(monkeypatch):
    """Signatures with 2-byte strong hashes, where a crafted block collides in a moment."""
    monkeypatch.setattr(receiving, "strong_len_for", lambda new_size, basis_size, block_size: 2)


def falsely_matching(basis: bytes, block_size: int, block: int) -> bytes:
    """`basis` with one block replaced by another that a 2-byte strong hash takes for it; the
    block before it is unchanged, so the delta tries it right after a match."""
    start = block * block_size
    old = basis[start:start + block_size]
    return basis[:start] + colliding_block(old, 2) + basis[start + block_size:]


def push(src: Path, dst: Path, kept: list[str]) -> tuple[FileReceiver, list[str]]:
    """The receiver's requests through a server and back; the paths the server was asked for."""
    sending = prepare(scan(src), scan(dst), Direction.PUSH, None, local_name="a", remote_name="b")
    receiving_side = prepare(scan(dst), scan(src), Direction.PULL, None, local_name="b",
                             remote_name="a")
    server = FileServer(sending, src)
    asked: list[str] = []
    feed = server.feed

    def counting(record: Record) -> None:
        if record.tag is Tag.REQUEST:
            asked.append(decode_request(record.body)[0])
        feed(record)

    server.feed = counting
    receiver = FileReceiver(receiving_side, dst, keep_version=kept.append)
    assert exchange_files(receiver, server)
    return receiver, asked


def write(root: Path, name: str, data: bytes, mtime: int) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))


@pytest.mark.parametrize("size", [8 << 10, 3 << 20], ids=["in memory", "through the patcher"])
def test_a_false_block_match_is_asked_again_and_the_file_lands_right(tmp_path, two_byte_hashes,
                                                                       size):
    basis = os.urandom(size)
    new = falsely_matching(basis, choose_block_size(size), 3)
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "f.bin", new, 1_700_000_100)
    write(dst, "f.bin", basis, 1_700_000_000)
    write(src, "other.txt", b"a neighbour that lands first time", 1_700_000_000)
    kept: list[str] = []
    receiver, asked = push(src, dst, kept)
    assert (dst / "f.bin").read_bytes() == new
    assert asked.count("f.bin") == 2 and asked.count("other.txt") == 1
    assert [path for path, _ in receiver.asked_again] == ["f.bin"]
    assert "hash" in receiver.asked_again[0][1]
    assert receiver.done and receiver.skipped == [] and len(receiver.received) == 2
    assert kept == ["f.bin"]  # the old version is kept once, however many attempts
    assert not [p for p in os.listdir(dst) if p.startswith(".sipsync-")]


def test_without_cut_hashes_the_same_edit_lands_first_time(tmp_path):
    basis = os.urandom(8 << 10)
    new = falsely_matching(basis, choose_block_size(len(basis)), 3)
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "f.bin", new, 1_700_000_100)
    write(dst, "f.bin", basis, 1_700_000_000)
    receiver, asked = push(src, dst, [])
    assert (dst / "f.bin").read_bytes() == new
    assert asked == ["f.bin"] and receiver.asked_again == []


def lying_answer(size: int) -> list[Record]:
    """A delta of the right length whose bytes are not what its END hash (the true one) says."""
    return batched([
        encode(Tag.DELTA, encode_delta_header(DeltaHeader(HashKind.XXH3_128, 512, 0, 0))),
        encode(Tag.DELTA, encode_literal(b"y" * size)),
        encode(Tag.DELTA, encode_end(size, xxhash.xxh3_128_digest(b"x" * size))),
        encode_delta_end(size, 0)])


def test_a_second_failure_of_the_same_file_stops_the_sync_and_installs_nothing(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write(src, "f.txt", b"x" * 100, 1_700_000_000)
    dst.mkdir()
    receiving_side = prepare(scan(dst), scan(src), Direction.PULL, None, local_name="b",
                             remote_name="a")
    receiver = FileReceiver(receiving_side, dst)
    assert list(receiver.requests())
    for record in lying_answer(100):
        receiver.feed(record)
    again = list(receiver.follow_ups())
    assert again and Tag(again[0][0]) is Tag.REQUEST and receiver.asking
    for record in lying_answer(100)[:-1]:
        receiver.feed(record)
    with pytest.raises(IntegrityError):
        receiver.feed(lying_answer(100)[-1])
    assert not (dst / "f.txt").exists()
