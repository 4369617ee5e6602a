"""The plain "copy this dataset" transfer: one folder sent whole, swapped in atomically.

A stopgap so the whole path is real end to end until the sync protocols take over. The receiving
side's checks and state machine (`check_relative_path`, `CopyReceiver`) are sans-I/O; `send_folder`
and `receive_folder` do the file and channel I/O around them.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import hashlib
import logging
import os
import secrets
import shutil
import stat
import struct
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from protocols.channel.connection import Channel
from protocols.channel.errors import ChannelError, ErrorCode
from protocols.channel.framing import DATA_CHUNK_SIZE, Frame, FrameType

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (bytes done, bytes in total) as file content moves."""

MAX_PATH_BYTES = 4096
_START = struct.Struct(">QQQ")  # directories, files, content bytes
_DIRECTORY = struct.Struct(">I")  # st_mode, then the path
_FILE = struct.Struct(">QI")  # size, st_mode, then the path
_DIGEST_SIZE = hashlib.sha256().digest_size


@dataclass(frozen=True, slots=True)
class Entry:
    """A directory or regular file of the folder, as the sender announces it."""

    path: str  # relative, "/"-separated
    mode: int  # st_mode, type bits included
    size: int = 0


@dataclass(frozen=True, slots=True)
class CopySummary:
    directories: int
    files: int
    bytes: int
    skipped: tuple[str, ...] = ()  # links and special files the sender left out


def _transfer_error(reason: str) -> ChannelError:
    return ChannelError(reason, ErrorCode.TRANSFER)


def check_relative_path(path: str) -> PurePosixPath:
    """The path, if it stays inside the folder; otherwise a ChannelError saying why not."""
    if not path:
        raise _transfer_error("an empty path")
    if "\0" in path:
        raise _transfer_error(f"a path with a NUL byte: {path!r}")
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        raise _transfer_error(f"a path longer than {MAX_PATH_BYTES} bytes: {path[:80]!r}...")
    if path.startswith("/"):
        raise _transfer_error(f"an absolute path: {path!r}")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise _transfer_error(
            f"a path that is not plain and relative (empty, '.' or '..' parts): {path!r}"
        )
    return PurePosixPath(*parts)


def encode_start(directories: int, files: int, total_bytes: int) -> bytes:
    return _START.pack(directories, files, total_bytes)


def encode_entry(entry: Entry) -> tuple[FrameType, bytes]:
    name = entry.path.encode("utf-8")
    if stat.S_ISDIR(entry.mode):
        return FrameType.COPY_DIRECTORY, _DIRECTORY.pack(entry.mode) + name
    return FrameType.COPY_FILE, _FILE.pack(entry.size, entry.mode) + name


# What the receiver must do, one action per frame.


@dataclass(frozen=True, slots=True)
class Begin:
    directories: int
    files: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class MakeDirectory:
    path: PurePosixPath
    permissions: int


@dataclass(frozen=True, slots=True)
class OpenFile:
    path: PurePosixPath
    permissions: int
    size: int


@dataclass(frozen=True, slots=True)
class WriteData:
    data: bytes | bytearray


@dataclass(frozen=True, slots=True)
class CloseFile:
    """The file is complete and its hash checked."""

    path: PurePosixPath


@dataclass(frozen=True, slots=True)
class Commit:
    """Everything arrived and checked: swap the folder in."""


CopyAction = Begin | MakeDirectory | OpenFile | WriteData | CloseFile | Commit


