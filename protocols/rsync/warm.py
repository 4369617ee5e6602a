"""Loads the engine's compiled kernels (numba, from its cache) before the first sync needs them.

Each kernel is loaded on its first call, about half a second for the set on this machine; a
daemon that runs this once at start keeps that cost off the first sync's critical path.
"""

from __future__ import annotations

import os

from .delta import DeltaEncoder
from .patch import apply_delta
from .signature import Signature, SignatureBuilder

WARM_SIZE = (64 << 10) + 1000  # a few blocks and a short tail: every kernel runs, briefly


def warm_up() -> None:
    """One signature, delta and patch of a small buffer, through the calls a sync makes."""
    basis = os.urandom(WARM_SIZE)
    new = basis[:WARM_SIZE // 3] + b"warm" + basis[WARM_SIZE // 3:]
    builder = SignatureBuilder(len(basis))
    signature = Signature.from_wire(builder.feed(basis) + builder.finish())
    for compress in (False, True):
        encoder = DeltaEncoder(signature, compress=compress)
        delta = b"".join(encoder.feed(new) + encoder.finish())
        if apply_delta(basis, delta) != new:
            raise AssertionError("the delta engine's warm-up did not round-trip")
