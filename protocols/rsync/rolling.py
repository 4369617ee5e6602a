"""The weak rolling checksum and the per-byte delta scan, compiled with numba (cache=True).

Weak sum of a window x[0..L-1]: a polynomial hash sum(x[i] * M**(L-1-i)) mod 2**32 (Rabin-Karp),
rolled one byte in O(1). It spreads far better than rsync's two 16-bit sums, so unrelated data
rarely costs a strong-hash check. Arithmetic is int64 with a mask: wrap-around keeps mod 2**32.
"""

from __future__ import annotations

import numpy as np
from numba import njit

MULT = 0x08104225  # odd, so multiplication is invertible mod 2**32
MASK = 0xFFFFFFFF
FILTER_MIX = 0x9E3779B1  # golden-ratio multiplier: the filter and the table use different bits


def power(exponent: int) -> int:
    """MULT ** exponent mod 2**32."""
    return pow(MULT, exponent, 1 << 32)


@njit(cache=True, nogil=True)
def window_hash(buf, start, length):  # pragma: no cover - compiled
    # four bytes per step: the dependent chain is one multiply per 4 bytes, not per byte
    m2 = (MULT * MULT) & MASK
    m3 = (m2 * MULT) & MASK
    m4 = (m3 * MULT) & MASK
    h = np.int64(0)
    i = start
    end4 = start + (length & ~3)
    while i < end4:
        t = (np.int64(buf[i]) * m3 + np.int64(buf[i + 1]) * m2
             + np.int64(buf[i + 2]) * MULT + np.int64(buf[i + 3]))
        h = h * m4 + t  # wraps mod 2**64; only the low 32 bits are kept
        i += 4
    end = start + length
    while i < end:
        h = h * MULT + np.int64(buf[i])
        i += 1
    return h & MASK


@njit(cache=True, nogil=True)
def block_hashes(buf, block_size, count, out):  # pragma: no cover - compiled
    """Weak sums of `count` consecutive full blocks of `buf` into `out`."""
    for j in range(count):
        out[j] = window_hash(buf, j * block_size, block_size)


@njit(cache=True, nogil=True)
def scan(buf, p, limit, h, have_h, skip_first, length, out_weight,
         filt, filt_shift, heads, table_shift, weaks, chain):  # pragma: no cover - compiled
    """Roll the window over start offsets p..limit until its weak sum is some block's.

    Returns (block, p, h): the first block index whose weak sum equals the window's at p
    (further ones via `chain`), or -1 with p == limit; h is always the window's sum at p, so the
    caller can resume without re-reading. `skip_first` moves one byte before the first check.
    `out_weight` is MULT ** length: the roll is h * MULT - out * MULT**length + in.
    """
    if not have_h:
        h = window_hash(buf, p, length)
    elif skip_first:
        if p >= limit:
            return -1, p, h
        h = (h * MULT - np.int64(buf[p]) * out_weight + np.int64(buf[p + length])) & MASK
        p += 1
    while True:
        # h is left unmasked (wrapping mod 2**64) so the loop-carried chain is one multiply-add;
        # its low 32 bits are the sum
        hm = h & MASK
        # a bitset that stays in L1/L2 answers "no block has this sum" for almost every offset
        f = ((hm * FILTER_MIX) & MASK) >> filt_shift
        if (filt[f >> 3] >> (f & 7)) & 1:
            b = heads[hm >> table_shift]
            while b >= 0:
                if weaks[b] == hm:
                    return b, p, hm
                b = chain[b]
        if p >= limit:
            return -1, p, hm
        h = h * MULT + (np.int64(buf[p + length]) - np.int64(buf[p]) * out_weight)
        p += 1


@njit(cache=True, nogil=True)
def build_index(weaks, filt, filt_shift, heads, table_shift, chain):  # pragma: no cover - compiled
    """Fill the bitset filter and the chained hash table from the full blocks' weak sums."""
    for b in range(weaks.size - 1, -1, -1):  # reversed: chains list lower block numbers first
        h = weaks[b]
        f = ((h * FILTER_MIX) & MASK) >> filt_shift
        filt[f >> 3] |= np.uint8(1 << (f & 7))
        t = h >> table_shift
        chain[b] = heads[t]
        heads[t] = b
