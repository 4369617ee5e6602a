"""Manifest of a folder: per file, folder and symlink its path, kind, size, mtime, mode and hash.

Hashes are cached in a JSON file (keyed by path, size, mtime_ns and inode) so unchanged files are
not read again on the next scan. What a sync will not carry is listed with the reason.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import posixpath
import stat
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Iterator, Mapping

from .hashes import HashKind, file_hasher
from .ignore import IgnoreRules

READ_CHUNK = 1 << 20


class EntryKind(Enum):
    FILE = "f"
    DIR = "d"
    LINK = "l"


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, '/'-separated (undecodable bytes kept as surrogate escapes)
    size: int
    mtime_ns: int
    mode: int  # permission bits only (0 for a symlink: Linux has none to keep)
    digest: bytes  # whole-file hash; empty for a folder or a link
    kind: EntryKind = EntryKind.FILE
    target: str = ""  # a link's target, as stored

    def same_content(self, other: "FileEntry") -> bool:
        """Same kind and same bytes (or link target): at most the metadata differs."""
        return (self.kind, self.digest, self.target) == (other.kind, other.digest, other.target)

    def same(self, other: "FileEntry") -> bool:
        """Nothing to sync between the two: content, mode and mtime are equal."""
        return self.same_content(other) and (self.mode, self.mtime_ns) == (other.mode, other.mtime_ns)

    def row(self) -> list:
        if self.kind is EntryKind.FILE:
            return [self.path, self.size, self.mtime_ns, self.mode, self.digest.hex()]
        return [self.path, 0, self.mtime_ns, self.mode, "", self.kind.value, self.target]

    @classmethod
    def from_row(cls, row) -> "FileEntry":
        # exact type checks (no bool for int): a manifest holds thousands of rows
        if type(row) is not list:
            raise ValueError("malformed manifest entry")
        if len(row) == 5:
            path, size, mtime_ns, mode, digest = row
            kind, target = EntryKind.FILE, ""
        elif len(row) == 7:
            path, size, mtime_ns, mode, digest, kind, target = row
            kind = EntryKind(kind)
        else:
            raise ValueError("malformed manifest entry")
        if type(path) is not str or type(target) is not str or type(digest) is not str \
                or type(size) is not int or type(mtime_ns) is not int or type(mode) is not int:
            raise ValueError("malformed manifest entry")
        return cls(path, size, mtime_ns, mode & 0o7777, bytes.fromhex(digest), kind, target)


@dataclass(frozen=True)
class Skipped:
    """Something a sync did not carry, and why (said in `done:`, `--json` and the log)."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} ({self.reason})"


@dataclass(frozen=True)
class Manifest:
    """Entries by relative path; `skipped` names what a sync will not carry (devices, errors,
    links leading out of the dataset)."""

    entries: Mapping[str, FileEntry] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()

    def get(self, path: str) -> FileEntry | None:
        return self.entries.get(path)

    @functools.cached_property
    def digest(self) -> str:
        """Names this state by every path, kind, content, mode and mtime (`state_digest`)."""
        h = hashlib.sha256()
        entries = self.entries
        h.update("".join(
            f"{e.path}\0{e.kind.value}\0{e.size}\0{e.mtime_ns}\0{e.mode}\0{e.digest.hex()}\0{e.target}\n"
            for e in (entries[path] for path in sorted(entries))).encode("utf-8", "surrogateescape"))
        return h.hexdigest()

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_json(self) -> str:
        return json.dumps({"files": [e.row() for e in self.entries.values()],
                           "skipped": [[s.path, s.reason] for s in self.skipped]})

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        """Parse a peer's manifest; paths are checked later, where they are used (`paths`)."""
        raw = json.loads(text)
        entries = {}
        for row in raw["files"]:
            e = FileEntry.from_row(row)
            entries[e.path] = e
        return cls(entries, skipped_from_rows(raw.get("skipped", ())))


def skipped_from_rows(rows) -> tuple[Skipped, ...]:
    """Skipped entries from their JSON rows `[path, reason]` (a peer's: checked, cut short)."""
    out = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and all(isinstance(v, str) for v in row)):
            raise ValueError("malformed skipped entry")
        out.append(Skipped(row[0][:4096], row[1][:512]))
    return tuple(out)


def state_digest(manifest: Manifest | None) -> str:
    """Names a synced state by every path, kind, content, mode and mtime ("" for none)."""
    return "" if manifest is None else manifest.digest


