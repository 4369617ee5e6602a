"""Letting the kernel move a patch's bytes: a range copied between two files without passing
through Python (copy_file_range), and writeback of a written range started early (sync_file_range).

Both are optimisations only: where the OS cannot do them the caller copies through memory, and
without early writeback the final fsync simply writes everything itself.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os

# What copy_file_range answers when it cannot copy between these two files (another file system,
# a file system or kernel without it, a sandbox that forbids the call): copy through memory then.
_CANNOT_COPY = frozenset({errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL,
                          errno.EPERM, errno.ETXTBSY})
_SYNC_FILE_RANGE_WRITE = 2  # start writeback of the range's dirty pages, do not wait for it


def copy_file_range(src_fd: int, src_offset: int, dst_fd: int, dst_offset: int, length: int) -> int | None:
    """One in-kernel copy of up to `length` bytes at explicit offsets (neither file's position
    moves). Returns how many bytes it copied (0: the source ends at `src_offset`), or None when
    the OS cannot copy between these two files."""
    call = getattr(os, "copy_file_range", None)
    if call is None:
        return None
    try:
        return call(src_fd, dst_fd, length, src_offset, dst_offset)
    except OSError as exc:
        if exc.errno in _CANNOT_COPY:
            return None
        raise


@functools.cache
def _sync_file_range():
    # The os module has no binding for it; libc has it on Linux.
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing [offset, offset + length) of `fd` to disk now, without
    waiting: the disk works while the patch goes on, so the one fsync at the end finds little left.
    Does nothing where the OS has no such call."""
    fn = _sync_file_range()
    if fn is not None and length > 0:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # a refusal only means no head start