class CopyReceiver:
    """Checks the sender's frames and turns them into file actions; raises ChannelError on the
    first thing out of place. Nothing here touches the disk."""

    def __init__(self) -> None:
        self.total_bytes = 0
        self.bytes_done = 0
        self._announced: Begin | None = None
        self._seen: set[PurePosixPath] = set()
        self._files: set[PurePosixPath] = set()
        self._directories = 0
        self._current: OpenFile | None = None
        self._current_done = 0
        self._hash = hashlib.sha256()
        self._finished = False

    def receive(self, frame: Frame) -> CopyAction:
        if self._finished:
            raise _transfer_error(f"a {frame.kind.name} frame after the end of the transfer")
        kind = frame.kind
        if self._announced is None:
            if kind is not FrameType.COPY_START:
                raise _transfer_error(f"the transfer began with {kind.name} instead of COPY_START")
            if len(frame.payload) != _START.size:
                raise _transfer_error("a malformed COPY_START frame")
            self._announced = Begin(*_START.unpack(frame.payload))
            self.total_bytes = self._announced.total_bytes
            return self._announced
        if kind is FrameType.DATA:
            return self._data(frame.payload)
        if kind is FrameType.COPY_FILE_END:
            return self._file_end(frame.payload)
        if self._current is not None:
            raise _transfer_error(f"{self._current.path} ended without its hash ({kind.name} came)")
        if kind is FrameType.COPY_DIRECTORY:
            return self._directory(frame.payload)
        if kind is FrameType.COPY_FILE:
            return self._file(frame.payload)
        if kind is FrameType.COPY_DONE:
            return self._done()
        raise _transfer_error(f"an unexpected {kind.name} frame in a folder copy")

    def _directory(self, payload: bytes | bytearray) -> MakeDirectory:
        if len(payload) < _DIRECTORY.size:
            raise _transfer_error("a malformed COPY_DIRECTORY frame")
        (mode,) = _DIRECTORY.unpack_from(payload)
        path = self._new_path(payload[_DIRECTORY.size :])
        if not stat.S_ISDIR(mode):
            raise _transfer_error(f"{path} is announced as a directory with a non-directory mode")
        self._directories += 1
        return MakeDirectory(path, _permissions(mode))

    def _file(self, payload: bytes | bytearray) -> OpenFile:
        if len(payload) < _FILE.size:
            raise _transfer_error("a malformed COPY_FILE frame")
        size, mode = _FILE.unpack_from(payload)
        path = self._new_path(payload[_FILE.size :])
        if not stat.S_ISREG(mode):
            # Device files, FIFOs, sockets and links never come into a dataset.
            raise _transfer_error(f"{path} is not a regular file (mode {mode:o}); refused")
        if self.bytes_done + size > self.total_bytes:
            raise _transfer_error(f"{path} is larger than what the transfer announced in total")
        self._files.add(path)
        self._current = OpenFile(path, _permissions(mode), size)
        self._current_done = 0
        self._hash = hashlib.sha256()
        return self._current

    def _data(self, payload: bytes | bytearray) -> WriteData:
        if self._current is None:
            raise _transfer_error("file content outside of any file")
        if self._current_done + len(payload) > self._current.size:
            raise _transfer_error(
                f"{self._current.path}: more content than the {self._current.size} bytes announced"
            )
        self._current_done += len(payload)
        self.bytes_done += len(payload)
        self._hash.update(payload)
        return WriteData(payload)

    def _file_end(self, payload: bytes | bytearray) -> CloseFile:
        current = self._current
        if current is None:
            raise _transfer_error("a file hash outside of any file")
        if self._current_done != current.size:
            raise _transfer_error(
                f"{current.path}: {self._current_done} bytes arrived, {current.size} were announced"
            )
        if len(payload) != _DIGEST_SIZE or payload != self._hash.digest():
            raise _transfer_error(
                f"{current.path}: the content hash does not match (damaged in transit)"
            )
        self._current = None
        return CloseFile(current.path)

    def _done(self) -> Commit:
        announced = self._announced
        assert announced is not None
        got = (self._directories, len(self._files), self.bytes_done)
        if got != (announced.directories, announced.files, announced.total_bytes):
            raise _transfer_error(
                f"the transfer announced {announced.directories} directories, {announced.files} files, "
                f"{announced.total_bytes} bytes and sent {got[0]}, {got[1]}, {got[2]}"
            )
        self._finished = True
        return Commit()

    def _new_path(self, raw: bytes | bytearray) -> PurePosixPath:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _transfer_error(f"a path that is not UTF-8: {bytes(raw[:80])!r}") from None
        path = check_relative_path(text)
        if path in self._seen:
            raise _transfer_error(f"{path} is announced twice")
        for parent in path.parents:
            if parent in self._files:
                raise _transfer_error(f"{path} lies under {parent}, which is a file")
        self._seen.add(path)
        return path


