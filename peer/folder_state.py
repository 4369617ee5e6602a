"""What a folder sync keeps on this device between sessions with one peer: the manifest both
agreed on last time and the hash cache, in the state directory; and the one file-system sync
that makes a session's small files durable."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

from protocols.rsync.exchange import Incoming
from protocols.rsync.manifest import HashCache, Manifest

HASH_CACHE = "hashes.json"
LAST_SYNCED = "last-synced.json"

# The daemon lives long: a last-synced manifest or hash cache parsed once is reused while its
# file is unchanged (same size, mtime and inode).
_LOADED: dict[Path, tuple[tuple[int, int, int], Manifest]] = {}
_HASHES: dict[Path, tuple[tuple[int, int, int], dict[str, list]]] = {}


def load_hash_cache(state_dir: Path) -> HashCache:
    """The hash cache of this dataset and peer; each session gets its own copy of the rows
    (shallow: a row is replaced, never changed in place), so two never share one dict."""
    path = state_dir / HASH_CACHE
    try:
        st = os.stat(path)
    except OSError:
        return HashCache(path)
    key = (st.st_size, st.st_mtime_ns, st.st_ino)
    cached = _HASHES.get(path)
    if cached is None or cached[0] != key:
        cached = (key, HashCache(path).rows)
        _HASHES[path] = cached
    return HashCache(path, rows=dict(cached[1]))


def load_last_synced(state_dir: Path) -> Manifest | None:
    path = state_dir / LAST_SYNCED
    try:
        st = os.stat(path)
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = _LOADED.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        manifest = Manifest.from_json(path.read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    _LOADED[path] = (key, manifest)
    return manifest


def save_last_synced(state_dir: Path, manifest: Manifest) -> None:
    path = state_dir / LAST_SYNCED
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(manifest.to_json())
    os.replace(tmp, path)
    st = os.stat(path)
    _LOADED[path] = ((st.st_size, st.st_mtime_ns, st.st_ino), manifest)


def remember_hashes(hashes: HashCache, root: Path, received: list[Incoming]) -> None:
    """The files just installed have the hash their manifest named: the next scan need not
    read them again."""
    for item in received:
        try:
            st = os.lstat(root / item.target)
        except FileNotFoundError:
            continue
        if st.st_size == item.entry.size and st.st_mtime_ns == item.entry.mtime_ns:
            hashes.store(item.target, st, item.entry.digest)
    hashes.save()


_LIBC = ctypes.CDLL(None, use_errno=True) if os.name == "posix" else None


def sync_file_system(root: Path) -> None:
    """One sync of the dataset's file system for every small file installed without fsync."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _LIBC is not None and hasattr(_LIBC, "syncfs"):
            _LIBC.syncfs(fd)
        else:
            os.sync()
    finally:
        os.close(fd)
