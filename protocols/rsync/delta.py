"""Delta of a new file against a signature: new bytes in, COPY/LITERAL wire records out.

The weak sum is rolled over every byte offset by a compiled kernel (`rolling.scan`); Python only
sees candidate offsets, confirms them with the strong hash and jumps a whole block after a match.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import rolling
from .hashes import block_digest, file_hasher
from .packing import LiteralPacker
from .signature import Signature
from .wire import DeltaHeader, PackCodec, encode_copy, encode_delta_header, encode_end

LITERAL_PIECE = 1 << 20  # literal bytes per record and per pack: bounds memory on both sides
ZSTD_LEVEL = 3  # level 3 gives up on random data at ~5 GB/s here, level 1 took ~0.9 GB/s
# LZ4 by default: the patch of text edits decompressed zstd's packs at ~1 GB/s, a third of its
# time; LZ4 gives the same bytes back at ~3.5 GB/s for packs ~1.7 times as big, and compresses
# faster. zstd stays for a carrier that counts bytes before the receiver's CPU.
LITERAL_CODEC = PackCodec.LZ4


@dataclass
class DeltaStats:
    copy_bytes: int = 0
    literal_bytes: int = 0
    copy_ops: int = 0
    literal_ops: int = 0
    wire_bytes: int = 0
    strong_checks: int = 0


class _Index:
    """Bitset filter and chained hash table over the full blocks' weak sums, for `rolling.scan`."""

    def __init__(self, sig: Signature) -> None:
        n = sig.full_blocks
        self.weaks = sig.weak[:n].astype(np.int64)
        filt_bits = max(16, (16 * max(n, 1) - 1).bit_length())  # ~16 bits per block
        table_bits = max(4, (2 * max(n, 1) - 1).bit_length())
        self.filt = np.zeros(1 << (filt_bits - 3), np.uint8)
        self.filt_shift = 32 - filt_bits
        self.heads = np.full(1 << table_bits, -1, np.int64)
        self.table_shift = 32 - table_bits
        self.chain = np.full(max(n, 1), -1, np.int64)
        rolling.build_index(self.weaks, self.filt, self.filt_shift, self.heads, self.table_shift,
                            self.chain)


