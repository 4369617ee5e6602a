"""Signature, delta and patch round trips: the rebuilt file always equals the new file."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.rsync import (
    DeltaEncoder, FilePatcher, HashKind, Signature, SignatureBuilder, apply_delta,
    choose_block_size, delta_of, signature_of,
)
from protocols.rsync.wire import SignatureReader

from .cases import make_cases

CASES = make_cases()


def chunks(data: bytes, size: int):
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


def streamed_signature(basis: bytes, piece: int, **kw) -> Signature:
    builder = SignatureBuilder(len(basis), **kw)
    reader = SignatureReader()
    for part in chunks(basis, piece):
        reader.feed(builder.feed(part))
    reader.feed(builder.finish())
    return Signature.from_records(*reader.finish())


def streamed_delta(sig: Signature, new: bytes, piece: int) -> tuple[bytes, DeltaEncoder]:
    enc = DeltaEncoder(sig, chunk_hint=4096)
    out = []
    for part in chunks(new, piece):
        out += enc.feed(part)
    out += enc.finish()
    return b"".join(out), enc


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_rebuilds_the_new_file_byte_for_byte(name):
    basis, new = CASES[name]
    sig = Signature.from_wire(signature_of(basis))
    assert apply_delta(basis, delta_of(sig, new)) == new


@pytest.mark.parametrize("name", sorted(CASES))
def test_streaming_in_odd_pieces_gives_the_same_delta_as_one_shot(name):
    basis, new = CASES[name]
    sig = streamed_signature(basis, 777)
    assert Signature.from_wire(signature_of(basis)).strong == sig.strong
    streamed, _ = streamed_delta(sig, new, 1000)
    assert streamed == delta_of(sig, new)
    assert apply_delta(basis, streamed) == new


@pytest.mark.parametrize("kind", list(HashKind))
def test_both_strong_hash_kinds_round_trip(kind):
    basis, new = CASES["insertions_and_deletions"]
    sig = Signature.from_wire(signature_of(basis, hash_kind=kind))
    assert sig.hash_kind is kind
    assert apply_delta(basis, delta_of(sig, new)) == new


def test_identical_file_delta_is_a_single_copy():
    basis, new = CASES["identical"]
    _, enc = streamed_delta(Signature.from_wire(signature_of(basis)), new, 5000)
    assert enc.stats.copy_ops == 1 and enc.stats.literal_bytes == 0
    assert enc.stats.wire_bytes < 100


def test_an_unchanged_stretch_is_matched_block_after_block_without_rolling(monkeypatch):
    from protocols.rsync import rolling

    basis = os.urandom(64 * 1024)
    new = basis[:30_000] + b"an edit" + basis[30_000:]
    sig = Signature.from_wire(signature_of(basis, block_size=512))
    rolls = []
    real_scan = rolling.scan
    monkeypatch.setattr(rolling, "scan", lambda *args: rolls.append(args[1]) or real_scan(*args))
    delta, enc = streamed_delta(sig, new, 8192)
    assert apply_delta(basis, delta) == new
    assert enc.stats.copy_bytes >= len(basis) - 2 * 512
    # a roll to find the first block, a few around the edit; none for the blocks that follow
    assert len(rolls) <= 6 < sig.full_blocks


def test_insertions_and_deletions_still_find_the_shifted_blocks():
    basis, new = CASES["insertions_and_deletions"]
    sig = Signature.from_wire(signature_of(basis))
    _, enc = streamed_delta(sig, new, 3000)
    # four edits of < 300 bytes each spoil at most two blocks apiece
    assert enc.stats.literal_bytes <= 4 * (2 * sig.block_size + 300)


def test_appended_data_sends_only_the_appended_bytes():
    basis, new = CASES["appended"]
    _, enc = streamed_delta(Signature.from_wire(signature_of(basis)), new, 4096)
    assert enc.stats.literal_bytes == len(new) - len(basis)


def test_totally_different_data_is_all_literal_and_zstd_keeps_text_small():
    basis, new = CASES["totally_different"]
    _, enc = streamed_delta(Signature.from_wire(signature_of(basis)), new, 8192)
    assert enc.stats.copy_bytes == 0 and enc.stats.literal_bytes == len(new)
    text = CASES["text_edits"][1]
    assert len(delta_of(Signature.from_wire(signature_of(b"")), text)) < len(text) // 3


def test_block_size_grows_with_the_square_root_of_the_file_and_is_clamped():
    assert choose_block_size(0) == 512
    assert choose_block_size(16 << 20) == 4096
    assert choose_block_size(256 << 20) == 16384
    assert choose_block_size(1 << 50) == 128 << 10


def test_file_patcher_replaces_the_target_and_keeps_mode_and_mtime(tmp_path):
    basis, new = CASES["insertions_and_deletions"]
    target = tmp_path / "f.bin"
    target.write_bytes(basis)
    os.chmod(target, 0o640)
    delta = delta_of(Signature.from_wire(signature_of(basis)), new)
    patcher = FilePatcher(target, mtime_ns=1_600_000_000_123_456_789)
    for part in chunks(delta, 333):
        patcher.feed(part)
    result = patcher.finish()
    assert target.read_bytes() == new and result.size == len(new)
    st_ = target.stat()
    assert st_.st_mode & 0o777 == 0o640
    assert st_.st_mtime_ns == 1_600_000_000_123_456_789
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]


def test_file_patcher_creates_a_new_file_from_an_empty_basis(tmp_path):
    new = CASES["empty_to_data"][1]
    target = tmp_path / "new.bin"
    patcher = FilePatcher(target, mode=0o600)
    patcher.feed(delta_of(Signature.from_wire(signature_of(b"")), new))
    patcher.finish()
    assert target.read_bytes() == new and target.stat().st_mode & 0o777 == 0o600


edits = st.lists(st.tuples(st.sampled_from(["ins", "del", "rep"]), st.integers(0, 10**6),
                           st.binary(min_size=1, max_size=200)), max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), size=st.integers(0, 20_000), edits=edits,
       piece=st.integers(1, 5000), block=st.sampled_from([None, 64, 100, 512]))
def test_random_edits_always_round_trip(seed, size, edits, piece, block):
    basis = bytes((seed * 7 + i * i) % 251 for i in range(size))
    new = bytearray(basis)
    for op, at, data in edits:
        at = at % (len(new) + 1)
        if op == "ins":
            new[at:at] = data
        elif op == "del":
            del new[at:at + len(data)]
        else:
            new[at:at + len(data)] = data
    new = bytes(new)
    sig = streamed_signature(basis, max(piece, 1), block_size=block)
    delta, _ = streamed_delta(sig, new, piece)
    assert apply_delta(basis, delta) == new
