"""Strong hashes of the delta engine: per-block digests and the whole-file digest, by kind."""

from __future__ import annotations

import hashlib
from enum import IntEnum
from typing import Callable, Protocol

import xxhash

DIGEST_LEN = 16


class HashKind(IntEnum):
    """Which strong hash a signature and its delta use (a byte on the wire)."""

    XXH3_128 = 1
    BLAKE2B_128 = 2


class Hasher(Protocol):
    def update(self, data, /) -> None: ...
    def digest(self) -> bytes: ...


def block_digest(kind: HashKind, length: int = DIGEST_LEN) -> Callable[[object], bytes]:
    """One-shot digest function of `kind` for a block (any buffer, no copy), cut to the first
    `length` bytes (a signature's strong hashes may be shorter than the digest)."""
    if kind is HashKind.XXH3_128:
        full = xxhash.xxh3_128_digest
    elif kind is HashKind.BLAKE2B_128:
        def full(data) -> bytes:
            return hashlib.blake2b(data, digest_size=DIGEST_LEN).digest()
    else:
        raise ValueError(f"unknown hash kind {kind!r}")
    if length == DIGEST_LEN:
        return full
    return lambda data: full(data)[:length]


def file_hasher(kind: HashKind) -> Hasher:
    """Incremental whole-file hasher of `kind`."""
    if kind is HashKind.XXH3_128:
        return xxhash.xxh3_128()
    if kind is HashKind.BLAKE2B_128:
        return hashlib.blake2b(digest_size=DIGEST_LEN)
    raise ValueError(f"unknown hash kind {kind!r}")
