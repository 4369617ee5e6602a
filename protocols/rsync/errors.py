"""Typed errors of the delta engine and folder sync; each carries a reason a user can read."""

from __future__ import annotations


class RsyncError(Exception):
    """Base of every error raised by `protocols.rsync`."""


class WireFormatError(RsyncError):
    """A signature or delta stream is malformed: bad magic, unknown tag, trailing bytes."""


class TruncatedStream(WireFormatError):
    """The stream ended before its last record was complete."""


class LimitExceeded(WireFormatError):
    """A length, count or offset in a stream is outside the configured limits."""


class BasisMismatch(RsyncError):
    """The basis file is not the one the signature or delta was made against."""


class IntegrityError(RsyncError):
    """The rebuilt file does not have the size or whole-file hash the sender announced."""


class ResumeMismatch(RsyncError):
    """The sender resumed from an offset the receiver has no partial output for."""


class UnsafePath(RsyncError):
    """A path from the other side is absolute, climbs out, or goes through a symlink or device."""


class UnrepresentableName(RsyncError):
    """A file name cannot be stored on the receiving file system (reported, never mangled)."""


class ExchangeError(RsyncError):
    """The peer broke the folder-sync exchange: a frame out of place, a request outside the plan."""
