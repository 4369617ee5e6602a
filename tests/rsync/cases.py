"""Seeded basis/new pairs shared by the rsync tests (small: the suite must stay fast)."""

import itertools
import random

import xxhash

SIZE = 96 * 1024


def _rng(seed: int) -> random.Random:
    return random.Random(seed)


def _edit_in_place(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(5):
        at = rng.randrange(len(out) - 64)
        out[at:at + 40] = rng.randbytes(40)
    return bytes(out)


def _insert_delete(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(4):
        at = rng.randrange(len(out) - 500)
        if rng.random() < 0.5:
            out[at:at] = rng.randbytes(rng.randrange(1, 300))
        else:
            del out[at:at + rng.randrange(1, 300)]
    return bytes(out)


def make_cases() -> dict[str, tuple[bytes, bytes]]:
    rng = _rng(20240601)
    basis = rng.randbytes(SIZE)
    text = b"".join(b"%06d,Anna,Schmidt,anna%d@example.org,Berlin\n" % (i, i) for i in range(2000))
    return {
        "identical": (basis, bytes(basis)),
        "small_in_place_edits": (basis, _edit_in_place(basis, rng)),
        "insertions_and_deletions": (basis, _insert_delete(basis, rng)),
        "text_edits": (text, _insert_delete(text, rng)),
        "appended": (basis, basis + rng.randbytes(5000)),
        "totally_different": (basis, rng.randbytes(SIZE)),
        "empty_to_data": (b"", rng.randbytes(3000)),
        "data_to_empty": (basis, b""),
        "both_empty": (b"", b""),
        "smaller_than_a_block": (b"tiny basis", b"tiny basis!"),
        "truncated_tail": (basis, basis[:SIZE - 1234]),
    }


def colliding_block(block: bytes, strong_len: int) -> bytes:
    """Another block of the same length whose xxh3-128 digest starts with the same `strong_len`
    bytes: what a signature with cut strong hashes takes for a match (2 bytes: ~65,000 tries)."""
    want = xxhash.xxh3_128_digest(block)[:strong_len]
    for i in itertools.count():
        other = block[:-8] + i.to_bytes(8, "little")
        if other != block and xxhash.xxh3_128_digest(other)[:strong_len] == want:
            return other
    raise AssertionError("unreachable")
