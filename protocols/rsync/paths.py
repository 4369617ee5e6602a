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
        self._root_text = os.fspath(self.root).rstrip("/") or "/"
        self._dirs: set[str] = set()
        try:
            self._name_max = os.pathconf(self.root, "PC_NAME_MAX")
        except (OSError, ValueError):
            self._name_max = 255

    def known_folder(self, rel: str) -> None:
        """`rel` is a real directory this side just made or checked."""
        self._dirs.add(rel)

    def resolve(self, rel: str, *, any_kind: bool = False) -> tuple[str, os.stat_result | None]:
        """The local path for `rel`, as text (thousands of files a sync need no `Path` objects),
        and its lstat (None: absent). Parents must be real folders; unless `any_kind`, an
        existing entry must be a regular file."""
        parts = check_path_text(rel)
        for part in parts:
            if part.isascii():  # one byte a character: no encoding to try
                size = len(part)
            else:
                try:
                    size = len(os.fsencode(part))
                except UnicodeEncodeError:
                    raise UnrepresentableName(f"{part!r} cannot be encoded for this file system") from None
            if size > self._name_max:
                raise UnrepresentableName(f"{part[:40]!r}... is {size} bytes, "
                                          f"this file system allows {self._name_max}")
        known = len(parts) - 1  # how many leading parts are folders already checked
        prefix = rel.rpartition("/")[0]
        while known and prefix not in self._dirs:
            known -= 1
            prefix = prefix.rpartition("/")[0]
        current = self._root_text + "/" + prefix if known else self._root_text
        for i in range(known, len(parts) - 1):
            current = current + "/" + parts[i]
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                return self._root_text + "/" + rel, None
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{rel!r} goes through the symlink {current}")
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafePath(f"{rel!r}: {current} is not a directory")
            self._dirs.add("/".join(parts[:i + 1]))
        path = current + "/" + parts[-1]
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return path, None
        if not any_kind:
            if stat.S_ISLNK(st.st_mode):
                raise UnsafePath(f"{rel!r} goes through the symlink {path}")
            if not stat.S_ISREG(st.st_mode):
                raise UnsafePath(f"{rel!r} exists and is not a regular file (device, pipe, "
                                 "socket or folder)")
        return path, st

    def file(self, rel: str) -> str:
        return self.resolve(rel)[0]
