"""Receiving-side checks of relative paths from a peer: no escape, no device, names that fit."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from .errors import UnrepresentableName, UnsafePath


def check_relative(rel: str) -> PurePosixPath:
    """Parse a '/'-separated relative path from the wire; absolute, '..', '.' or empty parts fail."""
    return PurePosixPath(*check_path_text(rel))


def check_path_text(rel: str) -> list[str]:
    """The checks of `check_relative` on the text alone; its parts."""
    if not rel or "\0" in rel:
        raise UnsafePath(f"empty path or NUL byte in {rel!r}")
    if rel[0] == "/":
        raise UnsafePath(f"absolute path {rel!r}")
    parts = rel.split("/")
    if "" in parts or "." in parts or ".." in parts:
        raise UnsafePath(f"path {rel!r} has an empty, '.' or '..' component")
    return parts


def check_name_fits(root: Path, rel: PurePosixPath) -> None:
    """Names this file system cannot hold are reported, never silently shortened or re-encoded."""
    try:
        name_max = os.pathconf(root, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    for part in rel.parts:
        try:
            encoded = os.fsencode(part)
        except UnicodeEncodeError:
            raise UnrepresentableName(f"{part!r} cannot be encoded for this file system") from None
        if len(encoded) > name_max:
            raise UnrepresentableName(f"{part[:40]!r}... is {len(encoded)} bytes, "
                                      f"this file system allows {name_max}")


def resolve_inside(root: str | os.PathLike, rel: str) -> Path:
    """The local path for `rel` under `root`, refusing symlinked parents and non-regular targets.

    Existing parents must be real directories (a symlink could lead outside `root`); an existing
    target must be a regular file. Missing parts are fine: the caller creates them.
    """
    root = Path(root)
    parsed = check_relative(rel)
    check_name_fits(root, parsed)
    current = root
    for i, part in enumerate(parsed.parts):
        current = current / part
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            return root.joinpath(*parsed.parts)
        last = i == len(parsed.parts) - 1
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{rel!r} goes through the symlink {current}")
        if not last and not stat.S_ISDIR(st.st_mode):
            raise UnsafePath(f"{rel!r}: {current} is not a directory")
        if last and not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{rel!r} exists and is not a regular file (device, pipe, socket or folder)")
    return current


class InsideResolver:
    """`resolve_inside` for the many paths of one sync: a folder found to be a real directory
    (not a symlink) is remembered, so each file costs one lstat instead of one per component."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._root_text = os.fspath(self.root)
        self._dirs: set[str] = set()
        try:
            self._name_max = os.pathconf(self.root, "PC_NAME_MAX")
        except (OSError, ValueError):
            self._name_max = 255

    def resolve(self, rel: str) -> Path:
        parts = check_path_text(rel)
        parent = rel.rpartition("/")[0]
        if parent and parent not in self._dirs:
            path = resolve_inside(self.root, rel)
            self._remember(parent)
            return path
        name = parts[-1]
        try:
            if len(os.fsencode(name)) > self._name_max:
                check_name_fits(self.root, PurePosixPath(name))
        except UnicodeEncodeError:
            raise UnrepresentableName(f"{name!r} cannot be encoded for this file system") from None
        path = self.root / rel
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePath(f"{rel!r} goes through the symlink {path}")
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{rel!r} exists and is not a regular file (device, pipe, socket or folder)")
        return path

    def forget(self) -> None:
        """Folders may have changed (created, removed): check them again from now on."""
        self._dirs.clear()

    def _remember(self, parent: str) -> None:
        # resolve_inside just walked these: every existing component was a real directory
        chain = []
        while parent:
            chain.append(parent)
            parent = parent.rpartition("/")[0]
        for folder in reversed(chain):
            try:
                st = os.lstat(os.path.join(self._root_text, folder))
            except FileNotFoundError:
                return
            if not stat.S_ISDIR(st.st_mode):
                return
            self._dirs.add(folder)
