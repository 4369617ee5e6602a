"""The dataset watcher on a real file system: a write is reported, scratch files are not."""

import asyncio
import sqlite3
from pathlib import Path

from peer.watch import DatasetWatcher, is_scratch


async def watching(tmp_path, names=("notes", "photos")):
    roots = {name: tmp_path / name for name in names}
    for root in roots.values():
        root.mkdir()
    seen: asyncio.Queue[str] = asyncio.Queue()
    watcher = DatasetWatcher(roots, seen.put_nowait)
    watcher.start()
    # The OS watches are in place once a probe write is reported; then forget the probes.
    for attempt in range(100):
        (roots[names[-1]] / "probe").write_text(str(attempt))
        try:
            await asyncio.wait_for(seen.get(), 0.1)
            break
        except TimeoutError:
            continue
    (roots[names[-1]] / "probe").unlink()
    await asyncio.wait_for(seen.get(), 5)
    while not seen.empty():
        seen.get_nowait()
    return roots, seen, watcher


async def test_a_file_written_in_a_dataset_is_reported_as_that_dataset(tmp_path):
    roots, seen, watcher = await watching(tmp_path)
    try:
        (roots["notes"] / "sub").mkdir()
        (roots["notes"] / "sub" / "a.txt").write_text("hello")
        assert await asyncio.wait_for(seen.get(), 5) == "notes"
    finally:
        await watcher.close()


async def test_the_engines_scratch_files_are_not_changes(tmp_path):
    roots, seen, watcher = await watching(tmp_path)
    try:
        # Scratch files in "notes" come first; were they reported, "notes" would be seen first.
        (roots["notes"] / ".sipsync-partial-a.jpg").write_bytes(b"x")
        (roots["notes"] / "b.jpg.tmp").write_bytes(b"x")
        (roots["photos"] / "real.jpg").write_bytes(b"x")
        assert await asyncio.wait_for(seen.get(), 5) == "photos"
    finally:
        await watcher.close()


def wal_store(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE items (id TEXT)")
    db.close()


async def test_a_store_only_read_is_not_a_change(tmp_path):
    roots, seen, watcher = await watching(tmp_path)
    try:
        wal_store(roots["notes"] / "records.db")
        await asyncio.wait_for(seen.get(), 5)
        while not seen.empty():
            seen.get_nowait()
        # A reader makes the store's -wal and -shm and removes them as it closes.
        db = sqlite3.connect(roots["notes"] / "records.db")
        db.execute("SELECT count(*) FROM items").fetchone()
        db.close()
        (roots["photos"] / "real.jpg").write_bytes(b"x")
        assert await asyncio.wait_for(seen.get(), 5) == "photos"
    finally:
        await watcher.close()


async def test_a_write_by_a_program_keeping_the_store_open_is_a_change(tmp_path):
    roots, seen, watcher = await watching(tmp_path)
    wal_store(roots["notes"] / "records.db")
    await asyncio.wait_for(seen.get(), 5)
    while not seen.empty():
        seen.get_nowait()
    db = sqlite3.connect(roots["notes"] / "records.db")
    try:
        db.execute("INSERT INTO items VALUES ('a')")
        db.commit()  # only in the -wal while the connection stays open
        assert await asyncio.wait_for(seen.get(), 5) == "notes"
    finally:
        db.close()
        await watcher.close()


def test_scratch_names_are_recognized_anywhere_in_the_tree():
    assert is_scratch(Path(".sipsync-versions/a~20260101-000000.txt"))
    assert is_scratch(Path("deep/.sipsync-partial-x"))
    assert is_scratch(Path("records.db-journal"))
    assert not is_scratch(Path("records.db-wal"))  # another program's write to the store
    assert not is_scratch(Path("notes/today.txt"))