def _permissions(mode: int) -> int:
    # Permission bits only: no set-uid, set-gid or sticky bits from another machine.
    return stat.S_IMODE(mode) & 0o777


# Sending


def scan_folder(folder: Path) -> tuple[list[Entry], list[str]]:
    """The folder's directories and regular files (sorted, parents first) and what was left out."""
    entries: list[Entry] = []
    skipped: list[str] = []
    # An unreadable subfolder must fail the copy, not silently drop out of it (os.walk's default).
    for directory, dirnames, filenames in os.walk(folder, onerror=_raise, followlinks=False):
        dirnames.sort()
        relative_dir = Path(directory).relative_to(folder)
        kept = []
        for name in dirnames + sorted(filenames):
            relative = (relative_dir / name).as_posix()
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                skipped.append(relative)
                continue
            info = os.lstat(os.path.join(directory, name))
            if stat.S_ISDIR(info.st_mode):
                entries.append(Entry(relative, info.st_mode))
                kept.append(name)
            elif stat.S_ISREG(info.st_mode):
                entries.append(Entry(relative, info.st_mode, info.st_size))
            else:
                skipped.append(relative)
        dirnames[:] = [name for name in dirnames if name in kept]
    return entries, skipped


def _raise(error: OSError) -> None:
    raise error


async def send_folder(
    channel: Channel,
    folder: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
    chunk_size: int = DATA_CHUNK_SIZE,
) -> CopySummary:
    """Send the whole folder and wait until the receiver has swapped it in.

    Links and special files are left out and listed in the summary. On failure the channel is
    closed with the reason and the ChannelError raised.
    """
    root = Path(folder)
    try:
        if not root.is_dir():
            raise _transfer_error(f"{root} is not a folder")
        entries, skipped = await asyncio.to_thread(scan_folder, root)
        directories = [entry for entry in entries if stat.S_ISDIR(entry.mode)]
        files = [entry for entry in entries if not stat.S_ISDIR(entry.mode)]
        total = sum(entry.size for entry in files)
        await channel.send(FrameType.COPY_START, encode_start(len(directories), len(files), total))
        for entry in directories:
            await channel.send(*encode_entry(entry))
        done = 0
        for entry in files:
            done = await _send_file(channel, root, entry, done, total, chunk_size, progress)
        await channel.send(FrameType.COPY_DONE)
        frame = await channel.receive()
        if frame.kind is not FrameType.COPY_COMMITTED:
            raise ChannelError(
                f"expected COPY_COMMITTED, got {frame.kind.name}", ErrorCode.PROTOCOL
            )
    except OSError as exc:
        error = _transfer_error(f"cannot read the folder {root}: {exc}")
        await channel.close(error.reason, error.code)
        raise error from exc
    except ChannelError as error:
        await channel.close(error.reason, error.code)
        raise
    return CopySummary(len(directories), len(files), total, tuple(skipped))


