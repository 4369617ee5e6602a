"""How a patch writes its file: kernel copies with a fallback through memory, merged copies,
gathered writes, a hash of what was really written, and checkpoints spaced in bytes and time."""

import errno
import os
import random

import pytest

from protocols.rsync import (
    DeltaEncoder, FilePatcher, IntegrityError, Signature, delta_of, signature_of, wire,
)
from protocols.rsync import kernel_io
from protocols.rsync.partial import load_state
from protocols.rsync.wire import DeltaReader, LiteralOp

rng = random.Random(13)
BASIS = rng.randbytes(1 << 20)
# Two long unchanged stretches around an edit: two long COPY ranges and one literal.
NEW = BASIS[:400_000] + rng.randbytes(5_000) + BASIS[405_000:]
DELTA = delta_of(Signature.from_wire(signature_of(BASIS)), NEW)


def patch(tmp_path, delta=DELTA, basis=BASIS, **options):
    target = tmp_path / "file"
    target.write_bytes(basis)
    patcher = FilePatcher(target, **options)
    patcher.feed(delta)
    patcher.finish()
    return target, patcher


@pytest.fixture
def counted(monkeypatch):
    """Counts the system calls a patch makes, keeping their real effect."""
    calls = {"copy_file_range": 0, "pwrite": 0, "preadv": 0}
    for name in calls:
        real = getattr(os, name)

        def counting(*args, _real=real, _name=name):
            calls[_name] += 1
            return _real(*args)
        monkeypatch.setattr(os, name, counting)
    return calls


def header(basis_size: int) -> bytes:
    return wire.encode_delta_header(wire.DeltaHeader(wire.HashKind.XXH3_128, 1024, basis_size, 0))


def hand_made_delta(ops, basis: bytes = BASIS) -> tuple[bytes, bytes]:
    """A delta of explicit (offset, length) copies and literal bytes, and the file it rebuilds."""
    import xxhash
    out, records = bytearray(), [header(len(basis))]
    for op in ops:
        if isinstance(op, bytes):
            records.append(wire.encode_literal(op))
            out += op
        else:
            records.append(wire.encode_copy(*op))
            out += basis[op[0]:op[0] + op[1]]
    records.append(wire.encode_end(len(out), xxhash.xxh3_128_digest(bytes(out))))
    return b"".join(records), bytes(out)


def test_long_copies_can_be_made_by_the_kernel_and_the_file_is_right(tmp_path):
    target, patcher = patch(tmp_path, kernel_copy=True)
    assert target.read_bytes() == NEW
    assert patcher.kernel_copied > len(NEW) // 2


def test_where_the_os_refuses_copy_file_range_the_patch_copies_through_memory(tmp_path, monkeypatch):
    asked = []

    def refuse(*args):
        asked.append(args)
        raise OSError(errno.EXDEV, "Invalid cross-device link")
    monkeypatch.setattr(os, "copy_file_range", refuse)
    target, patcher = patch(tmp_path, kernel_copy=True)
    assert target.read_bytes() == NEW and patcher.kernel_copied == 0
    assert len(asked) == 1, "once refused, the kernel is not asked again for that file"


def test_without_copy_file_range_at_all_the_patch_still_works(tmp_path, monkeypatch):
    monkeypatch.delattr(os, "copy_file_range")
    target, patcher = patch(tmp_path, kernel_copy=True)
    assert target.read_bytes() == NEW and patcher.kernel_copied == 0


def test_a_kernel_copy_that_copies_nothing_hands_over_to_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "copy_file_range", lambda *args: 0)
    target, _ = patch(tmp_path, kernel_copy=True)
    assert target.read_bytes() == NEW


def test_copies_can_be_kept_out_of_the_kernel(tmp_path, counted):
    target, patcher = patch(tmp_path, kernel_copy=False)
    assert target.read_bytes() == NEW and counted["copy_file_range"] == 0


def test_an_unexpected_copy_error_is_not_hidden(tmp_path, monkeypatch):
    def broken(*args):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(os, "copy_file_range", broken)
    with pytest.raises(OSError):
        patch(tmp_path, kernel_copy=True)
    assert (tmp_path / "file").read_bytes() == BASIS


def test_adjacent_copies_are_merged_into_one_kernel_copy(tmp_path, counted):
    ops = [(i * 4096, 4096) for i in range(64)]  # 256 KiB in 64 ops that follow one another
    delta, new = hand_made_delta(ops)
    target, patcher = patch(tmp_path, delta, kernel_copy=True)
    assert target.read_bytes() == new
    assert counted["copy_file_range"] == 1 and patcher.kernel_copied == 64 * 4096
    counted["preadv"] = 0
    target, _ = patch(tmp_path, delta, kernel_copy=False)
    assert target.read_bytes() == new and counted["preadv"] == 1, "one 256 KiB read"


