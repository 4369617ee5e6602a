"""Which paths of a dataset a sync leaves alone: `.sipsyncignore` (gitignore syntax) plus defaults.

An ignored path is never listed in a manifest, so it is never sent and never deleted or replaced
on the other side (each side applies its own rules to its own scan).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pathspec

IGNORE_FILE = ".sipsyncignore"

# Editor swap and backup files, the engine's own partial and temporary files, the version folder.
DEFAULT_PATTERNS = (
    ".sipsync-partial-*",
    ".sipsync-tmp-*",
    "/.sipsync-versions/",
    "*.swp",
    "*.swo",
    "*.swx",
    "*~",
    ".#*",
    "#*#",
    ".DS_Store",
)


@dataclass(frozen=True)
class IgnoreRules:
    spec: pathspec.PathSpec

    @classmethod
    def from_lines(cls, lines=()) -> "IgnoreRules":
        return cls(pathspec.GitIgnoreSpec.from_lines([*DEFAULT_PATTERNS, *lines]))

    @classmethod
    def load(cls, root: str | os.PathLike) -> "IgnoreRules":
        """The dataset's `.sipsyncignore` (if any) after the defaults, so it can re-include one."""
        try:
            with open(os.path.join(root, IGNORE_FILE), encoding="utf-8", errors="surrogateescape") as f:
                lines = f.read().splitlines()
        except (FileNotFoundError, NotADirectoryError):
            lines = []
        return cls.from_lines(lines)

    def ignored(self, rel: str, *, is_dir: bool) -> bool:
        return self.spec.match_file(rel + "/" if is_dir else rel)
