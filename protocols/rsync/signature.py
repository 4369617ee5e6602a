"""Signature of a basis file: block size from the file size, a weak and a strong sum per block.

`SignatureBuilder` is fed the basis in pieces and hands out wire bytes as blocks complete, so a
large file never sits whole in memory; `Signature` is the checked, decoded form a delta needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import rolling
from .errors import BasisMismatch
from .hashes import DIGEST_LEN, HashKind, block_digest
from .wire import (
    DEFAULT_LIMITS,
    SIG_RECORD,
    Limits,
    SignatureHeader,
    SignatureReader,
    encode_signature_header,
)

MIN_BLOCK_SIZE = 512
MAX_BLOCK_SIZE = 128 << 10


def choose_block_size(file_size: int) -> int:
    """About the square root of the size, a multiple of 128, clamped (rdiff's rule, so figures compare)."""
    return max(MIN_BLOCK_SIZE, min(MAX_BLOCK_SIZE, math.isqrt(max(file_size, 0)) & ~127))


@dataclass(frozen=True, eq=False)
class Signature:
    """Per-block weak sums (uint32) and strong digests of a basis; the last block may be short."""

    hash_kind: HashKind
    block_size: int
    basis_size: int
    weak: np.ndarray
    strong: bytes

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
        return self.strong[block * DIGEST_LEN:(block + 1) * DIGEST_LEN]

    @classmethod
    def from_records(cls, header: SignatureHeader, records: np.ndarray) -> "Signature":
        return cls(header.hash_kind, header.block_size, header.basis_size,
                   records["weak"].astype(np.uint32), records["strong"].tobytes())

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
                 hash_kind: HashKind = HashKind.XXH3_128) -> None:
        self.header = SignatureHeader(hash_kind, block_size or choose_block_size(basis_size), basis_size)
        self._digest = block_digest(hash_kind)
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

    @staticmethod
    def _pack(weak: np.ndarray, digests: list[bytes]) -> bytes:
        rec = np.empty(len(weak), SIG_RECORD)
        rec["weak"] = weak
        rec["strong"] = np.frombuffer(b"".join(digests), f"V{DIGEST_LEN}")
        return rec.tobytes()


def signature_of(data: bytes, *, block_size: int | None = None,
                 hash_kind: HashKind = HashKind.XXH3_128) -> bytes:
    """Signature wire bytes of an in-memory basis (tests, small files)."""
    builder = SignatureBuilder(len(data), block_size=block_size, hash_kind=hash_kind)
    return builder.feed(data) + builder.finish()
