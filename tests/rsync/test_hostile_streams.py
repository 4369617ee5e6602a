"""Corrupt and hostile signature/delta streams give typed errors and leave the target untouched."""


import cramjam
import pytest
import xxhash
import zstandard

from protocols.rsync import (
    BasisMismatch, DeltaEncoder, FilePatcher, IntegrityError, LimitExceeded, Limits, RsyncError, Signature,
    TruncatedStream, WireFormatError, apply_delta, delta_of, signature_of,
)
from protocols.rsync import wire
from protocols.rsync.partial import partial_path

from .cases import make_cases

BASIS, NEW = make_cases()["insertions_and_deletions"]
SIG = signature_of(BASIS)
DELTA = delta_of(Signature.from_wire(SIG), NEW)
HEADER = wire.DELTA_HEADER.pack(wire.DELTA_MAGIC, wire.DELTA_VERSION, 1, 0, 1024, len(BASIS), 0)


def patch_into_target(tmp_path, delta: bytes, limits: Limits = wire.DEFAULT_LIMITS):
    target = tmp_path / "target"
    target.write_bytes(BASIS)
    patcher = FilePatcher(target, limits=limits)
    with pytest.raises(RsyncError) as info:
        patcher.feed(delta)
        patcher.finish()
    assert target.read_bytes() == BASIS, "the old file must stay as it was"
    return info.value


def test_truncated_signature_is_an_error():
    with pytest.raises(TruncatedStream):
        Signature.from_wire(SIG[:-5])


def test_signature_with_trailing_bytes_is_an_error():
    with pytest.raises(WireFormatError):
        Signature.from_wire(SIG + b"x")


def test_signature_with_bad_magic_or_version_is_an_error():
    with pytest.raises(WireFormatError):
        Signature.from_wire(b"XXXX" + SIG[4:])
    with pytest.raises(WireFormatError):
        Signature.from_wire(SIG[:4] + bytes([99]) + SIG[5:])


def test_signature_claiming_a_huge_basis_is_refused_before_any_allocation():
    header = wire.SIG_HEADER.pack(wire.SIG_MAGIC, wire.SIGNATURE_VERSION, 1, 16, 0, 64, 1 << 60)
    with pytest.raises(LimitExceeded):
        Signature.from_wire(header)
    too_many = wire.SIG_HEADER.pack(wire.SIG_MAGIC, wire.SIGNATURE_VERSION, 1, 16, 0, 64, (1 << 25) * 64 + 64)
    with pytest.raises(LimitExceeded):
        Signature.from_wire(too_many)


def test_signature_with_an_absurd_block_size_is_refused():
    header = wire.SIG_HEADER.pack(wire.SIG_MAGIC, wire.SIGNATURE_VERSION, 1, 16, 0, 1, 100)
    with pytest.raises(LimitExceeded):
        Signature.from_wire(header)


@pytest.mark.parametrize("cut", [5, len(HEADER) + 3, len(DELTA) - 1])
def test_truncated_delta_is_a_typed_error_and_the_target_is_untouched(tmp_path, cut):
    assert isinstance(patch_into_target(tmp_path, DELTA[:cut]), TruncatedStream)


def test_copy_past_the_end_of_the_basis_is_refused(tmp_path):
    evil = HEADER + wire.encode_copy(len(BASIS) - 10, 11)
    assert isinstance(patch_into_target(tmp_path, evil), LimitExceeded)
    with pytest.raises(LimitExceeded):
        apply_delta(BASIS, evil + wire.encode_end(11, bytes(16)))


def test_copy_offset_near_two_to_the_64_is_refused(tmp_path):
    evil = HEADER + wire.COPY.pack(wire.OP_COPY, (1 << 64) - 1, 1)
    assert isinstance(patch_into_target(tmp_path, evil), LimitExceeded)


def test_literal_longer_than_the_limit_is_refused_before_it_arrives(tmp_path):
    evil = HEADER + wire.LITERAL.pack(wire.OP_LITERAL, 0xFFFFFFFF)
    assert isinstance(patch_into_target(tmp_path, evil), LimitExceeded)


def test_literal_pack_that_expands_past_its_announced_length_is_refused(tmp_path):
    bomb = zstandard.ZstdCompressor().compress(b"\0" * 1_000_000)
    evil = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK, len(bomb) + 1, len(bomb)) + bomb
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)


def test_corrupt_literal_pack_is_refused(tmp_path):
    evil = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK, 100, 10) + b"not zstd!!"
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)


def test_literal_pack_longer_than_the_limit_is_refused_before_it_arrives(tmp_path):
    evil = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK, (8 << 20) + 1, 100)
    assert isinstance(patch_into_target(tmp_path, evil), LimitExceeded)


def pack_of(data: bytes) -> bytes:
    return wire.encode_literal_pack(len(data), zstandard.ZstdCompressor().compress(data))


def test_packed_literal_without_a_pack_is_refused(tmp_path):
    evil = HEADER + wire.encode_packed_literal(10)
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)


def test_packed_literal_longer_than_what_its_pack_has_left_is_refused(tmp_path):
    evil = HEADER + pack_of(b"abc" * 100) + wire.encode_packed_literal(200) + \
        wire.encode_packed_literal(101)
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)


def test_packed_literal_of_zero_bytes_is_refused(tmp_path):
    evil = HEADER + pack_of(b"abc" * 100) + wire.encode_packed_literal(0)
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)


def test_a_pack_before_the_last_one_was_used_up_is_refused(tmp_path):
    evil = HEADER + pack_of(b"abc" * 100) + wire.encode_packed_literal(299) + pack_of(b"x" * 100)
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)


