"""Local changes to live datasets, as the OS reports them (inotify through watchfiles): no polling.

A folder dataset is watched whole; a record dataset through its store's files, so an edit by
`sipsync-peer records` or by any other program writing the store is seen. The engine's own
scratch files (partial transfers, versions) are not changes. Debouncing is the schedule's job
(peer/live_schedule.py): this only says which dataset changed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import watchfiles

log = logging.getLogger(__name__)

# Names that change while a sync works and say nothing about the user's data.
_SCRATCH_PREFIXES = (".sipsync-partial-", ".sipsync-versions", ".sipsync-state")
_SCRATCH_SUFFIXES = (".tmp", "-journal", "-shm")


def is_scratch(relative: Path) -> bool:
    return any(part.startswith(_SCRATCH_PREFIXES) for part in relative.parts) or \
        relative.name.endswith(_SCRATCH_SUFFIXES)


class DatasetWatcher:
    """Calls `changed(dataset)` for each dataset whose files change, until `close()`."""

    def __init__(self, roots: dict[str, Path], changed: Callable[[str], None]) -> None:
        self._roots = {name: root.resolve() for name, root in roots.items()}
        self._changed = changed
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        existing = [root for root in self._roots.values() if root.exists()]
        missing = sorted(set(self._roots.values()) - set(existing))
        for root in missing:
            log.warning("not watching %s: it does not exist", root)
        if existing:
            self._task = asyncio.create_task(self._run(existing))

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self, paths: Iterable[Path]) -> None:
        try:
            # A short debounce only batches one burst of events; the schedule waits for quiet.
            async for batch in watchfiles.awatch(*paths, debounce=40, step=20,
                                                 stop_event=self._stop, recursive=True,
                                                 watch_filter=None):
                for dataset in sorted(self._datasets_of(Path(p) for _, p in batch)):
                    self._changed(dataset)
        except Exception:
            log.exception("the file watcher stopped; live datasets sync only on their rescan")

    def _datasets_of(self, paths: Iterable[Path]) -> set[str]:
        touched = set()
        for path in paths:
            for name, root in self._roots.items():
                try:
                    relative = path.relative_to(root)
                except ValueError:
                    continue
                if not is_scratch(relative) and not _empty_wal(path):
                    touched.add(name)
        return touched


def _empty_wal(path: Path) -> bool:
    """A SQLite write-ahead log that is gone or holds nothing: a reader opened and closed the
    store (the daemon's own check of what is pending does), which is no change. Were it one,
    each check would set off the next, for ever. A writer's log holds its frames."""
    if not path.name.endswith("-wal"):
        return False
    try:
        return path.stat().st_size == 0
    except OSError:
        return True