async def _send_file(
    channel: Channel,
    root: Path,
    entry: Entry,
    done: int,
    total: int,
    chunk_size: int,
    progress: Progress | None,
) -> int:
    await channel.send(*encode_entry(entry))
    digest = hashlib.sha256()
    remaining = entry.size
    try:
        # Plain blocking reads: a chunk from the page cache takes far less than a frame's trip,
        # and this transfer is a stopgap.
        with open(root / entry.path, "rb") as file:
            while remaining:
                chunk = file.read(min(chunk_size, remaining))
                if not chunk:
                    raise _transfer_error(f"{entry.path} shrank while it was being sent")
                digest.update(chunk)
                await channel.send(FrameType.DATA, chunk)
                remaining -= len(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except OSError as exc:
        raise _transfer_error(f"cannot read {entry.path}: {exc.strerror or exc}") from exc
    await channel.send(FrameType.COPY_FILE_END, digest.digest())
    return done


# Receiving


async def receive_folder(
    channel: Channel,
    target: str | os.PathLike[str],
    *,
    progress: Progress | None = None,
) -> CopySummary:
    """Receive one folder into `target`, replacing what is there only once all of it arrived
    and checked. On any failure `target` is left exactly as it was, the channel is closed with
    the reason, and the ChannelError raised."""
    target = Path(target)
    staging: Path | None = None
    try:
        if target.exists() and not target.is_dir():
            raise _transfer_error(f"{target} exists and is not a folder")
        target.parent.mkdir(parents=True, exist_ok=True)
        # Beside the target, so the final rename stays on one file system.
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.incoming-", dir=target.parent))
        summary = await _receive_into(channel, staging, progress)
        await asyncio.to_thread(_swap_in, staging, target)
        staging = None
        await channel.send(FrameType.COPY_COMMITTED)
        return summary
    except OSError as exc:
        error = _transfer_error(f"cannot write the folder {target}: {exc.strerror or exc}")
        await channel.close(error.reason, error.code)
        raise error from exc
    except ChannelError as error:
        await channel.close(error.reason, error.code)
        raise
    finally:
        if staging is not None:
            await asyncio.to_thread(shutil.rmtree, staging, True)


async def _receive_into(channel: Channel, staging: Path, progress: Progress | None) -> CopySummary:
    machine = CopyReceiver()
    directory_modes: list[tuple[Path, int]] = []
    file = None
    current: OpenFile | None = None
    begin = Begin(0, 0, 0)
    try:
        while True:
            action = machine.receive(await channel.receive())
            if isinstance(action, WriteData):
                assert file is not None
                file.write(action.data)
                if progress is not None:
                    progress(machine.bytes_done, machine.total_bytes)
            elif isinstance(action, OpenFile):
                path = staging.joinpath(action.path)
                path.parent.mkdir(parents=True, exist_ok=True)
                # O_EXCL | O_NOFOLLOW: never through anything that was already there.
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                file = open(os.open(path, flags, 0o600), "wb")
                current = action
            elif isinstance(action, CloseFile):
                assert file is not None and current is not None
                file.flush()
                await asyncio.to_thread(os.fsync, file.fileno())
                file.close()
                file = None
                os.chmod(staging.joinpath(action.path), current.permissions)
            elif isinstance(action, MakeDirectory):
                path = staging.joinpath(action.path)
                path.mkdir(parents=True, exist_ok=True)
                directory_modes.append((path, action.permissions))
            elif isinstance(action, Begin):
                begin = action
                if progress is not None:
                    progress(0, action.total_bytes)
            elif isinstance(action, Commit):
                break
    finally:
        if file is not None:
            file.close()
    # Modes last, deepest first: a read-only directory would have refused its own contents.
    for path, permissions in reversed(directory_modes):
        os.chmod(path, permissions)
    return CopySummary(begin.directories, begin.files, begin.total_bytes)


def _swap_in(staging: Path, target: Path) -> None:
    """Put the staged folder at `target`; a reader sees the old folder or the new, never a mix."""
    _fsync_directory(staging)
    if not os.path.lexists(target):
        os.rename(staging, target)
    elif _exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # now holds the old folder
    else:
        # No atomic exchange here: the old folder steps aside for an instant, under a name a
        # crash would leave for a person to find.
        aside = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
        os.rename(target, aside)
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(aside, target)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    _fsync_directory(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _fsync_directory(directory: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