def test_copies_that_do_not_follow_one_another_stay_apart(tmp_path, counted):
    delta, new = hand_made_delta([(0, 100_000), (200_000, 100_000)])
    target, _ = patch(tmp_path, delta, kernel_copy=True)
    assert target.read_bytes() == new and counted["copy_file_range"] == 2


def test_short_copies_and_literals_are_gathered_into_few_writes(tmp_path, counted):
    ops = []
    for i in range(200):
        ops += [(i * 5000, 1000), rng.randbytes(50)]
    delta, new = hand_made_delta(ops)
    target, _ = patch(tmp_path, delta)
    assert target.read_bytes() == new
    assert counted["pwrite"] == 1 and counted["copy_file_range"] == 0


@pytest.mark.parametrize("kernel_copy", [True, False])
def test_a_basis_changed_in_place_fails_the_whole_file_hash(tmp_path, kernel_copy):
    changed = bytearray(BASIS)
    changed[100] ^= 1  # same size, so only the hash of what was copied can tell
    target = tmp_path / "file"
    target.write_bytes(changed)
    patcher = FilePatcher(target, kernel_copy=kernel_copy)
    patcher.feed(DELTA)
    with pytest.raises(IntegrityError):
        patcher.finish()
    assert target.read_bytes() == changed


@pytest.mark.parametrize("file_system, shares", [("btrfs", True), ("xfs", True), ("ext4", False)])
def test_by_default_the_kernel_copies_only_where_the_file_system_shares_blocks(
        tmp_path, monkeypatch, file_system, shares):
    device = os.stat(tmp_path).st_dev
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"22 27 0:21 / /proc rw - proc proc rw\n"
                         f"29 1 {os.major(device)}:{os.minor(device)} / / rw - {file_system} /dev/x rw\n")
    monkeypatch.setattr(kernel_io, "MOUNTINFO", str(mountinfo))
    kernel_io._file_system_type.cache_clear()
    try:
        target, patcher = patch(tmp_path)
    finally:
        kernel_io._file_system_type.cache_clear()
    assert target.read_bytes() == NEW
    assert (patcher.kernel_copied > 0) is shares


def test_without_mount_information_the_patch_copies_through_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(kernel_io, "MOUNTINFO", str(tmp_path / "absent"))
    kernel_io._file_system_type.cache_clear()
    try:
        target, patcher = patch(tmp_path)
    finally:
        kernel_io._file_system_type.cache_clear()
    assert target.read_bytes() == NEW and patcher.kernel_copied == 0


def test_checkpoints_wait_for_bytes_and_seconds_both(tmp_path):
    clock = [0.0]
    target = tmp_path / "file"
    target.write_bytes(BASIS)
    encoder = DeltaEncoder(Signature.from_wire(signature_of(BASIS)), literal_piece=8192)
    records = encoder.feed(rng.randbytes(200_000)) + encoder.finish()
    patcher = FilePatcher(target, checkpoint_bytes=4096, checkpoint_seconds=1.0, clock=lambda: clock[0])
    half = len(records) // 2
    for record in records[:half]:
        patcher.feed(record)
    assert load_state(target) is None, "many bytes but no time passed: no fsync yet"
    clock[0] = 1.5
    for record in records[half:-1]:
        patcher.feed(record)
    state = load_state(target)
    assert state is not None and state.offset > 0, "a crash now would resume, no abort needed"
    patcher.feed(records[-1])
    patcher.finish()
    assert load_state(target) is None


def test_a_raw_literal_comes_out_in_the_pieces_it_arrived_in_without_copies():
    literal = rng.randbytes(3000)
    stream = header(0) + wire.encode_literal(literal) + wire.encode_end(0, bytes(16))
    reader = DeltaReader()
    pieces = []
    for start in range(0, len(stream), 1000):
        pieces += [e for e in reader.feed(stream[start:start + 1000]) if isinstance(e, LiteralOp)]
    assert len(pieces) > 1 and all(isinstance(p.data, memoryview) for p in pieces)
    assert b"".join(piece.data for piece in pieces) == literal


def test_a_literal_pack_whose_frame_claims_another_size_is_refused():
    import zstandard
    frame = zstandard.ZstdCompressor().compress(b"a" * 5000)
    evil = header(0) + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK, 4000, len(frame)) + frame
    with pytest.raises(wire.WireFormatError):
        DeltaReader().feed(evil)
