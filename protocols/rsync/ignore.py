"""Which paths of a dataset a sync leaves alone: `.sipsyncignore` (gitignore syntax) plus defaults.

An ignored path is never listed in a manifest, so it is never sent and never deleted or replaced
on the other side (each side applies its own rules to its own scan).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

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
    # One regex for "does any pattern match at all": most paths match none, and one search
    # is much cheaper than one per pattern; a hit goes through the spec's full rules.
    _any: re.Pattern | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        regexes = [p.regex.pattern.replace("(?P<ps_d>", "(?:")
                   for p in self.spec.patterns if p.include is not None and p.regex is not None]
        object.__setattr__(self, "_any", re.compile("|".join(f"(?:{r})" for r in regexes))
                           if regexes else None)

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
        path = rel + "/" if is_dir else rel
        if self._any is None or self._any.match(path) is None:
            return False
        return self.spec.match_file(path)
