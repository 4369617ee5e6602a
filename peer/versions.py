"""Versions: the files a sync replaced or deleted, kept in the dataset's `.sipsync-versions/`
folder under their own path and a time tag (`report~20261201-221503.pdf`), as Syncthing keeps them;
listed, restored, and thinned by a trash-can or staggered policy."""

from __future__ import annotations

import asyncio
import datetime
import errno
import itertools
import logging
import os
import re
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from protocols.rsync.errors import UnsafePath
from protocols.rsync.paths import check_relative

log = logging.getLogger(__name__)

VERSIONS_DIR = ".sipsync-versions"
TAG_FORMAT = "%Y%m%d-%H%M%S"  # local time, to the second: what a person reads in a file manager
DAY = 86400
CLEAN_EVERY = 3600.0  # seconds between the daemon's cleanings (one at start too)

# Syncthing's staggered thinning: (up to this age, keep one version per this many seconds);
# past the last row, one a week until the policy's maximum age.
STAGGERED_STEPS = ((3600, 30), (DAY, 3600), (30 * DAY, DAY))
WEEK = 7 * DAY

_TAGGED = re.compile(r"^(?P<stem>.*)~(?P<tag>\d{8}-\d{6})(?:-(?P<seq>\d+))?(?P<ext>\.[^.]*)?$", re.S)


class VersionKind(str, Enum):
    TRASHCAN = "trashcan"  # every version, each for the policy's days
    STAGGERED = "staggered"  # fewer as they age, none past the policy's days


DEFAULT_DAYS = {VersionKind.TRASHCAN: 30, VersionKind.STAGGERED: 365}


class VersionError(Exception):
    """A version that cannot be found or put back, with the reason a person reads."""


@dataclass(frozen=True)
class VersionPolicy:
    """How long versions stay: `days` (default 30 for a trash can, 365 for staggered)."""

    kind: VersionKind = VersionKind.TRASHCAN
    days: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", VersionKind(self.kind))
        if self.days is not None and self.days <= 0:
            raise ValueError(f"versions are kept a positive number of days, not {self.days}")

    @property
    def max_age(self) -> float:
        """Seconds after which a version goes, whatever the policy."""
        return (self.days if self.days is not None else DEFAULT_DAYS[self.kind]) * DAY


@dataclass(frozen=True)
class Version:
    relative: str  # the file's path in the dataset, '/'-separated
    path: Path  # where the version is kept
    kept_at: float  # when it was kept (seconds since the epoch, to the second)
    seq: int  # orders versions kept within the same second
    size: int
    mtime: float  # the file's own modification time


