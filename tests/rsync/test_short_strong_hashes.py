"""Signatures whose strong hashes are cut to what the file's size needs (signature version 2)."""

import pytest

from protocols.rsync import IntegrityError, Signature, apply_delta, delta_of, signature_of, wire
from protocols.rsync.errors import WireFormatError
from protocols.rsync.signature import strong_len_for

from .cases import colliding_block, make_cases

CASES = make_cases()


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("strong_len", [2, 3, 7])
def test_cut_strong_hashes_rebuild_the_new_file_with_the_same_delta(name, strong_len):
    basis, new = CASES[name]
    short = Signature.from_wire(signature_of(basis, strong_len=strong_len))
    full = Signature.from_wire(signature_of(basis))
    assert short.strong_len == strong_len and short.truncated and not full.truncated
    assert apply_delta(basis, delta_of(short, new)) == new
    assert delta_of(short, new) == delta_of(full, new)  # the seeded cases hold no false match


def test_a_cut_signature_costs_four_bytes_and_the_cut_hash_per_block():
    basis = CASES["insertions_and_deletions"][0]
    full, short = signature_of(basis, block_size=1024), signature_of(basis, block_size=1024, strong_len=3)
    blocks = -(-len(basis) // 1024)
    assert len(full) - len(short) == blocks * 13
    assert len(short) == wire.SIG_HEADER.size + blocks * 7


def test_the_strong_length_grows_with_the_file_and_stays_in_range():
    assert strong_len_for(300, 300, 512) == 2  # one block: a single check
    assert strong_len_for(10_000, 10_000, 512) == 3
    assert strong_len_for(200 << 20, 200 << 20, 14464) == 4
    assert strong_len_for(1 << 42, 1 << 42, 128 << 10) == 7
    assert strong_len_for(0, 0, 512) == 2
    sizes = [strong_len_for(n, n, 512) for n in (1, 1 << 10, 1 << 20, 1 << 30, 1 << 40)]
    assert sizes == sorted(sizes) and all(2 <= s <= 16 for s in sizes)


@pytest.mark.parametrize("strong_len", [0, 1, 17, 255])
def test_a_signature_naming_a_strong_length_outside_2_to_16_is_refused(strong_len):
    header = wire.SIG_HEADER.pack(wire.SIG_MAGIC, wire.SIGNATURE_VERSION, 1, strong_len, 0, 512, 100)
    with pytest.raises(WireFormatError, match="strong hash length"):
        Signature.from_wire(header + bytes(4 + max(strong_len, 0)))


def test_a_version_1_signature_is_refused_naming_both_versions():
    old = bytearray(signature_of(b"x" * 2000))
    old[4] = 1
    with pytest.raises(WireFormatError, match=f"version 1 not supported.*{wire.SIGNATURE_VERSION}"):
        Signature.from_wire(bytes(old))


def test_a_false_block_match_is_caught_by_the_whole_file_hash_and_full_hashes_fix_it():
    first, second = bytes(range(256)) * 2, b"second block " * 39 + b"12345"
    basis = first + second
    new = first + colliding_block(second, 2)
    short = Signature.from_wire(signature_of(basis, block_size=512, strong_len=2))
    with pytest.raises(IntegrityError):
        apply_delta(basis, delta_of(short, new))  # the new second block was taken for the old
    full = Signature.from_wire(signature_of(basis, block_size=512))
    assert apply_delta(basis, delta_of(full, new)) == new
