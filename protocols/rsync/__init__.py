"""rsync-style delta transfer: signature, delta, patch (sans-I/O cores) and folder sync on top.

The names below are loaded on first use (PEP 562): the delta kernels pull in numba and numpy,
which cost a command that only needs, say, `protocols.rsync.errors` half a second of start-up.
"""

from __future__ import annotations

from protocols.lazy_exports import lazy_exports
from typing import TYPE_CHECKING

_HOME = {
    "DeltaEncoder": "delta", "DeltaStats": "delta", "delta_of": "delta",
    "BasisMismatch": "errors", "IntegrityError": "errors", "LimitExceeded": "errors",
    "ResumeMismatch": "errors", "RsyncError": "errors", "TruncatedStream": "errors",
    "UnrepresentableName": "errors", "UnsafePath": "errors", "WireFormatError": "errors",
    "HashKind": "hashes",
    "resume_offset": "partial",
    "FilePatcher": "patch", "PatchResult": "patch", "apply_delta": "patch",
    "Signature": "signature", "SignatureBuilder": "signature", "choose_block_size": "signature",
    "signature_of": "signature",
    "CopyOp": "wire", "DeltaEnd": "wire", "DeltaHeader": "wire", "DeltaReader": "wire",
    "Limits": "wire", "LiteralOp": "wire", "SignatureReader": "wire",
}

__all__ = sorted(_HOME)


__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())


if TYPE_CHECKING:
    from .delta import DeltaEncoder, DeltaStats, delta_of
    from .errors import (
        BasisMismatch,
        IntegrityError,
        LimitExceeded,
        ResumeMismatch,
        RsyncError,
        TruncatedStream,
        UnrepresentableName,
        UnsafePath,
        WireFormatError,
    )
    from .hashes import HashKind
    from .partial import resume_offset
    from .patch import FilePatcher, PatchResult, apply_delta
    from .signature import Signature, SignatureBuilder, choose_block_size, signature_of
    from .wire import CopyOp, DeltaEnd, DeltaHeader, DeltaReader, Limits, LiteralOp, SignatureReader
