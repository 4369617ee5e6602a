"""rsync-style delta transfer: signature, delta, patch (sans-I/O cores) and folder sync on top."""

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

__all__ = [
    "BasisMismatch", "CopyOp", "DeltaEncoder", "DeltaEnd", "DeltaHeader", "DeltaReader",
    "DeltaStats", "FilePatcher", "HashKind", "IntegrityError", "LimitExceeded", "Limits",
    "LiteralOp", "PatchResult", "ResumeMismatch", "RsyncError", "Signature", "SignatureBuilder",
    "SignatureReader", "TruncatedStream", "UnrepresentableName", "UnsafePath", "WireFormatError",
    "apply_delta", "choose_block_size", "delta_of", "resume_offset", "signature_of",
]
