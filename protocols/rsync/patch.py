"""Patch: apply a delta stream to the basis into a temporary file, verify, fsync, rename.

`FilePatcher` is fed delta bytes as they arrive. A reader of the target never sees a half file and
any failure leaves the old file as it was; an interruption keeps the partial output for a resume.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from . import partial
from .errors import BasisMismatch, IntegrityError, LimitExceeded, ResumeMismatch, RsyncError, TruncatedStream
from .hashes import HashKind, file_hasher
from .wire import DEFAULT_LIMITS, CopyOp, DeltaEnd, DeltaHeader, DeltaReader, LiteralOp, Limits

COPY_PIECE = 1 << 20
CHECKPOINT_BYTES = 16 << 20
DEFAULT_MODE = 0o644


@dataclass(frozen=True)
class PatchResult:
    path: Path
    size: int
    digest: bytes
    resumed_from: int


class FilePatcher:
    """Rebuilds `target` from `basis` (default: the target's current content) and a delta.

    `expected_digest` (from the sender's manifest) is checked as well as the delta's own end
    record. `mode` and `mtime_ns` are applied before the rename; by default the old file's mode
    is kept. Call `feed()` per received chunk, then `finish()`; on a broken connection call
    `abort()`, which keeps the partial output for `partial.resume_offset()`.
    """

    def __init__(self, target: str | os.PathLike, basis: str | os.PathLike | None = None, *,
                 expected_digest: bytes | None = None, mode: int | None = None,
                 mtime_ns: int | None = None, limits: Limits = DEFAULT_LIMITS,
                 checkpoint_bytes: int = CHECKPOINT_BYTES) -> None:
        self.target = Path(target)
        self._basis_path = Path(basis) if basis is not None else self.target
        self._expected = expected_digest
        self._mode = mode
        self._mtime_ns = mtime_ns
        self._limits = limits
        self._checkpoint_bytes = checkpoint_bytes
        self._reader = DeltaReader(limits)
        self._basis_fd: int | None = None
        self._copy_buf: bytearray | None = None
        self._out = None
        self._header: DeltaHeader | None = None
        self._end: DeltaEnd | None = None
        self._written = 0
        self._checkpointed = 0
        self._hasher = None
        self._closed = False

    # ------------------------------------------------------------------ public
    @property
    def written(self) -> int:
        """Bytes of the new file rebuilt so far (a resumed prefix included): for progress."""
        return self._written

    def feed(self, data: bytes) -> None:
        try:
            for event in self._reader.feed(data):
                self._apply(event)
        except RsyncError:
            self._close(keep_partial=False)
            raise

    def finish(self) -> PatchResult:
        try:
            self._reader.finish()
        except TruncatedStream:
            self._close(keep_partial=True)  # what arrived is kept; the final hash still guards it
            raise
        end, header = self._end, self._header
        assert end is not None and header is not None and self._hasher is not None
        digest = self._hasher.digest()
        try:
            if end.size != self._written:
                raise IntegrityError(f"rebuilt {self._written} bytes, sender announced {end.size}")
            if digest != end.digest:
                raise IntegrityError("whole-file hash of the rebuilt file differs from the sender's")
            if self._expected is not None and digest != self._expected:
                raise IntegrityError("whole-file hash differs from the manifest's")
        except IntegrityError:
            self._close(keep_partial=False)
            raise
        self._commit()
        return PatchResult(self.target, self._written, digest, header.resume_offset)

    def abort(self, *, keep_partial: bool = True) -> None:
        """Stop here; with `keep_partial` the output so far is made durable for a resume."""
        self._close(keep_partial=keep_partial)

    # ------------------------------------------------------------------ events
    def _apply(self, event) -> None:
        if isinstance(event, CopyOp):
            self._copy(event)
        elif isinstance(event, LiteralOp):
            self._write(event.data)
        elif isinstance(event, DeltaHeader):
            self._open(event)
        elif isinstance(event, DeltaEnd):
            self._end = event
        if self._written - self._checkpointed >= self._checkpoint_bytes:
            self._checkpoint()

    def _open(self, header: DeltaHeader) -> None:
        self._header = header
        self._hasher = file_hasher(header.hash_kind)
        self._open_basis(header.basis_size)
        ppath = partial.partial_path(self.target)
        if header.resume_offset:
            state = partial.load_state(self.target)
            if (state is None or state.offset != header.resume_offset
                    or state.hash_kind != header.hash_kind
                    or (self._expected is not None and state.expected_digest not in (None, self._expected.hex()))
                    or not ppath.exists() or ppath.stat().st_size < state.offset):
                raise ResumeMismatch(f"sender resumes at {header.resume_offset}, no matching partial output")
            self._out = open(ppath, "r+b", buffering=0)
            self._out.truncate(state.offset)
            while chunk := self._out.read(COPY_PIECE):
                self._hasher.update(chunk)
            self._written = self._checkpointed = state.offset
        else:
            partial.discard(self.target)
            self._out = open(ppath, "wb", buffering=0)

    def _open_basis(self, basis_size: int) -> None:
        try:
            fd = os.open(self._basis_path, os.O_RDONLY)
        except FileNotFoundError:
            if basis_size:
                raise BasisMismatch(f"basis {self._basis_path} is missing") from None
            return
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != basis_size:
            os.close(fd)
            raise BasisMismatch(f"basis {self._basis_path} is not the {basis_size}-byte file "
                                "the signature was made from")
        self._basis_fd = fd

    def _copy(self, op: CopyOp) -> None:
        assert self._basis_fd is not None  # the reader checked the op against basis_size > 0
        if self._copy_buf is None:
            self._copy_buf = bytearray(COPY_PIECE)  # reused: fresh pages per piece cost more than the copy
        view = memoryview(self._copy_buf)
        pos, end = op.offset, op.offset + op.length
        while pos < end:
            got = os.preadv(self._basis_fd, [view[:min(COPY_PIECE, end - pos)]], pos)
            if not got:
                raise BasisMismatch("basis shrank while being patched")
            self._write(view[:got])
            pos += got

    def _write(self, data: bytes) -> None:
        if self._written + len(data) > self._limits.max_file_size:
            raise LimitExceeded(f"output above {self._limits.max_file_size} bytes")
        view = memoryview(data)
        while view:  # unbuffered file: write() may take less than asked
            view = view[self._out.write(view):]
        self._hasher.update(data)
        self._written += len(data)

    # ------------------------------------------------------------------ durability
    def _checkpoint(self) -> None:
        self._out.flush()
        os.fsync(self._out.fileno())
        partial.save_state(self.target, partial.PartialState(
            self._written, int(self._header.hash_kind),
            self._expected.hex() if self._expected is not None else None))
        self._checkpointed = self._written

    def _commit(self) -> None:
        out = self._out
        out.flush()
        mode = self._mode
        if mode is None:
            try:
                mode = stat.S_IMODE(os.stat(self.target).st_mode)
            except FileNotFoundError:
                mode = DEFAULT_MODE
        os.fchmod(out.fileno(), mode)
        os.fsync(out.fileno())
        if self._mtime_ns is not None:
            os.utime(out.fileno(), ns=(self._mtime_ns, self._mtime_ns))
        ppath = partial.partial_path(self.target)
        self._release()
        os.replace(ppath, self.target)
        partial.discard(self.target)
        _fsync_dir(self.target.parent)

    def _close(self, *, keep_partial: bool) -> None:
        if self._closed:
            return
        if self._out is not None and keep_partial and self._written > self._checkpointed:
            try:
                self._checkpoint()
            except OSError:
                pass
        self._release()
        if not keep_partial:
            partial.discard(self.target)

    def _release(self) -> None:
        self._closed = True
        if self._out is not None:
            self._out.close()
        if self._basis_fd is not None:
            os.close(self._basis_fd)
            self._basis_fd = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply_delta(basis: bytes, delta: bytes, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """In-memory patch (tests, small data): same checks as `FilePatcher`, no resume."""
    reader = DeltaReader(limits)
    out = bytearray()
    hasher = None
    end = None
    for event in reader.feed(delta):
        if isinstance(event, DeltaHeader):
            if event.basis_size != len(basis):
                raise BasisMismatch(f"delta made for a {event.basis_size}-byte basis, got {len(basis)}")
            if event.resume_offset:
                raise ResumeMismatch("in-memory patch cannot resume")
            hasher = file_hasher(HashKind(event.hash_kind))
        elif isinstance(event, CopyOp):
            out += basis[event.offset:event.offset + event.length]
        elif isinstance(event, LiteralOp):
            out += event.data
        else:
            end = event
        if len(out) > limits.max_file_size:
            raise LimitExceeded(f"output above {limits.max_file_size} bytes")
    reader.finish()
    assert hasher is not None and end is not None
    hasher.update(out)
    if end.size != len(out) or hasher.digest() != end.digest:
        raise IntegrityError("rebuilt data does not match the sender's size and hash")
    return bytes(out)
