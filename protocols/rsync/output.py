"""The file a patch writes: literals and short copies gathered into big writes, long copies read
into the same buffer or made by the kernel straight from the basis, and a running whole-file hash.

Adjacent COPY ranges are merged before they are carried out, whoever encoded the delta. A range the
kernel copied never passes through Python, so it is hashed by reading the basis range after the
copy (a basis changed meanwhile then fails the hash: it cannot pass unnoticed), in pieces small
enough to stay in the CPU cache between the read and the hash. The basis is read, not mapped: a
file truncated under a mapping would kill the process with SIGBUS.
"""

from __future__ import annotations

import os

from .errors import BasisMismatch, IntegrityError
from .hashes import Hasher
from .kernel_io import copy_file_range, start_writeback

WRITE_BUFFER = 1 << 20  # bytes gathered per write() of literals and short copies
DIRECT_WRITE = WRITE_BUFFER // 2  # a literal at least this long is written as it is, not gathered
KERNEL_COPY_MIN = 64 << 10  # shorter copies are cheaper read into the write buffer
KERNEL_COPY_PIECE = 8 << 20  # bytes per copy_file_range call (and per read-back pass)
READ_PIECE = 256 << 10  # read-back and buffered-copy piece: fits the CPU cache
WRITEBACK_EVERY = 8 << 20  # start disk writeback after this many new bytes


class PatchOutput:
    """Writes the new file into `fd` (open for reading and writing) from `start` on.

    `size` counts every byte added, written or still pending; `flush()` puts them all in the file.
    With `kernel_copy=True` long copies are made by the kernel until the OS refuses.
    """

    def __init__(self, fd: int, hasher: Hasher, *, start: int = 0, kernel_copy: bool = False) -> None:
        self._fd = fd
        self._hasher = hasher
        self._buf = bytearray(WRITE_BUFFER)
        self._view = memoryview(self._buf)
        self._back: memoryview | None = None  # read-back piece, made at the first kernel copy
        self._fill = 0  # bytes gathered in the buffer, not yet written
        self._file_pos = start  # bytes in the file
        self._copy_offset = 0  # the pending (not yet carried out) basis range
        self._copy_length = 0
        self._copy_fd = -1
        self._kernel_copy = kernel_copy
        self._writeback_from = start
        self.kernel_copied = 0  # bytes the kernel copied (for tests and figures)

    @property
    def size(self) -> int:
        return self._file_pos + self._fill + self._copy_length

    def hash_existing(self) -> None:
        """Hash the `start` bytes already in the file (a resumed partial output)."""
        self._hash_range(self._fd, 0, self._file_pos)

    # ------------------------------------------------------------------ adding
    def add_literal(self, data) -> None:
        self._run_copy()
        n = len(data)
        if n >= DIRECT_WRITE:
            self._write_buffer()
            self._hasher.update(data)
            self._pwrite(memoryview(data))
            return
        if self._fill + n > WRITE_BUFFER:
            self._write_buffer()
        self._buf[self._fill:self._fill + n] = data
        self._fill += n

    def add_copy(self, basis_fd: int, offset: int, length: int) -> None:
        """Copy basis bytes [offset, offset + length): merged with the pending copy if it goes on
        where that one ends (the reader checked the range against the basis size)."""
        if self._copy_length and basis_fd == self._copy_fd and \
                self._copy_offset + self._copy_length == offset:
            self._copy_length += length
            return
        self._run_copy()
        self._copy_fd, self._copy_offset, self._copy_length = basis_fd, offset, length

    def flush(self) -> None:
        """Everything added is in the file (not yet on disk: the caller fsyncs)."""
        self._run_copy()
        self._write_buffer()

    def digest(self) -> bytes:
        self.flush()
        return self._hasher.digest()

    # ------------------------------------------------------------------ copies
    def _run_copy(self) -> None:
        length = self._copy_length
        if not length:
            return
        fd, offset = self._copy_fd, self._copy_offset
        self._copy_length = 0
        if length < KERNEL_COPY_MIN:
            self._copy_into_buffer(fd, offset, length)
            return
        end = offset + length
        if self._kernel_copy:
            self._write_buffer()  # the kernel writes at the file's end: what is gathered goes first
        while offset < end and self._kernel_copy:
            want = min(KERNEL_COPY_PIECE, end - offset)
            got = copy_file_range(fd, offset, self._fd, self._file_pos, want)
            if got is None:
                self._kernel_copy = False  # and for the rest of this file: it will not change
                break
            if got == 0:
                break  # the basis ends early, or this file system copies nothing: memory decides
            self._hash_range(fd, offset, got)
            self._file_pos += got
            self.kernel_copied += got
            offset += got
            self._maybe_writeback()
        while offset < end:  # the buffer filled to the brim each time: every write is 1 MiB
            if self._fill == WRITE_BUFFER:
                self._write_buffer()
            step = min(WRITE_BUFFER - self._fill, end - offset)
            self._copy_into_buffer(fd, offset, step)
            offset += step

    def _copy_into_buffer(self, fd: int, offset: int, length: int) -> None:
        if self._fill + length > WRITE_BUFFER:
            self._write_buffer()
        end = offset + length
        while offset < end:
            piece = self._view[self._fill:self._fill + min(READ_PIECE, end - offset)]
            got = os.preadv(fd, [piece], offset)
            if not got:
                raise BasisMismatch("the basis shrank while being patched")
            self._fill += got
            offset += got

    def _hash_range(self, fd: int, pos: int, length: int) -> None:
        """Hash what `fd` holds at [pos, pos + length)."""
        if self._back is None:
            self._back = memoryview(bytearray(READ_PIECE))
        end = pos + length
        while pos < end:
            piece = self._back[:end - pos]
            got = os.preadv(fd, [piece], pos)
            if not got:
                raise (BasisMismatch("the basis shrank while being patched") if fd != self._fd
                       else IntegrityError("the partial output is shorter than its state says"))
            self._hasher.update(piece[:got])
            pos += got

    # ------------------------------------------------------------------ writes
    def _write_buffer(self) -> None:
        if self._fill:
            # hashed here, once per write, not per literal and copy put in: a call for each of
            # thousands of short records cost more than hashing the megabyte
            self._hasher.update(self._view[:self._fill])
            self._pwrite(self._view[:self._fill])
            self._fill = 0

    def _pwrite(self, view: memoryview) -> None:
        while view:  # pwrite may take less than asked
            done = os.pwrite(self._fd, view, self._file_pos)
            self._file_pos += done
            view = view[done:]
        self._maybe_writeback()

    def _maybe_writeback(self) -> None:
        if self._file_pos - self._writeback_from >= WRITEBACK_EVERY:
            start_writeback(self._fd, self._writeback_from, self._file_pos - self._writeback_from)
            self._writeback_from = self._file_pos
