"""Literal packs: the literals of many delta records compressed together, as one LZ4 block or
one zstd frame.

A frame per literal cost more to set up and take apart (tables, context reset, a call each) than
its few KiB of text took to decompress; one pack holds up to a piece of literals, and the records
between them (copies, the literals' own short records) wait behind it. Sans-I/O.
"""

from __future__ import annotations

import cramjam
import zstandard

from .wire import LITERAL, OP_LITERAL, PackCodec, encode_literal_pack, encode_packed_literal

# A pack goes out once the records waiting behind it rebuild this much of the file, however few
# literals it holds: a receiver stays close behind the sender on a file with sparse edits.
PACK_SPAN = 8 << 20
SAMPLE = 64 << 10  # bytes tried first to see whether compressing a long literal pays
SAMPLE_PAYS = 0.97  # a sample that shrinks less than this is taken for incompressible


class LiteralPacker:
    """Takes a delta's records in order and hands them back with their literals packed.

    `literal(data)` (at most `piece` bytes) and `record(wire_record, covers)` (a COPY, with the
    bytes it rebuilds) return what may go out now, often nothing; `flush()` returns all that
    waits. Without `compress` every literal goes out raw at once. A literal or a pack that
    `codec` does not make smaller goes raw too: then the records are those of an unpacked delta.
    `level` is zstd's.
    """

    def __init__(self, *, piece: int, level: int, compress: bool = True,
                 codec: PackCodec = PackCodec.LZ4) -> None:
        self._piece = piece
        self._level = level
        self._compress = compress
        self._codec = codec
        self._ctx: zstandard.ZstdCompressor | None = None  # made for the first zstd pack
        self._held = bytearray()  # the literal bytes of the pack being gathered
        self._waiting: list[bytes | tuple[int, int]] = []  # records, or (start, length) in _held
        self._span = 0  # bytes of the file the waiting records rebuild

    def literal(self, data) -> list[bytes]:
        if not self._compress or (len(data) > SAMPLE and not self._pays(data[:SAMPLE])):
            # random data: holding it would only cost a copy; what waits goes first
            return self.flush() + [LITERAL.pack(OP_LITERAL, len(data)), bytes(data)]
        out = self.flush() if len(self._held) + len(data) > self._piece else []
        self._waiting.append((len(self._held), len(data)))
        self._held += data
        self._span += len(data)
        if len(self._held) >= self._piece or self._span >= PACK_SPAN:
            out += self.flush()
        return out

    def record(self, wire_record: bytes, covers: int) -> list[bytes]:
        if not self._waiting:
            return [wire_record]  # no pack is being gathered: nothing to wait for
        self._waiting.append(wire_record)
        self._span += covers
        return self.flush() if self._span >= PACK_SPAN else []

    def flush(self) -> list[bytes]:
        if not self._waiting:
            return []
        held, waiting = self._held, self._waiting
        self._held, self._waiting, self._span = bytearray(), [], 0
        frame = None
        if len(held) <= SAMPLE or self._pays(memoryview(held)[:SAMPLE]):
            frame = self._squeeze(held)
        if frame is not None and len(frame) < len(held):
            out = [encode_literal_pack(len(held), frame, self._codec)]
            out += [encode_packed_literal(r[1]) if isinstance(r, tuple) else r for r in waiting]
            return out
        out = []
        for r in waiting:
            if isinstance(r, tuple):
                start, length = r
                out += [LITERAL.pack(OP_LITERAL, length), bytes(held[start:start + length])]
            else:
                out.append(r)
        return out

    def _pays(self, sample) -> bool:
        return len(self._squeeze(sample)) <= len(sample) * SAMPLE_PAYS

    def _squeeze(self, data) -> bytes:
        if self._codec is PackCodec.LZ4:
            return bytes(cramjam.lz4.compress_block(data, store_size=False))  # the record has the size
        return self._zstd().compress(data)

    def _zstd(self) -> zstandard.ZstdCompressor:
        # a context costs tens of microseconds: a small file's delta, sent raw, never makes one
        if self._ctx is None:
            self._ctx = zstandard.ZstdCompressor(level=self._level)
        return self._ctx
