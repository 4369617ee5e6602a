"""Receiving-side checks of relative paths from a peer: no escape, no device, names that fit."""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from .errors import UnrepresentableName, UnsafePath


def check_relative(rel: str) -> PurePosixPath:
    """Parse a '/'-separated relative path from the wire; absolute, '..', '.' or empty parts fail."""
    if not rel or "\0" in rel:
        raise UnsafePath(f"empty path or NUL byte in {rel!r}")
    if rel.startswith("/"):
        raise UnsafePath(f"absolute path {rel!r}")
    parts = rel.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafePath(f"path {rel!r} has an empty, '.' or '..' component")
    return PurePosixPath(*parts)


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