class HashCache:
    """Whole-file digests remembered by (path, size, mtime_ns, inode), stored as JSON."""

    def __init__(self, path: str | os.PathLike | None = None, *,
                 rows: dict[str, list] | None = None) -> None:
        """`rows`: what the file at `path` holds, already parsed (it is then not read)."""
        self.path = Path(path) if path is not None else None
        self._data: dict[str, list] = {}
        self.hits = self.misses = 0
        self._dirty = False
        if rows is not None:
            self._data = rows
        elif self.path is not None:
            try:
                self._data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._data = {}

    @property
    def rows(self) -> dict[str, list]:
        """Path -> [size, mtime_ns, inode, hex digest], as stored; not to be changed."""
        return self._data

    def lookup(self, rel: str, st: os.stat_result) -> bytes | None:
        row = self._data.get(rel)
        if row and row[0] == st.st_size and row[1] == st.st_mtime_ns and row[2] == st.st_ino:
            self.hits += 1
            return bytes.fromhex(row[3])
        self.misses += 1
        return None

    def store(self, rel: str, st: os.stat_result, digest: bytes) -> None:
        self._data[rel] = [st.st_size, st.st_mtime_ns, st.st_ino, digest.hex()]
        self._dirty = True

    def retain(self, paths) -> None:
        if len(self._data) != len(paths) or any(k not in paths for k in self._data):
            self._data = {k: v for k, v in self._data.items() if k in paths}
            self._dirty = True

    def save(self) -> None:
        if self.path is None or not self._dirty:  # a no-op sync writes nothing
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self._data))
        os.replace(tmp, self.path)
        self._dirty = False


def file_digest(path: str | os.PathLike, kind: HashKind = HashKind.XXH3_128, *,
                room: bytearray | None = None) -> bytes:
    """`room`: a buffer to read into, reused across the files of a scan (no allocation each)."""
    hasher = file_hasher(kind)
    room = room if room is not None else bytearray(READ_CHUNK)
    view = memoryview(room)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        while n := os.readv(fd, (room,)):
            hasher.update(view[:n])
    finally:
        os.close(fd)
    return hasher.digest()


def link_escapes(rel: str, target: str) -> bool:
    """True when the link at `rel` points outside the dataset root (judged on the text, the
    way the other side will see it: an absolute target, or more '..' than there are folders)."""
    if not target or target.startswith("/") or "\0" in target:
        return True
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
    return resolved == ".." or resolved.startswith("../")


def scan(root: str | os.PathLike, cache: HashCache | None = None,
         kind: HashKind = HashKind.XXH3_128, *, ignore: IgnoreRules | None = None,
         allow_external_links: bool = False, known: Mapping[str, FileEntry] | None = None) -> Manifest:
    """Walk `root` (symlinks are listed as links, never followed) and describe every entry that
    is not ignored; devices, pipes, unreadable files and links leading out are `skipped`.

    `known` (an earlier manifest of this root, such as the last synced state): an entry found
    unchanged is that same object, so comparing the scan with it later costs an identity check."""
    known = known or {}
    root = os.fspath(root)
    cache = cache or HashCache()
    ignore = ignore if ignore is not None else IgnoreRules.load(root)
    entries: dict[str, FileEntry] = {}
    skipped: list[Skipped] = []
    pending = [("", root)]
    room = bytearray(READ_CHUNK)
    while pending:
        prefix, folder = pending.pop()
        try:
            listing = list(os.scandir(folder))
        except OSError as exc:
            skipped.append(Skipped(prefix.rstrip("/") or ".", f"unreadable folder: {exc.strerror}"))
            continue
        for item in listing:
            rel = prefix + item.name
            try:
                st = item.stat(follow_symlinks=False)
            except OSError as exc:
                skipped.append(Skipped(rel, f"cannot stat: {exc.strerror}"))
                continue
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                if ignore.ignored(rel, is_dir=True):
                    continue
                old = known.get(rel)
                entries[rel] = old if old is not None and old.kind is EntryKind.DIR and \
                    old.mtime_ns == st.st_mtime_ns and old.mode == stat.S_IMODE(mode) else \
                    FileEntry(rel, 0, st.st_mtime_ns, stat.S_IMODE(mode), b"", EntryKind.DIR)
                pending.append((rel + "/", item.path))
                continue
            if ignore.ignored(rel, is_dir=False):
                continue
            if stat.S_ISREG(mode):
                digest = cache.lookup(rel, st)
                if digest is None:
                    try:
                        digest = file_digest(item.path, kind, room=room)
                    except OSError as exc:
                        skipped.append(Skipped(rel, f"unreadable: {exc.strerror}"))
                        continue
                    cache.store(rel, st, digest)
                old = known.get(rel)
                entries[rel] = old if old is not None and old.digest == digest and \
                    old.size == st.st_size and old.mtime_ns == st.st_mtime_ns and \
                    old.mode == stat.S_IMODE(mode) and old.kind is EntryKind.FILE else \
                    FileEntry(rel, st.st_size, st.st_mtime_ns, stat.S_IMODE(mode), digest)
            elif stat.S_ISLNK(mode):
                target = os.readlink(item.path)
                if link_escapes(rel, target) and not allow_external_links:
                    skipped.append(Skipped(rel, f"symlink to {target!r} leads out of the dataset"))
                    continue
                entries[rel] = FileEntry(rel, 0, st.st_mtime_ns, 0, b"", EntryKind.LINK, target)
            else:
                skipped.append(Skipped(rel, "not a regular file, folder or symlink (device, pipe "
                                            "or socket)"))
    cache.retain({p for p, e in entries.items() if e.kind is EntryKind.FILE})
    cache.save()
    return Manifest(dict(sorted(entries.items())), tuple(sorted(skipped, key=lambda s: s.path)))
