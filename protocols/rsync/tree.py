"""What a receiving side changes in its tree besides file contents: folders, links, modes and
times, deletions; in the order that keeps every step safe.

`before_transfer` runs before any file arrives (conflict copies, folders to write into),
`after_transfer` once all have (links, metadata-only changes, deletions, then every touched
folder's mode and mtime, deepest first, since writing into a folder changes its mtime).
Every path goes through the receiving-side checks of `paths.py`; a regular file about to be
replaced or deleted is handed to `keep_version` first.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
from pathlib import Path

from .errors import UnsafePath
from .exchange import Exchange
from .manifest import EntryKind, FileEntry, Manifest, Skipped, link_escapes
from .paths import InsideResolver
from .receiving import TMP_PREFIX, KeepVersion


class TreeChanges:
    """One receiving side's non-content changes; `skipped` says what it refused and why."""

    def __init__(self, exchange: Exchange, root: Path, keep_version: KeepVersion, *,
                 allow_external_links: bool = False, paths: InsideResolver | None = None) -> None:
        self._exchange, self._root, self._keep = exchange, root, keep_version
        self._paths = paths or InsideResolver(root)
        self._allow_external = allow_external_links
        self._touched: set[str] = set()
        self.skipped: list[Skipped] = []
        self.applied = 0  # links and metadata-only changes

    def _resolve(self, rel: str) -> tuple[Path, os.stat_result | None]:
        path, st = self._paths.resolve(rel, any_kind=True)
        return Path(path), st

    # -- before ----------------------------------------------------------------------------------

    def before_transfer(self) -> None:
        ex = self._exchange
        if ex.changes_here:
            self._root.mkdir(parents=True, exist_ok=True)
        for path, copy in ex.keep_copies:
            self._keep_copy(path, copy)
        for entry in ex.applies:
            if entry.kind is EntryKind.DIR:
                self._make_dir(entry)
        for item in ex.incoming:
            self._clear_folder_in_the_way(item.target)
            self._touch(item.target)

    def _keep_copy(self, rel: str, copy_rel: str) -> None:
        """This side lost a conflict: its version stays under the conflict name (a hard link, so
        the winner's atomic rename over `path` leaves it whole)."""
        path, _ = self._resolve(rel)
        copy, st = self._resolve(copy_rel)
        if st is not None:
            raise UnsafePath(f"conflict copy {copy.name!r} exists already; not overwriting it")
        copy.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, copy)
        except OSError:  # no hard links on this file system
            shutil.copy2(path, copy)
        self._touch(copy_rel)

    def _make_dir(self, entry: FileEntry) -> None:
        mine = self._exchange.local.get(entry.path)
        if mine is not None and mine.kind is EntryKind.DIR:
            return  # there at the scan: only its mode or mtime changes, at the end
        path, st = self._resolve(entry.path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            return
        if st is not None:
            self._check_replaceable(entry.path, path, st)
            self._remove_non_dir(entry.path, path, st)
        # writable for us until the end, whatever its final mode: files are written into it;
        # parents come first (the entries are in path order)
        try:
            os.mkdir(path, 0o700)
        except FileNotFoundError:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except FileExistsError:
            pass
        self._paths.known_folder(entry.path)
        self._touch(entry.path)

    def _check_replaceable(self, rel: str, path: Path, st: os.stat_result) -> None:
        """A symlink this side's scan did not list (it leads out, or appeared since) is never
        replaced: whatever the peer sends for that path would have gone through it."""
        mine = self._exchange.local.get(rel)
        if stat.S_ISLNK(st.st_mode) and (mine is None or mine.kind is not EntryKind.LINK):
            raise UnsafePath(f"{rel!r} goes through the symlink {path}")

    def _clear_folder_in_the_way(self, rel: str) -> None:
        """A file or link replaces a folder: what the plan deletes in it goes first, then the
        folder (anything else in it, such as ignored files, stops the sync with the reason)."""
        mine = self._exchange.local.get(rel)
        if mine is None or mine.kind is not EntryKind.DIR:  # this side's scan saw no folder here
            return
        path, st = self._resolve(rel)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return
        inside = sorted((p for p in self._exchange.deletions if p.startswith(rel + "/")), reverse=True)
        for sub in inside:
            self._delete(sub)
        try:
            path.rmdir()
        except OSError:
            raise UnsafePath(f"{rel!r} is a folder here that still holds files the sync does "
                             "not delete; it cannot become a file") from None

    # -- after -----------------------------------------------------------------------------------

    def after_transfer(self, synced: Manifest) -> None:
        ex = self._exchange
        for entry in ex.applies:
            if entry.kind is EntryKind.LINK:
                self._clear_folder_in_the_way(entry.path)
                self._make_link(entry)
            elif entry.kind is EntryKind.FILE:
                self._set_metadata(entry)
        for rel in sorted(ex.deletions, reverse=True):  # a folder's contents before the folder
            self._delete(rel)
        folders = {e.path: e for e in ex.applies if e.kind is EntryKind.DIR}
        for rel in self._touched:
            entry = synced.get(rel)
            if entry is not None and entry.kind is EntryKind.DIR:
                folders.setdefault(rel, entry)
        for rel in sorted(folders, key=lambda p: p.count("/"), reverse=True):
            self._set_folder(folders[rel])

    def _make_link(self, entry: FileEntry) -> None:
        if link_escapes(entry.path, entry.target) and not self._allow_external:
            self.skipped.append(Skipped(entry.path, f"symlink to {entry.target!r} leads out of "
                                                    "the dataset; not created"))
            return
        path, st = self._resolve(entry.path)
        if st is not None:
            self._check_replaceable(entry.path, path, st)
        if st is not None and stat.S_ISLNK(st.st_mode) and os.readlink(path) == entry.target:
            pass
        else:
            if st is not None and stat.S_ISREG(st.st_mode):
                self._keep(entry.path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{TMP_PREFIX}{os.getpid()}-link")
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            os.symlink(entry.target, tmp)
            os.replace(tmp, path)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns), follow_symlinks=False)
        self._touch(entry.path)
        self.applied += 1

    def _set_metadata(self, entry: FileEntry) -> None:
        path, st = self._resolve(entry.path)
        if st is None or not stat.S_ISREG(st.st_mode):
            self.skipped.append(Skipped(entry.path, "changed here during the sync; metadata not applied"))
            return
        os.chmod(path, entry.mode)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))
        self.applied += 1

    def _set_folder(self, entry: FileEntry) -> None:
        path, st = self._resolve(entry.path)
        if st is None or not stat.S_ISDIR(st.st_mode):
            return
        os.chmod(path, entry.mode)
        os.utime(path, ns=(entry.mtime_ns, entry.mtime_ns))

    def _delete(self, rel: str) -> None:
        """Deletes what the plan named, unless it changed since the scan (then it stays)."""
        planned = self._exchange.local.entries.get(rel)
        path, st = self._resolve(rel)
        if st is None or planned is None:
            return
        if stat.S_ISDIR(st.st_mode):
            if planned.kind is EntryKind.DIR:
                try:
                    path.rmdir()
                except OSError:  # it still holds files the sync leaves alone (ignored ones)
                    return
                self._touch(rel)
            return
        if planned.kind is EntryKind.DIR:
            return
        if stat.S_ISREG(st.st_mode) and (st.st_size, st.st_mtime_ns) != (planned.size, planned.mtime_ns):
            return
        self._remove_non_dir(rel, path, st)

    def _remove_non_dir(self, rel: str, path: Path, st: os.stat_result) -> None:
        if stat.S_ISREG(st.st_mode):
            self._keep(rel)
        path.unlink()
        self._touch(rel)

    def _touch(self, rel: str) -> None:
        """`rel`'s folder changed (an entry was added or removed): its mtime is set back later."""
        parent = posixpath.dirname(rel)
        while parent:
            self._touched.add(parent)
            parent = posixpath.dirname(parent)