class DeltaEncoder:
    """Feed the new file from its first byte; each call returns wire records ready to send.

    With `resume_offset` N the first N bytes are only hashed (the receiver already holds them);
    records start at N and the end record still carries the digest of the whole file.
    `literal_piece` caps one literal record and one pack of compressed literals: smaller pieces
    resume at a finer grain. `compress=False` leaves literals raw, for a carrier that compresses
    them with more context (the folder-sync batches, over many small files); `literal_codec`
    says how packs are compressed (`zstd_level` is for zstd's).
    """

    def __init__(self, signature: Signature, *, resume_offset: int = 0,
                 zstd_level: int = ZSTD_LEVEL, chunk_hint: int = 1 << 20,
                 literal_piece: int = LITERAL_PIECE, compress: bool = True,
                 literal_codec: PackCodec = LITERAL_CODEC) -> None:
        self.sig = signature
        self.stats = DeltaStats()
        self._resume = resume_offset
        self._piece = literal_piece
        self._L = signature.block_size
        self._index = _Index(signature) if signature.full_blocks else None
        self._out_weight = rolling.power(self._L)
        self._digest = block_digest(signature.hash_kind, signature.strong_len)
        self._hasher = file_hasher(signature.hash_kind)
        self._packer = LiteralPacker(piece=literal_piece, level=zstd_level, compress=compress,
                                     codec=literal_codec)
        self._buf = np.empty(max(chunk_hint, 4 * self._L) + self._L, np.uint8)
        self._n = 0  # valid bytes in _buf
        self._p = 0  # next window start to examine (index into _buf)
        self._lit = 0  # first byte not yet covered by a record
        self._h = 0
        self._have_h = False
        self._skip = False
        self._seen = 0
        self._last_block = -2
        self._copy_off = 0
        self._copy_len = 0
        self._out: list[bytes] = []
        self._emit(encode_delta_header(DeltaHeader(signature.hash_kind, signature.block_size,
                                                   signature.basis_size, resume_offset)))

    # ------------------------------------------------------------------ public
    def feed(self, data) -> list[bytes]:
        self._hasher.update(data)
        if self._seen < self._resume:
            skip = min(len(data), self._resume - self._seen)
            self._seen += skip
            data = memoryview(data)[skip:]
        self._seen += len(data)
        if len(data):
            self._append(data)
            self._scan()
            if self._p - self._lit >= self._piece:
                self._flush_copy()
                self._emit_literal(self._p)
        return self._take()

    def finish(self) -> list[bytes]:
        self._scan()
        tail = self.sig.tail_size
        start = self._n - tail
        if tail and start >= self._lit and self._digest(self._buf[start:self._n]) == \
                self.sig.strong_of(self.sig.block_count - 1):
            self._emit_literal(start)
            self._add_copy(self.sig.full_blocks * self._L, tail)
            self._lit = self._n
        self._emit_literal(self._n)
        self._flush_copy()
        self._emit_all(self._packer.flush())
        self._emit(encode_end(self._seen, self._hasher.digest()))
        return self._take()

    # ------------------------------------------------------------------ scanning
    def _scan(self) -> None:
        if self._index is None:
            self._p = max(self._p, self._n - self._L + 1, 0)
            return
        ix, L, buf = self._index, self._L, self._buf
        limit = self._n - L
        while self._p <= limit:
            if self._follows_last_match():
                continue
            block, p, h = rolling.scan(buf, self._p, limit, self._h, self._have_h, self._skip, L,
                                       self._out_weight, ix.filt, ix.filt_shift, ix.heads,
                                       ix.table_shift, ix.weaks, ix.chain)
            self._p, self._h, self._have_h, self._skip = p, h, True, True
            if block < 0:
                return
            block = self._confirm(block, p, h)
            if block >= 0:
                self._emit_literal(p)
                self._add_copy(block * L, L)
                self._last_block = block
                self._p = self._lit = p + L
                self._have_h = self._skip = False

    def _follows_last_match(self) -> bool:
        """Right after a match, the window is most often the basis's next block (an unchanged
        stretch of the file): one strong hash says so without a roll, a table look-up and a
        kernel call per block. The block is the one `_confirm` would prefer, so the delta is
        the same; otherwise the scan goes on as usual from the same offset."""
        nxt, p = self._last_block + 1, self._p
        if self._have_h or nxt <= 0 or nxt >= self.sig.full_blocks or p != self._lit:
            return False
        self.stats.strong_checks += 1
        if self._digest(self._buf[p:p + self._L]) != self.sig.strong_of(nxt):
            return False
        self._add_copy(nxt * self._L, self._L)
        self._last_block = nxt
        self._p = self._lit = p + self._L
        return True

    def _confirm(self, block: int, p: int, h: int) -> int:
        """The block whose strong hash equals the window's, preferring the one after the last match."""
        ix, sig = self._index, self.sig
        strong = self._digest(self._buf[p:p + self._L])
        self.stats.strong_checks += 1
        nxt = self._last_block + 1
        if 0 <= nxt < sig.full_blocks and ix.weaks[nxt] == h and sig.strong_of(nxt) == strong:
            return nxt
        while block >= 0:
            if ix.weaks[block] == h and sig.strong_of(block) == strong:
                return block
            block = int(ix.chain[block])
        return -1

    # ------------------------------------------------------------------ buffer
    def _append(self, data) -> None:
        src = np.frombuffer(data, np.uint8)
        if self._n + len(src) > len(self._buf):
            keep = min(self._lit, self._p)
            live = self._n - keep
            if live + len(src) > len(self._buf):
                grown = np.empty(live + len(src) + self._L, np.uint8)
                grown[:live] = self._buf[keep:self._n]
                self._buf = grown
            else:
                self._buf[:live] = self._buf[keep:self._n]
            self._n, self._p, self._lit = live, self._p - keep, self._lit - keep
        self._buf[self._n:self._n + len(src)] = src
        self._n += len(src)

    # ------------------------------------------------------------------ records
    def _add_copy(self, offset: int, length: int) -> None:
        if self._copy_len and self._copy_off + self._copy_len == offset:
            self._copy_len += length
        else:
            self._flush_copy()
            self._copy_off, self._copy_len = offset, length
        self.stats.copy_bytes += length

    def _flush_copy(self) -> None:
        if self._copy_len:
            self._emit_all(self._packer.record(encode_copy(self._copy_off, self._copy_len),
                                               self._copy_len))
            self.stats.copy_ops += 1
            self._copy_len = 0

    def _emit_literal(self, upto: int) -> None:
        if upto <= self._lit:
            return
        self._flush_copy()
        view = memoryview(self._buf)
        for start in range(self._lit, upto, self._piece):
            raw = view[start:min(upto, start + self._piece)]
            self._emit_all(self._packer.literal(raw))
            self.stats.literal_ops += 1
            self.stats.literal_bytes += len(raw)
        self._lit = upto

    def _emit(self, record: bytes) -> None:
        self._out.append(record)
        self.stats.wire_bytes += len(record)

    def _emit_all(self, records: list[bytes]) -> None:
        for record in records:
            self._emit(record)

    def _take(self) -> list[bytes]:
        out, self._out = self._out, []
        return out


def delta_of(signature: Signature, new: bytes, *, resume_offset: int = 0) -> bytes:
    """Delta wire bytes of an in-memory new file (tests, small files)."""
    enc = DeltaEncoder(signature, resume_offset=resume_offset)
    return b"".join(enc.feed(new) + enc.finish())
