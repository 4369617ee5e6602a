"""Manifest of a folder: per regular file its path, size, mtime, mode and whole-file hash.

Hashes are cached in a JSON file (keyed by path, size, mtime_ns and inode) so unchanged files are
not read again on the next scan.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Mapping

from .hashes import HashKind, file_hasher
from .partial import PREFIX as PARTIAL_PREFIX

READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative, '/'-separated
    size: int
    mtime_ns: int
    mode: int  # permission bits only
    digest: bytes


@dataclass(frozen=True)
class Manifest:
    """Files by relative path; `skipped` names what a sync will not carry (links, devices, errors)."""

    entries: Mapping[str, FileEntry] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    def get(self, path: str) -> FileEntry | None:
        return self.entries.get(path)

    def __iter__(self) -> Iterator[str]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def to_json(self) -> str:
        return json.dumps({"files": [[e.path, e.size, e.mtime_ns, e.mode, e.digest.hex()]
                                     for e in self.entries.values()],
                           "skipped": list(self.skipped)})

    @classmethod
    def from_json(cls, text: str) -> "Manifest":
        """Parse a peer's manifest; paths are checked later, where they are used (`paths`)."""
        raw = json.loads(text)
        entries = {}
        for path, size, mtime_ns, mode, digest in raw["files"]:
            if not (isinstance(path, str) and all(isinstance(v, int) for v in (size, mtime_ns, mode))):
                raise ValueError("malformed manifest entry")
            entries[path] = FileEntry(path, size, mtime_ns, mode & 0o7777, bytes.fromhex(digest))
        return cls(entries, tuple(raw.get("skipped", ())))


class HashCache:
    """Whole-file digests remembered by (path, size, mtime_ns, inode), stored as JSON."""

    def __init__(self, path: str | os.PathLike | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._data: dict[str, list] = {}
        self.hits = self.misses = 0
        if self.path is not None:
            try:
                self._data = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._data = {}

    def lookup(self, rel: str, st: os.stat_result) -> bytes | None:
        row = self._data.get(rel)
        if row and row[:3] == [st.st_size, st.st_mtime_ns, st.st_ino]:
            self.hits += 1
            return bytes.fromhex(row[3])
        self.misses += 1
        return None

    def store(self, rel: str, st: os.stat_result, digest: bytes) -> None:
        self._data[rel] = [st.st_size, st.st_mtime_ns, st.st_ino, digest.hex()]

    def retain(self, paths) -> None:
        keep = set(paths)
        self._data = {k: v for k, v in self._data.items() if k in keep}

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(self._data))
        os.replace(tmp, self.path)


def file_digest(path: str | os.PathLike, kind: HashKind = HashKind.XXH3_128) -> bytes:
    hasher = file_hasher(kind)
    with open(path, "rb") as f:
        while chunk := f.read(READ_CHUNK):
            hasher.update(chunk)
    return hasher.digest()


def scan(root: str | os.PathLike, cache: HashCache | None = None,
         kind: HashKind = HashKind.XXH3_128) -> Manifest:
    """Walk `root` (symlinks not followed) and describe every regular file."""
    root = Path(root)
    cache = cache or HashCache()
    entries: dict[str, FileEntry] = {}
    skipped: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        base = Path(dirpath)
        for name in list(dirnames):
            if (base / name).is_symlink():
                skipped.append((base / name).relative_to(root).as_posix())
                dirnames.remove(name)
        for name in filenames:
            if name.startswith(PARTIAL_PREFIX):
                continue
            full = base / name
            rel = full.relative_to(root).as_posix()
            try:
                st = os.lstat(full)
                if not stat.S_ISREG(st.st_mode):
                    skipped.append(rel)
                    continue
                digest = cache.lookup(rel, st)
                if digest is None:
                    digest = file_digest(full, kind)
                    cache.store(rel, st, digest)
            except OSError:
                skipped.append(rel)
                continue
            entries[rel] = FileEntry(rel, st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode), digest)
    cache.retain(entries)
    cache.save()
    return Manifest(dict(sorted(entries.items())), tuple(sorted(skipped)))