class VersionStore:
    """The version folder of one dataset. Paths given to it are relative to `dataset_root`;
    `clock` is what `now` defaults to (and when a restore keeps the file it replaces)."""

    def __init__(self, dataset_root: Path, policy: VersionPolicy | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = Path(dataset_root)
        self.policy = policy or VersionPolicy()
        self.folder = self.root / VERSIONS_DIR
        self._clock = clock
        # Folders this store found to be real folders (not links), so a sync that replaces a
        # thousand files in one folder checks that folder once: the same rule as the receiving
        # side's `InsideResolver`, whose checks also hold for one session.
        self._real_folders: set[str] = set()

    # ------------------------------------------------------------------ keep
    def keep(self, relative: str, now: float | None = None) -> Path | None:
        """Preserve the file now at `relative` (a hard link, or a copy where linking fails) in
        the dataset's version folder `.sipsync-versions/`, before a sync replaces or deletes
        it. Returns where it went, or None when there was no regular file there."""
        source = self._live_path(relative)
        try:
            st = os.lstat(source)
        except FileNotFoundError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        kept_at = self._clock() if now is None else now
        parent = self._version_parent(check_relative(relative).parts[:-1], create=True)
        name = source.name
        for seq in range(1, 10_000):
            dest = parent / _tagged(name, kept_at, seq)
            try:
                os.link(source, dest, follow_symlinks=False)
                return dest
            except FileExistsError:
                continue  # another version of the same second: the next sequence number
            except OSError as exc:
                if exc.errno not in _NO_LINK:
                    raise
            if _copy_beside(source, dest):
                return dest
        raise VersionError(f"too many versions of {relative!r} kept within one second")

    # ------------------------------------------------------------------ list
    def list(self, relative: str | None = None) -> list[Version]:
        """Versions, newest first; of one file when `relative` is given."""
        if relative is not None:
            self._live_path(relative)
            parts = check_relative(relative).parts
            try:
                folder = self._version_parent(parts[:-1], create=False)
            except FileNotFoundError:
                return []
            found = [v for v in self._in_folder(folder, parts[:-1]) if v.relative == relative]
        else:
            found = list(self._walk())
        return sorted(found, key=lambda v: (v.kept_at, v.seq), reverse=True)

    # ------------------------------------------------------------------ restore
    def find(self, relative: str, at: float | None = None) -> Version:
        """The version `restore` would take (VersionError when there is none)."""
        versions = self.list(relative)
        chosen = next((v for v in versions if at is None or v.kept_at <= at), None)
        if chosen is None:
            when = "" if at is None else f" kept at or before {_stamp(at)}"
            oldest = f" (the oldest was kept {_stamp(versions[-1].kept_at)})" if versions else ""
            raise VersionError(f"no version of {relative!r}{when}{oldest}")
        return chosen

    def restore(self, relative: str, at: float | None = None) -> Path:
        """Put back the version kept at or before `at` (the newest when None), atomically, with
        its mode and mtime; the file it replaces is itself kept as a version first, so a restore
        loses nothing. Returns the restored file's path."""
        chosen = self.find(relative, at)
        target = self._live_path(relative, make_parents=True)
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISREG(st.st_mode):
                raise VersionError(f"{relative!r} is now a folder or a link: not replacing it")
            self.keep(relative)
        _install_copy(chosen.path, target)
        return target

    # ------------------------------------------------------------------ clean
    def clean(self, now: float | None = None) -> int:
        """Remove what the policy no longer keeps; returns how many versions went."""
        now = self._clock() if now is None else now
        by_file: dict[str, list[Version]] = {}
        for version in self._walk():
            by_file.setdefault(version.relative, []).append(version)
        removed = 0
        for versions in by_file.values():
            versions.sort(key=lambda v: (v.kept_at, v.seq))  # oldest first
            for version in self._expired(versions, now):
                try:
                    version.path.unlink()
                    removed += 1
                except FileNotFoundError:
                    pass
        self._remove_empty_folders()
        return removed

    def _expired(self, versions: list[Version], now: float) -> Iterable[Version]:
        max_age = self.policy.max_age
        if self.policy.kind is VersionKind.TRASHCAN:
            return [v for v in versions if now - v.kept_at > max_age]
        gone, kept_age = [], None
        for version in versions:  # keep the oldest of each step, from the oldest on
            age = now - version.kept_at
            if age > max_age:
                gone.append(version)
            elif kept_age is not None and kept_age - age < _step_for(age):
                gone.append(version)
            else:
                kept_age = age
        return gone

    # ------------------------------------------------------------------ paths
    def _live_path(self, relative: str, *, make_parents: bool = False) -> Path:
        """`relative` in the dataset: checked, outside the version folder, no symlinked parent;
        its missing parents made when `make_parents`."""
        parts = check_relative(relative).parts
        if parts[0] == VERSIONS_DIR:
            raise UnsafePath(f"{relative!r} is inside the version folder")
        self._real_folder(parts[:-1], create=make_parents)
        return self.root.joinpath(*parts)

    def _version_parent(self, parts: tuple[str, ...], *, create: bool) -> Path:
        """The folder under `.sipsync-versions/` for files in `parts`; FileNotFoundError when
        it is missing and not to be made."""
        folder = self._real_folder((VERSIONS_DIR, *parts), create=create)
        if folder is None:
            raise FileNotFoundError(self.folder.joinpath(*parts))
        return folder

    def _real_folder(self, parts: tuple[str, ...], *, create: bool) -> Path | None:
        """The folder `parts` below the root, each level a real folder: a symlink could lead out
        of the dataset. A missing level is made when `create`; otherwise the walk stops there and
        gives None (what lies below does not exist, so nothing below can be unsafe)."""
        levels = list(itertools.accumulate(parts, os.path.join, initial=str(self.root)))[1:]
        if create and levels and not os.path.isdir(levels[-1]):
            self._real_folders.difference_update(levels)  # found earlier, maybe gone since
        for current in levels:
            if current in self._real_folders:
                continue
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(current, 0o700 if current == str(self.folder) else 0o755)
                self._real_folders.add(current)
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePath(f"{current} is not a folder")
            self._real_folders.add(current)
        return Path(levels[-1]) if levels else self.root

    def _walk(self) -> Iterable[Version]:
        if not self.folder.is_dir() or self.folder.is_symlink():
            return
        for dirpath, dirnames, _ in os.walk(self.folder):  # never follows symlinks
            rel_dir = Path(dirpath).relative_to(self.folder).parts
            yield from self._in_folder(Path(dirpath), rel_dir)

    def _in_folder(self, folder: Path, rel_dir: tuple[str, ...]) -> Iterable[Version]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return
        for entry in entries:
            match = _TAGGED.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            try:
                kept_at = time.mktime(time.strptime(match["tag"], TAG_FORMAT))
                st = entry.stat(follow_symlinks=False)
            except (ValueError, OverflowError, FileNotFoundError):
                continue
            name = match["stem"] + (match["ext"] or "")
            yield Version("/".join((*rel_dir, name)), Path(entry.path), kept_at,
                          int(match["seq"] or 1), st.st_size, st.st_mtime)

    def _remove_empty_folders(self) -> None:
        self._real_folders.clear()  # some of them go now
        if not self.folder.is_dir() or self.folder.is_symlink():
            return
        for dirpath, _, _ in sorted(os.walk(self.folder), key=lambda w: -len(w[0])):
            if dirpath != str(self.folder):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass  # not empty


# Why os.link failed when a copy can still do: no hard links here, or too many of them.
_NO_LINK = frozenset({errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP,
                      errno.EACCES, errno.ENOSYS})


def _tagged(name: str, kept_at: float, seq: int) -> str:
    """`name~YYYYMMDD-HHMMSS.ext` (a second version of the same second: `...-HHMMSS-2.ext`)."""
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    tag = time.strftime(TAG_FORMAT, time.localtime(kept_at)) + (f"-{seq}" if seq > 1 else "")
    return f"{stem}~{tag}{ext}"


def _step_for(age: float) -> float:
    for until, step in STAGGERED_STEPS:
        if age < until:
            return step
    return WEEK


def _stamp(when: float) -> str:
    return datetime.datetime.fromtimestamp(when).isoformat(sep=" ", timespec="seconds")


def _copy_beside(source: Path, dest: Path) -> bool:
    """Copy `source` (data, mode, times) to `dest` through a temporary file: a version is whole or
    absent. False when `dest` appeared meanwhile."""
    fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    os.close(fd)
    try:
        shutil.copy2(source, temp, follow_symlinks=False)
        try:
            os.link(temp, dest)  # never over an existing version
        except FileExistsError:
            return False
        except OSError:
            if dest.exists():
                return False
            os.replace(temp, dest)
            return True
        return True
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass


def _install_copy(version: Path, target: Path) -> None:
    """A copy of `version` replaces `target` atomically (temporary file beside it, fsync, rename):
    a copy, not a link, so later edits of the file never change the version."""
    with open(os.open(version, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as source:
        st = os.fstat(source.fileno())
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".sipsync-restore-")
        try:
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
                out.flush()
                os.fchmod(out.fileno(), stat.S_IMODE(st.st_mode))
                os.fsync(out.fileno())
            os.utime(temp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.replace(temp, target)
        except BaseException:
            try:
                os.unlink(temp)
            except FileNotFoundError:
                pass
            raise
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


async def clean_forever(stores: Callable[[], Iterable[VersionStore]],
                        every: float = CLEAN_EVERY) -> None:
    """The daemon's cleaning: at once, then every `every` seconds, each store by its policy.
    A store that cannot be cleaned is logged and tried again next time."""
    while True:
        for store in stores():
            try:
                removed = await asyncio.to_thread(store.clean)
            except Exception as exc:  # noqa: BLE001 - the daemon goes on; the next round retries
                log.warning("versions in %s not cleaned: %s", store.folder, exc)
            else:
                if removed:
                    log.info("versions in %s: %d removed by the %s policy", store.folder, removed,
                             store.policy.kind.value)
        await asyncio.sleep(every)
