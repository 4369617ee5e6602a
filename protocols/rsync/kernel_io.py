"""Letting the kernel move a patch's bytes: a range copied between two files without passing
through Python (copy_file_range), and writeback of a written range started early (sync_file_range).

Both are optimisations only: where the OS cannot do them the caller copies through memory, and
without early writeback the final fsync simply writes everything itself. A kernel copy pays only
where the file system shares or offloads the blocks (reflinks, server-side copy); where it copies
pages (ext4, tmpfs) it was measured slower than a read and a write through a reused buffer.
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
# File systems whose copy_file_range shares blocks (btrfs, XFS, bcachefs, OCFS2, ZFS block cloning)
# or copies on the server (NFS 4.2, SMB, Ceph): there the bytes need not be read or written here.
SHARING_FILE_SYSTEMS = frozenset({"btrfs", "xfs", "bcachefs", "ocfs2", "zfs", "nfs", "nfs4",
                                  "cifs", "smb3", "ceph"})
MOUNTINFO = "/proc/self/mountinfo"


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


def copy_shares_blocks(fd: int) -> bool:
    """Whether a kernel copy into the file system of `fd` shares or offloads the blocks, so it is
    worth more than a copy through memory (Linux; False where it cannot tell)."""
    return _file_system_type(os.fstat(fd).st_dev) in SHARING_FILE_SYSTEMS


@functools.lru_cache(maxsize=64)
def _file_system_type(device: int) -> str | None:
    wanted = f"{os.major(device)}:{os.minor(device)}"
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="replace") as mounts:
            for line in mounts:  # "id parent MAJ:MIN root mountpoint options ... - fstype source ..."
                fields = line.split()
                if len(fields) > 2 and fields[2] == wanted and " - " in line:
                    return line.split(" - ", 1)[1].split()[0]
    except OSError:
        pass
    return None


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
