"""Literal packs: compressed literals of many records travel as one LZ4 block (or zstd frame), and
come back out of the reader as the same literals, in order, whatever pieces the stream arrives in."""

import random

import cramjam
import pytest
import xxhash
import zstandard

from protocols.rsync import DeltaEncoder, FilePatcher, Signature, apply_delta, signature_of, wire
from protocols.rsync.packing import PACK_SPAN, LiteralPacker
from protocols.rsync.wire import CopyOp, DeltaReader, LiteralOp

rng = random.Random(7)


def text_lines(count: int, seed: int) -> list[bytes]:
    r = random.Random(seed)
    return [b"%d,%s,%s,%d\n" % (r.randrange(10**9), r.choice([b"Anna", b"Ben", b"Cem"]),
                                r.choice([b"Berlin", b"Hamburg", b"Bonn"]), r.randrange(10**6))
            for _ in range(count)]


def text_with_scattered_edits() -> tuple[bytes, bytes]:
    lines = text_lines(40_000, 1)
    edited = list(lines)
    for i in range(0, len(edited), 400):  # one changed line every ~14 KB: a literal each
        edited[i] = b"edited,%d\n" % i
    return b"".join(lines), b"".join(edited)


def records_of(basis: bytes, new: bytes, **kw) -> list[bytes]:
    encoder = DeltaEncoder(Signature.from_wire(signature_of(basis, block_size=1024)), **kw)
    return encoder.feed(new) + encoder.finish()


def tags(records: list[bytes]) -> list[int]:
    return [r[0] for r in records if r and r[0] in (wire.OP_COPY, wire.OP_LITERAL, wire.OP_END,
                                                     wire.OP_LITERAL_PACK, wire.OP_LITERAL_PACK_LZ4,
                                                     wire.OP_PACKED_LITERAL)]


@pytest.mark.parametrize("codec", list(wire.PackCodec))
def test_scattered_text_edits_travel_in_few_packs_and_rebuild_the_file(codec):
    basis, new = text_with_scattered_edits()
    records = records_of(basis, new, literal_piece=16 << 10, literal_codec=codec)
    kinds = tags(records)
    assert kinds.count(wire.OP_PACKED_LITERAL) >= 90
    assert 0 < kinds.count(codec) <= kinds.count(wire.OP_PACKED_LITERAL) // 5
    assert wire.OP_LITERAL not in kinds and ({wire.OP_LITERAL_PACK, wire.OP_LITERAL_PACK_LZ4} - {codec}).isdisjoint(kinds)
    assert apply_delta(basis, b"".join(records)) == new


def test_packs_are_lz4_unless_the_encoder_is_asked_for_zstd():
    basis, new = text_with_scattered_edits()
    lz4, zstd = records_of(basis, new), records_of(basis, new, literal_codec=wire.PackCodec.ZSTD)
    assert wire.OP_LITERAL_PACK_LZ4 in tags(lz4) and wire.OP_LITERAL_PACK not in tags(lz4)
    assert len(b"".join(zstd)) < len(b"".join(lz4)) < len(new) // 2, "zstd is the smaller"


@pytest.mark.parametrize("codec", list(wire.PackCodec))
def test_no_pack_holds_more_than_a_literal_piece(codec):
    basis, new = text_with_scattered_edits()
    piece = 8 << 10
    records = records_of(basis, new, literal_piece=piece, literal_codec=codec)
    assert codec in tags(records)
    for record in records:
        if record[0] == codec:
            assert wire.LITERAL_PACK.unpack_from(record)[1] <= piece


def test_a_packed_delta_is_the_same_whatever_pieces_the_new_file_is_fed_in():
    basis, new = text_with_scattered_edits()
    sig = Signature.from_wire(signature_of(basis, block_size=1024))
    whole = b"".join(records_of(basis, new))
    encoder = DeltaEncoder(sig, chunk_hint=4096)
    streamed = []
    for start in range(0, len(new), 3001):
        streamed += encoder.feed(new[start:start + 3001])
    assert b"".join(streamed + encoder.finish()) == whole


@pytest.mark.parametrize("codec", list(wire.PackCodec))
@pytest.mark.parametrize("piece", [1, 7, 4096, 1 << 20])
def test_packed_literals_come_out_in_order_whatever_pieces_the_delta_arrives_in(piece, codec):
    basis, new = text_with_scattered_edits()
    delta = b"".join(records_of(basis, new, literal_codec=codec))
    reader, out = DeltaReader(), bytearray()
    for start in range(0, len(delta), piece):
        for event in reader.feed(delta[start:start + piece]):
            if isinstance(event, LiteralOp):
                out += event.data
            elif isinstance(event, CopyOp):
                out += basis[event.offset:event.offset + event.length]
    reader.finish()
    assert bytes(out) == new