def test_a_delta_that_ends_with_packed_bytes_unused_is_refused(tmp_path):
    data = b"abc" * 100
    body = HEADER + pack_of(data) + wire.encode_packed_literal(299)
    end = wire.encode_end(299, xxhash.xxh3_128_digest(data[:299]))
    assert isinstance(patch_into_target(tmp_path, body + end), WireFormatError)
    with pytest.raises(WireFormatError):
        apply_delta(BASIS, body + end)
    assert apply_delta(BASIS, body + wire.encode_packed_literal(1) + wire.encode_end(
        300, xxhash.xxh3_128_digest(data))) == data, "used up, the same stream is fine"


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_delta_version_is_refused_with_both_versions_named(tmp_path, version):
    old = HEADER[:4] + bytes([version]) + HEADER[5:]
    err = patch_into_target(tmp_path, old)
    assert isinstance(err, WireFormatError) and f"version {version}" in str(err) and "want 3" in str(err)


def test_unknown_record_tag_is_refused(tmp_path):
    assert isinstance(patch_into_target(tmp_path, HEADER + b"\x7f" + bytes(20)), WireFormatError)


def test_bytes_after_the_end_record_are_refused(tmp_path):
    assert isinstance(patch_into_target(tmp_path, DELTA + b"\x01"), WireFormatError)


def test_flipped_literal_byte_fails_the_whole_file_hash(tmp_path):
    encoder = DeltaEncoder(Signature.from_wire(signature_of(b"")), compress=False)
    evil = bytearray(b"".join(encoder.feed(b"A" * 10 + bytes(range(200))) + encoder.finish()))
    evil[len(HEADER) + wire.LITERAL.size + 3] ^= 1
    target = tmp_path / "target"
    target.write_bytes(b"")
    patcher = FilePatcher(target)
    patcher.feed(bytes(evil))
    with pytest.raises(IntegrityError):
        patcher.finish()
    assert target.read_bytes() == b""
    assert not partial_path(target).exists(), "a corrupt output is not kept for resume"


def test_wrong_announced_size_fails(tmp_path):
    body = DELTA[:-wire.END.size]
    _, size, digest = wire.END.unpack(DELTA[-wire.END.size:])
    assert isinstance(patch_into_target(tmp_path, body + wire.encode_end(size + 1, digest)), IntegrityError)


def test_basis_that_changed_since_the_signature_is_refused(tmp_path):
    target = tmp_path / "target"
    target.write_bytes(BASIS + b"grown")
    with pytest.raises(BasisMismatch):
        FilePatcher(target).feed(DELTA)
    assert target.read_bytes() == BASIS + b"grown"


def test_output_larger_than_the_limit_is_refused(tmp_path):
    err = patch_into_target(tmp_path, DELTA, Limits(max_file_size=len(NEW) - 1))
    assert isinstance(err, LimitExceeded)


@pytest.mark.parametrize("flip", range(0, 200, 7))
def test_random_byte_flips_never_escape_as_anything_but_a_typed_error(tmp_path, flip):
    evil = bytearray(DELTA)
    pos = (flip * 7919) % len(evil)
    evil[pos] ^= 0xFF
    target = tmp_path / "target"
    target.write_bytes(BASIS)
    patcher = FilePatcher(target)
    try:
        patcher.feed(bytes(evil))
        patcher.finish()
    except RsyncError:
        assert target.read_bytes() == BASIS
    else:  # a flip inside a copy length can cancel out only if the hash still matches: it cannot
        assert target.read_bytes() == NEW


@pytest.mark.parametrize("frame_bytes, announced", [(5000, 4000), (3000, 4000)])
def test_literal_pack_whose_frame_gives_more_or_fewer_bytes_than_announced_is_refused(
        tmp_path, frame_bytes, announced):
    sizeless = zstandard.ZstdCompressor(write_content_size=False).compress(b"ab" * (frame_bytes // 2))
    evil = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK, announced, len(sizeless)) + sizeless
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)
    with pytest.raises(WireFormatError):
        wire.DeltaReader().feed(evil)


def test_literal_pack_with_bytes_after_its_frame_is_refused(tmp_path):
    frame = zstandard.ZstdCompressor().compress(b"ab" * 2000) + b"junk"
    evil = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK, 4000, len(frame)) + frame
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)


def lz4_block(data: bytes) -> bytes:
    return bytes(cramjam.lz4.compress_block(data, store_size=False))


@pytest.mark.parametrize("block_bytes, announced", [(5000, 4000), (3000, 4000)])
def test_lz4_pack_whose_block_gives_more_or_fewer_bytes_than_announced_is_refused(
        tmp_path, block_bytes, announced):
    block = lz4_block(b"ab" * (block_bytes // 2))
    evil = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK_LZ4, announced, len(block)) + block
    assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)
    with pytest.raises(WireFormatError):
        wire.DeltaReader().feed(evil)


def test_corrupt_lz4_pack_or_one_with_bytes_after_its_block_is_refused(tmp_path):
    for block in (b"\xff" * 10, lz4_block(b"ab" * 2000) + b"junk"):
        evil = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK_LZ4, 4000, len(block)) + block
        assert isinstance(patch_into_target(tmp_path, evil), WireFormatError)


def test_lz4_pack_longer_than_the_limit_or_not_smaller_than_its_bytes_is_refused(tmp_path):
    too_long = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK_LZ4, (8 << 20) + 1, 100)
    assert isinstance(patch_into_target(tmp_path, too_long), LimitExceeded)
    not_smaller = HEADER + wire.LITERAL_PACK.pack(wire.OP_LITERAL_PACK_LZ4, 10, 10) + bytes(10)
    assert isinstance(patch_into_target(tmp_path, not_smaller), WireFormatError)
