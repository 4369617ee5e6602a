"""An interrupted transfer keeps its partial output and the retry sends less."""

import random

import pytest

from protocols.rsync import (
    DeltaEncoder, FilePatcher, IntegrityError, ResumeMismatch, Signature, resume_offset,
    signature_of,
)
from protocols.rsync.partial import partial_path, state_path

rng = random.Random(7)
BASIS = rng.randbytes(64 * 1024)
NEW = BASIS[:10_000] + rng.randbytes(150_000) + BASIS[20_000:]


def delta_records(new: bytes, offset: int = 0) -> list[bytes]:
    enc = DeltaEncoder(Signature.from_wire(signature_of(BASIS)), resume_offset=offset,
                       literal_piece=16384)
    out = []
    for i in range(0, len(new), 8192):
        out += enc.feed(new[i:i + 8192])
    return out + enc.finish()


def interrupted_transfer(target, records, upto):
    patcher = FilePatcher(target, checkpoint_bytes=4096)
    for record in records[:upto]:
        patcher.feed(record)
    patcher.abort()


def test_an_interrupted_transfer_resumes_and_sends_less_the_second_time(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(BASIS)
    first = delta_records(NEW)
    interrupted_transfer(target, first, len(first) // 2)
    assert target.read_bytes() == BASIS, "the old file stays until the new one is complete"

    offset = resume_offset(target)
    assert offset > 0
    second = delta_records(NEW, offset)
    patcher = FilePatcher(target)
    for record in second:
        patcher.feed(record)
    result = patcher.finish()
    assert target.read_bytes() == NEW and result.resumed_from == offset
    assert offset > len(NEW) // 4
    assert sum(map(len, second)) < sum(map(len, first)) - offset // 2
    assert not partial_path(target).exists() and not state_path(target).exists()


def test_a_resume_for_another_version_of_the_file_starts_afresh(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(BASIS)
    patcher = FilePatcher(target, expected_digest=b"v1" * 8, checkpoint_bytes=4096)
    for record in delta_records(NEW)[:3]:
        patcher.feed(record)
    patcher.abort()
    assert resume_offset(target, expected_digest=b"v1" * 8) > 0
    assert resume_offset(target, expected_digest=b"v2" * 8) == 0
    assert not partial_path(target).exists()


def test_a_sender_resuming_where_the_receiver_has_nothing_is_refused(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(BASIS)
    with pytest.raises(ResumeMismatch):
        FilePatcher(target).feed(delta_records(NEW, 5000)[0])
    assert target.read_bytes() == BASIS


def test_a_changed_new_file_after_resume_is_caught_by_the_whole_file_hash(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(BASIS)
    first = delta_records(NEW)
    interrupted_transfer(target, first, len(first) // 2)
    offset = resume_offset(target)
    changed = b"Z" + NEW[1:]  # differs inside the prefix the receiver already holds
    patcher = FilePatcher(target)
    for record in delta_records(changed, offset):
        patcher.feed(record)
    with pytest.raises(IntegrityError):
        patcher.finish()
    assert target.read_bytes() == BASIS
    assert resume_offset(target) == 0
