"""Signature of a basis file: block size from the file size, a weak and a strong sum per block.

`SignatureBuilder` is fed the basis in pieces and hands out wire bytes as blocks complete, so a
large file never sits whole in memory; `Signature` is the checked, decoded form a delta needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import rolling
from .errors import BasisMismatch
from .hashes import DIGEST_LEN, HashKind, block_digest
from .wire import (
    DEFAULT_LIMITS,
    MIN_STRONG_LEN,
    Limits,
    SignatureHeader,
    SignatureReader,
    encode_signature_header,
    sig_record,
)

MIN_BLOCK_SIZE = 512
MAX_BLOCK_SIZE = 128 << 10
# A file's strong hashes are cut so that a block matched by mistake happens in at most one file
# of 2**16 (with weak sums spread evenly), every window of the new file compared; the whole-file
# hash then fails and the receiver asks for that file again with whole strong hashes.
FALSE_MATCH_BITS = 16


def choose_block_size(file_size: int) -> int:
    """About the square root of the size, a multiple of 128, clamped (rdiff's rule, so figures compare)."""
    return max(MIN_BLOCK_SIZE, min(MAX_BLOCK_SIZE, math.isqrt(max(file_size, 0)) & ~127))


def strong_len_for(new_size: int, basis_size: int, block_size: int) -> int:
    """Bytes of strong hash per block for a delta of a `new_size` file against this basis.

    Two checks can take a wrong block for a match: a window whose 32-bit weak sum equals one of
    the basis blocks' (about new_size * blocks / 2**32 of them), confirmed by the strong hash;
    and the block right after a match, tried by its strong hash alone (at most one per block of
    the new file). The strong hash needs enough bits that both together stay under 2**-16.
    rsync's rule is the same with a smaller margin (its sums are 2 bytes for most files)."""
    blocks = max(1, -(-basis_size // block_size))
    candidates = max(new_size, 1) * blocks / 2 ** 32 + max(new_size, 1) / block_size
    bits = max(math.log2(max(candidates, 1.0)), 0.0) + FALSE_MATCH_BITS
    return min(DIGEST_LEN, max(MIN_STRONG_LEN, math.ceil(bits / 8)))


@dataclass(frozen=True, eq=False)
class Signature:
    """Per-block weak sums (uint32) and strong digests of a basis; the last block may be short.
    `strong` holds the first `strong_len` bytes of each block's digest."""

    hash_kind: HashKind
    block_size: int
    basis_size: int
    weak: np.ndarray
    strong: bytes
    strong_len: int = field(default=DIGEST_LEN)

    @property
    def block_count(self) -> int:
        return len(self.weak)

    @property
    def full_blocks(self) -> int:
        return self.basis_size // self.block_size

    @property
    def tail_size(self) -> int:
        """Length of the short last block, 0 when the basis is a whole number of blocks."""
        return self.basis_size % self.block_size

    def strong_of(self, block: int) -> bytes:
        n = self.strong_len
        return self.strong[block * n:(block + 1) * n]

    @property
    def truncated(self) -> bool:
        """Its strong hashes are cut: a match may be false, which only the whole-file hash sees."""
        return self.strong_len < DIGEST_LEN

    @classmethod
    def from_records(cls, header: SignatureHeader, records: np.ndarray) -> "Signature":
        return cls(header.hash_kind, header.block_size, header.basis_size,
                   records["weak"].astype(np.uint32), records["strong"].tobytes(), header.strong_len)

    @classmethod
    def from_wire(cls, data: bytes, limits: Limits = DEFAULT_LIMITS) -> "Signature":
        reader = SignatureReader(limits)
        reader.feed(data)
        return cls.from_records(*reader.finish())


class SignatureBuilder:
    """Basis bytes in, signature wire bytes out (header first, then one record per block).

    `basis_size` is the size the caller stat()ed; a basis that grows or shrinks while it is
    read raises `BasisMismatch` at `finish()` rather than producing a wrong signature.
    """

    def __init__(self, basis_size: int, *, block_size: int | None = None,
                 hash_kind: HashKind = HashKind.XXH3_128, strong_len: int = DIGEST_LEN) -> None:
        if not MIN_STRONG_LEN <= strong_len <= DIGEST_LEN:
            raise ValueError(f"strong hash length {strong_len} outside [{MIN_STRONG_LEN}, {DIGEST_LEN}]")
        self.header = SignatureHeader(hash_kind, block_size or choose_block_size(basis_size),
                                      basis_size, strong_len)
        self._digest = block_digest(hash_kind, strong_len)
        self._pending = bytearray()
        self._seen = 0
        self._started = False

    def feed(self, data: bytes) -> bytes:
        self._seen += len(data)
        if self._seen > self.header.basis_size:
            raise BasisMismatch(f"basis grew past {self.header.basis_size} bytes while being read")
        out = [self._start()]
        view = memoryview(data)
        bs = self.header.block_size
        if self._pending:
            need = bs - len(self._pending)
            self._pending += view[:need]
            view = view[need:]
            if len(self._pending) == bs:
                out.append(self._records(bytes(self._pending), 1))
                self._pending.clear()
        whole = len(view) // bs
        if whole:
            out.append(self._records(view[:whole * bs], whole))
        self._pending += view[whole * bs:]
        return b"".join(out)

    def finish(self) -> bytes:
        if self._seen != self.header.basis_size:
            raise BasisMismatch(f"basis has {self._seen} bytes, expected {self.header.basis_size}")
        out = self._start()
        if self._pending:
            tail = bytes(self._pending)
            weak = rolling.window_hash(np.frombuffer(tail, np.uint8), 0, len(tail))
            out += self._pack(np.array([weak], np.uint32), [self._digest(tail)])
        return out

    def _start(self) -> bytes:
        if self._started:
            return b""
        self._started = True
        return encode_signature_header(self.header)

    def _records(self, blocks, count: int) -> bytes:
        bs = self.header.block_size
        arr = np.frombuffer(blocks, np.uint8)
        arr.setflags(write=False)  # one compiled specialization whatever buffer the caller fed
        weak = np.empty(count, np.uint32)
        rolling.block_hashes(arr, bs, count, weak)
        mv = memoryview(blocks)
        return self._pack(weak, [self._digest(mv[i * bs:(i + 1) * bs]) for i in range(count)])

    def _pack(self, weak: np.ndarray, digests: list[bytes]) -> bytes:
        n = self.header.strong_len
        rec = np.empty(len(weak), sig_record(n))
        rec["weak"] = weak
        rec["strong"] = np.frombuffer(b"".join(digests), f"V{n}")
        return rec.tobytes()


def signature_of(data: bytes, *, block_size: int | None = None,
                 hash_kind: HashKind = HashKind.XXH3_128, strong_len: int = DIGEST_LEN) -> bytes:
    """Signature wire bytes of an in-memory basis (tests, small files)."""
    builder = SignatureBuilder(len(data), block_size=block_size, hash_kind=hash_kind,
                               strong_len=strong_len)
    return builder.feed(data) + builder.finish()
