"""Patch: apply a delta stream to the basis into a temporary file, verify, fsync, rename.

`FilePatcher` is fed delta bytes as they arrive. A reader of the target never sees a half file and
any failure leaves the old file as it was; an interruption keeps the partial output for a resume.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import partial
from .errors import BasisMismatch, IntegrityError, LimitExceeded, ResumeMismatch, RsyncError, TruncatedStream
from .hashes import HashKind, block_digest, file_hasher
from .kernel_io import copy_shares_blocks
from .output import PatchOutput
from .wire import DEFAULT_LIMITS, CopyOp, DeltaEnd, DeltaHeader, DeltaReader, LiteralOp, Limits

# A checkpoint (the partial output made durable for a resume after a crash) costs an fsync of the
# data and one of the state record. It comes after this many new bytes *and* this many seconds:
# a patch running at disk speed then fsyncs once, at the end, and a crash loses a second or so.
CHECKPOINT_BYTES = 16 << 20
CHECKPOINT_SECONDS = 1.0
DEFAULT_MODE = 0o644
PARTIAL_MODE = 0o600  # until the rename: the final mode is set just before it


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
    `abort()`, which keeps the partial output for `partial.resume_offset()`. `kernel_copy` says
    whether long basis ranges are copied by the kernel (default: where the file system shares or
    offloads the blocks) or through memory; `clock` times the checkpoints.
    """

    def __init__(self, target: str | os.PathLike, basis: str | os.PathLike | None = None, *,
                 expected_digest: bytes | None = None, mode: int | None = None,
                 mtime_ns: int | None = None, limits: Limits = DEFAULT_LIMITS,
                 checkpoint_bytes: int = CHECKPOINT_BYTES,
                 checkpoint_seconds: float = CHECKPOINT_SECONDS, kernel_copy: bool | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.target = Path(target)
        self._basis_path = Path(basis) if basis is not None else self.target
        self._expected = expected_digest
        self._mode = mode
        self._mtime_ns = mtime_ns
        self._limits = limits
        self._checkpoint_bytes = checkpoint_bytes
        self._checkpoint_seconds = checkpoint_seconds
        self._kernel_copy = kernel_copy
        self._clock = clock
        self._reader = DeltaReader(limits)
        self._basis_fd: int | None = None
        self._out_fd: int | None = None
        self._output: PatchOutput | None = None
        self._header: DeltaHeader | None = None
        self._end: DeltaEnd | None = None
        self._checkpointed = 0
        self._checkpointed_at = 0.0
        self._closed = False

    # ------------------------------------------------------------------ public
    @property
    def written(self) -> int:
        """Bytes of the new file rebuilt so far (a resumed prefix included): for progress."""
        return self._output.size if self._output is not None else 0

    @property
    def kernel_copied(self) -> int:
        """Bytes the OS copied from the basis without passing them through this process."""
        return self._output.kernel_copied if self._output is not None else 0

    def feed(self, data) -> None:
        try:
            for event in self._reader.events(data):
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
        end, header, output = self._end, self._header, self._output
        assert end is not None and header is not None and output is not None
        try:
            digest = output.digest()
            if end.size != output.size:
                raise IntegrityError(f"rebuilt {output.size} bytes, sender announced {end.size}")
            if digest != end.digest:
                raise IntegrityError("whole-file hash of the rebuilt file differs from the sender's")
            if self._expected is not None and digest != self._expected:
                raise IntegrityError("whole-file hash differs from the manifest's")
        except RsyncError:
            self._close(keep_partial=False)
            raise
        self._commit()
        return PatchResult(self.target, output.size, digest, header.resume_offset)

    def abort(self, *, keep_partial: bool = True) -> None:
        """Stop here; with `keep_partial` the output so far is made durable for a resume."""
        self._close(keep_partial=keep_partial)

    # ------------------------------------------------------------------ events
    def _apply(self, event) -> None:
        if isinstance(event, LiteralOp):
            self._grow(len(event.data))
            self._output.add_literal(event.data)
        elif isinstance(event, CopyOp):
            self._grow(event.length)
            self._output.add_copy(self._basis_fd, event.offset, event.length)
        elif isinstance(event, DeltaHeader):
            self._open(event)
            return
        else:
            self._end = event
            return
        if self._output.size - self._checkpointed >= self._checkpoint_bytes and \
                self._clock() - self._checkpointed_at >= self._checkpoint_seconds:
            self._checkpoint()

    def _grow(self, length: int) -> None:
        if self._output.size + length > self._limits.max_file_size:
            raise LimitExceeded(f"output above {self._limits.max_file_size} bytes")

    def _open(self, header: DeltaHeader) -> None:
        self._header = header
        hasher = file_hasher(header.hash_kind)
        self._open_basis(header.basis_size)
        ppath = partial.partial_path(self.target)
        if header.resume_offset:
            state = partial.load_state(self.target)
            if (state is None or state.offset != header.resume_offset
                    or state.hash_kind != header.hash_kind
                    or (self._expected is not None and state.expected_digest not in (None, self._expected.hex()))
                    or not ppath.exists() or ppath.stat().st_size < state.offset):
                raise ResumeMismatch(f"sender resumes at {header.resume_offset}, no matching partial output")
            self._out_fd = os.open(ppath, os.O_RDWR | os.O_CLOEXEC)
            os.ftruncate(self._out_fd, state.offset)
            self._output = PatchOutput(self._out_fd, hasher, start=state.offset,
                                       kernel_copy=self._use_kernel_copy())
            self._output.hash_existing()
            self._checkpointed = state.offset
        else:
            partial.discard(self.target)
            self._out_fd = os.open(ppath, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                                   PARTIAL_MODE)
            self._output = PatchOutput(self._out_fd, hasher, kernel_copy=self._use_kernel_copy())
        self._checkpointed_at = self._clock()

    def _use_kernel_copy(self) -> bool:
        if self._kernel_copy is not None:
            return self._kernel_copy
        return self._basis_fd is not None and copy_shares_blocks(self._out_fd)

    def _open_basis(self, basis_size: int) -> None:
        try:
            fd = os.open(self._basis_path, os.O_RDONLY | os.O_CLOEXEC)
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

    # ------------------------------------------------------------------ durability
    def _checkpoint(self) -> None:
        self._output.flush()
        os.fsync(self._out_fd)
        partial.save_state(self.target, partial.PartialState(
            self._output.size, int(self._header.hash_kind),
            self._expected.hex() if self._expected is not None else None))
        self._checkpointed = self._output.size
        self._checkpointed_at = self._clock()

    def _commit(self) -> None:
        fd = self._out_fd
        mode = self._mode
        if mode is None:
            try:
                mode = stat.S_IMODE(os.stat(self.target).st_mode)
            except FileNotFoundError:
                mode = DEFAULT_MODE
        os.fchmod(fd, mode)
        os.fsync(fd)  # the one fsync of a patch that needed no checkpoint
        if self._mtime_ns is not None:
            os.utime(fd, ns=(self._mtime_ns, self._mtime_ns))
        ppath = partial.partial_path(self.target)
        self._release()
        os.replace(ppath, self.target)
        partial.discard(self.target)
        _fsync_dir(self.target.parent)

    def _close(self, *, keep_partial: bool) -> None:
        if self._closed:
            return
        if self._output is not None and keep_partial and self._output.size > self._checkpointed:
            try:
                self._checkpoint()
            except (OSError, RsyncError):
                pass
        self._release()
        if not keep_partial:
            partial.discard(self.target)

    def _release(self) -> None:
        self._closed = True
        if self._out_fd is not None:
            os.close(self._out_fd)
            self._out_fd = None
        if self._basis_fd is not None:
            os.close(self._basis_fd)
            self._basis_fd = None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def apply_delta(basis: bytes, delta: bytes, limits: Limits = DEFAULT_LIMITS, *,
                expected_digest: bytes | None = None) -> bytes:
    """In-memory patch (small files, tests): same checks as `FilePatcher`, no resume.
    `expected_digest`: the hash the result must have (a manifest's), besides the sender's."""
    reader = DeltaReader(limits)
    out = bytearray()
    digest_of = None
    end = None
    for event in reader.events(delta):
        if isinstance(event, DeltaHeader):
            if event.basis_size != len(basis):
                raise BasisMismatch(f"delta made for a {event.basis_size}-byte basis, got {len(basis)}")
            if event.resume_offset:
                raise ResumeMismatch("in-memory patch cannot resume")
            digest_of = block_digest(HashKind(event.hash_kind))  # one-shot, over the whole result
        elif isinstance(event, CopyOp):
            out += basis[event.offset:event.offset + event.length]
        elif isinstance(event, LiteralOp):
            out += event.data
        else:
            end = event
        if len(out) > limits.max_file_size:
            raise LimitExceeded(f"output above {limits.max_file_size} bytes")
    reader.finish()
    assert digest_of is not None and end is not None
    if end.size != len(out) or digest_of(out) != end.digest:
        raise IntegrityError("rebuilt data does not match the sender's size and hash")
    if expected_digest is not None and end.digest != expected_digest:
        raise IntegrityError("whole-file hash differs from the manifest's")
    return bytes(out)