@pytest.mark.parametrize("codec", list(wire.PackCodec))
def test_packed_literals_are_patched_into_a_file(tmp_path, codec):
    basis, new = text_with_scattered_edits()
    target = tmp_path / "file"
    target.write_bytes(basis)
    patcher = FilePatcher(target)
    for record in records_of(basis, new, literal_codec=codec):
        patcher.feed(record)
    patcher.finish()
    assert target.read_bytes() == new


@pytest.mark.parametrize("codec", list(wire.PackCodec))
def test_incompressible_literals_go_raw_as_an_unpacked_delta_would_send_them(codec):
    basis = rng.randbytes(200_000)
    new = bytearray(basis)
    for at in range(5000, 190_000, 20_000):
        new[at:at + 3000] = rng.randbytes(3000)
    records = records_of(basis, bytes(new), literal_codec=codec)
    assert codec not in tags(records) and wire.OP_LITERAL in tags(records)
    assert records == records_of(basis, bytes(new), compress=False)


def test_without_compression_no_literal_waits():
    packer = LiteralPacker(piece=1 << 20, level=3, compress=False)
    assert b"".join(packer.literal(b"text " * 100)) == wire.encode_literal(b"text " * 100)


def test_copies_wait_behind_a_pack_until_it_is_sent():
    packer = LiteralPacker(piece=1 << 20, level=3, codec=wire.PackCodec.ZSTD)
    copy = wire.encode_copy(0, 4096)
    assert packer.record(copy, 4096) == [copy], "no pack gathered: nothing to wait for"
    assert packer.literal(b"some text, " * 50) == []
    assert packer.record(copy, 4096) == []
    out = packer.flush()
    assert [r[0] for r in out] == [wire.OP_LITERAL_PACK, wire.OP_PACKED_LITERAL, wire.OP_COPY]
    assert packer.flush() == []


def test_a_pack_goes_out_once_the_records_behind_it_rebuild_the_span():
    # a sparse edit in a big file must not hold the receiver back until the sender is done
    packer = LiteralPacker(piece=1 << 20, level=3)
    assert packer.literal(b"some text, " * 50) == []
    assert packer.record(wire.encode_copy(0, PACK_SPAN - 551), PACK_SPAN - 551) == []
    out = packer.record(wire.encode_copy(0, 1), 1)
    assert [r[0] for r in out] == [wire.OP_LITERAL_PACK_LZ4, wire.OP_PACKED_LITERAL, wire.OP_COPY,
                                   wire.OP_COPY]


def test_a_pack_goes_out_when_the_next_literal_would_overfill_it():
    packer = LiteralPacker(piece=1000, level=3)
    assert packer.literal(b"a, " * 200) == []
    out = packer.literal(b"b, " * 200)
    assert [r[0] for r in out] == [wire.OP_LITERAL_PACK_LZ4, wire.OP_PACKED_LITERAL]
    assert wire.LITERAL_PACK.unpack_from(out[0])[1] == 600


def many_packs() -> tuple[bytes, list[bytes]]:
    """A delta of 40 packs, each of 64 KiB of its own text, and those texts; zstd and LZ4 take
    turns."""
    texts = [b"".join(text_lines(3000, seed))[:64 << 10] for seed in range(40)]
    records = [wire.encode_delta_header(wire.DeltaHeader(wire.HashKind.XXH3_128, 1024, 0, 0))]
    for i, text in enumerate(texts):
        pack = (wire.encode_literal_pack(len(text), zstandard.ZstdCompressor().compress(text)) if i % 2
                else wire.encode_literal_pack(len(text), bytes(cramjam.lz4.compress_block(
                    text, store_size=False)), wire.PackCodec.LZ4))
        records += [pack, wire.encode_packed_literal(len(text))]
    whole = b"".join(texts)
    records.append(wire.encode_end(len(whole), xxhash.xxh3_128_digest(whole)))
    return b"".join(records), texts


def test_events_decompress_every_pack_of_a_feed_into_one_room():
    delta, texts = many_packs()
    literals = [e for e in DeltaReader().events(delta) if isinstance(e, LiteralOp)]
    assert len(literals) == 40 and len({id(e.data.obj) for e in literals}) == 1, \
        "one pack held at a time, however many the feed brings"


def test_feed_gives_every_pack_its_own_bytes_so_they_outlive_the_next_pack():
    delta, texts = many_packs()
    literals = [e for e in DeltaReader().feed(delta) if isinstance(e, LiteralOp)]
    assert [bytes(e.data) for e in literals] == texts
    assert apply_delta(b"", delta) == b"".join(texts)
