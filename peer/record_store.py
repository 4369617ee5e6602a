"""The record store of one dataset: a SQLite file (WAL) of items, their change log with tombstones,
the dataset's own data (a calendar's properties), and per remote device the sync anchors, id map and
conflicts. Local edits and syncs both go here. The schema is in record_schema.

Over 400 lines because every write of the store (an edit, an import, a sync's apply) must share
one connection, one transaction discipline and one change log; the formats, schema, validation
and vdir mapping already live beside it."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from peer import record_formats
from peer.record_schema import migrate
from protocols.syncml.conflicts import Conflict, ConflictPolicy, Resolution, Version
from protocols.syncml.records import Anchor, Change, ItemMeta, Record, content_hash
from protocols.syncml.store import StaleVersion


# A record dataset's path is a folder; its store is this one file in it (with SQLite's -wal, -shm).
STORE_FILE = "records.db"

_META_COLUMNS = "id, content_type, version, modified, deleted, hash, seq, created_seq, origin"
_MAX_UID_CHARS = 200
_UID_NAMESPACE = uuid.UUID("0b8f7a52-3c1e-4f0a-9d55-7c1a2b3e4f60")


class RecordStoreError(Exception):
    """A local edit that cannot be done, with the reason a user reads."""


class ItemNotFound(RecordStoreError):
    pass


class ItemExists(RecordStoreError):
    pass


@dataclass(frozen=True, slots=True)
class ImportReport:
    added: tuple[str, ...]
    replaced: tuple[str, ...]
    unchanged: tuple[str, ...]
    # The file's calendar data (properties, unreferenced time zones): what a person reads about
    # it, and whether the dataset's calendar changed; None when the file had none.
    calendar: str | None = None
    calendar_changed: bool = False

    @property
    def items(self) -> int:
        return len(self.added) + len(self.replaced) + len(self.unchanged)


@dataclass(frozen=True, slots=True)
class DatasetMetadata:
    """The dataset's own data of one content type (for iCalendar a VCALENDAR without items), and
    its version, bumped on every change so a sync can tell which side has the newer one."""

    content_type: str
    content: bytes
    version: int
    modified: float


@dataclass(frozen=True, slots=True)
class VdirFile:
    """A file of the vdir folder the dataset is kept in, as sipsync last read or wrote it."""

    name: str
    item_id: str
    etag: str
    hash: str


@dataclass(frozen=True, slots=True)
class ConflictEntry:
    """A conflict as the store recorded it: when, with which device."""

    at: float
    peer: str
    conflict: Conflict


def store_path(folder: str | Path) -> Path:
    """Where the store of the record dataset kept in `folder` lives."""
    return Path(folder) / STORE_FILE


def item_id_for(content: bytes) -> str:
    """An item's global id: its UID where it has a usable one, else a fresh uuid."""
    return item_id_for_uid(record_formats.uid_of(content))


def item_id_for_uid(uid: str | None) -> str:
    if uid is None:
        return str(uuid.uuid4())
    if len(uid) <= _MAX_UID_CHARS and uid.isprintable():
        return uid
    return str(uuid.uuid5(_UID_NAMESPACE, uid))  # still the same on every device


def _meta(row: tuple) -> ItemMeta:
    return ItemMeta(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7], row[8])


class RecordStore:
    """One dataset's items. Safe to open from several processes (the daemon and the CLI) at once."""

    def __init__(self, path: str | Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = str(path)
        self._clock = clock
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        migrate(self._db)
        self._lock = threading.RLock()
        self._depth = 0

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """One transaction for many writes; nested batches join the outer one."""
        with self._lock:
            if self._depth == 0:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield
            except BaseException:
                self._depth -= 1
                if self._depth == 0:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if self._depth == 0:
                self._db.execute("COMMIT")

    # --- reading -------------------------------------------------------------------------------

    def current_seq(self) -> int:
        row = self._db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        return row[0] if row else 0

    def meta(self, item_id: str) -> ItemMeta | None:
        row = self._db.execute(f"SELECT {_META_COLUMNS} FROM items WHERE id = ?", (item_id,)).fetchone()
        return _meta(row) if row else None

    def get(self, item_id: str) -> Record | None:
        row = self._db.execute(f"SELECT {_META_COLUMNS}, content FROM items WHERE id = ?", (item_id,)).fetchone()
        return Record(_meta(row), row[9]) if row else None

    def get_many(self, item_ids: Iterable[str]) -> dict[str, Record]:
        ids = list(item_ids)
        found: dict[str, Record] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(f"SELECT {_META_COLUMNS}, content FROM items WHERE id IN ({marks})", chunk):
                found[row[0]] = Record(_meta(row), row[9])
        return found

    def scan(self, *, after_seq: int | None = None, not_from: str | None = None) -> Iterator[ItemMeta]:
        query = f"SELECT {_META_COLUMNS} FROM items"
        conditions, parameters = [], []
        if after_seq is not None:
            conditions.append("seq > ?")
            parameters.append(after_seq)
        if not_from is not None:
            conditions.append("(origin IS NULL OR origin != ?)")
            parameters.append(not_from)
        if conditions:
            query += " WHERE " + " AND ".join(conditions)
        for row in self._db.execute(query + " ORDER BY seq", parameters):
            yield _meta(row)

    def items(self, *, include_deleted: bool = False) -> list[Record]:
        """The items, in the order they were last written (`records list`)."""
        where = "" if include_deleted else " WHERE deleted = 0"
        rows = self._db.execute(f"SELECT {_META_COLUMNS}, content FROM items{where} ORDER BY seq")
        return [Record(_meta(row), row[9]) for row in rows]

    # --- writing -------------------------------------------------------------------------------

    def _write(self, change: Change, *, expected_version: int | None, origin: str | None, kind: str) -> ItemMeta:
        with self.batch():
            current = self.meta(change.item_id)
            version = current.version if current else 0
            if expected_version is not None and version != expected_version:
                raise StaleVersion(change.item_id, expected_version, version)
            cursor = self._db.execute(
                "INSERT INTO changes (item_id, kind, version, origin, at) VALUES (?, ?, ?, ?, ?)",
                (change.item_id, kind, version + 1, origin, self._clock()),
            )
            seq = cursor.lastrowid
            meta = ItemMeta(
                change.item_id,
                change.content_type or (current.content_type if current else ""),
                version + 1,
                change.modified,
                change.is_delete,
                content_hash(change.content),
                seq,
                current.created_seq if current and current.live else seq,
                origin,
            )
            self._db.execute(
                "INSERT OR REPLACE INTO items (id, content, content_type, hash, version, modified, deleted,"
                " created_seq, seq, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (meta.id, change.content, meta.content_type, meta.hash, meta.version, meta.modified,
                 int(meta.deleted), meta.created_seq, seq, origin),
            )
            return meta

    def apply(self, change: Change, *, expected_version: int, origin: str | None) -> ItemMeta:
        """A write from a sync: only if the item is still at `expected_version` (0: absent)."""
        kind = "delete" if change.is_delete else ("add" if expected_version == 0 else "replace")
        return self._write(change, expected_version=expected_version, origin=origin, kind=kind)

    def touch(self, item_id: str) -> None:
        with self.batch():
            current = self.meta(item_id)
            if current is None:
                return
            cursor = self._db.execute(
                "INSERT INTO changes (item_id, kind, version, origin, at) VALUES (?, 'touch', ?, NULL, ?)",
                (item_id, current.version, self._clock()),
            )
            self._db.execute("UPDATE items SET seq = ?, origin = NULL WHERE id = ?", (cursor.lastrowid, item_id))

    def mark_held(self, item_id: str, *, version: int, peer: str) -> None:
        # Only the origin changes: the change log keeps the local write, so other peers see it.
        with self.batch():
            self._db.execute("UPDATE items SET origin = ? WHERE id = ? AND version = ?", (peer, item_id, version))

    def add(self, content: bytes, content_type: str | None = None, *, item_id: str | None = None) -> ItemMeta:
        """A new item; its id is its UID when it has one. A deleted item of that id comes back."""
        content_type = content_type or record_formats.sniff(content)
        if not content_type:
            raise RecordStoreError("the content type is not given and not recognisable")
        item_id = item_id or item_id_for(content)
        with self.batch():
            current = self.meta(item_id)
            if current is not None and current.live:
                raise ItemExists(f"an item {item_id!r} exists already")
            return self._write(
                Change(item_id, content, content_type, self._clock()),
                expected_version=None, origin=None, kind="add",
            )

    def replace(self, item_id: str, content: bytes) -> ItemMeta:
        """New content for an item (`records edit`)."""
        with self.batch():
            current = self.meta(item_id)
            if current is None or current.deleted:
                raise ItemNotFound(f"no item {item_id!r}")
            return self._write(
                Change(item_id, content, current.content_type, self._clock()),
                expected_version=None, origin=None, kind="replace",
            )

    def delete(self, item_id: str) -> ItemMeta:
        """Delete an item, leaving a tombstone so the deletion reaches other devices."""
        with self.batch():
            current = self.meta(item_id)
            if current is None or current.deleted:
                raise ItemNotFound(f"no item {item_id!r}")
            return self._write(
                Change(item_id, None, current.content_type, self._clock()),
                expected_version=None, origin=None, kind="delete",
            )

    def import_bytes(self, data: bytes, content_type: str | None = None) -> ImportReport:
        """Import a multi-card .vcf or a .ics: a card whose UID is known replaces that item. The
        file is read whole first and written in one transaction: all of it, or nothing."""
        parsed = record_formats.parse(data, content_type)
        content_type = parsed.content_type
        added, replaced, unchanged = [], [], []
        calendar_changed = False
        with self.batch():
            for piece, uid in zip(parsed.items, parsed.uids):
                item_id = item_id_for_uid(uid)
                current = self.meta(item_id)
                if current is None or current.deleted:
                    added.append(self.add(piece, content_type, item_id=item_id).id)
                elif current.hash == content_hash(piece):
                    unchanged.append(item_id)
                else:
                    replaced.append(self.replace(item_id, piece).id)
            if parsed.calendar is not None:
                current_meta = self.dataset_metadata(content_type)
                merged = record_formats.merge_calendars(current_meta.content if current_meta else None,
                                                        parsed.calendar)
                if current_meta is None or merged != current_meta.content:
                    self.set_dataset_metadata(content_type, merged)
                    calendar_changed = True
        summary = record_formats.calendar_summary(parsed.calendar) if parsed.calendar is not None else None
        return ImportReport(tuple(added), tuple(replaced), tuple(unchanged), summary, calendar_changed)

    def import_file(self, path: str | Path, content_type: str | None = None) -> ImportReport:
        return self.import_bytes(Path(path).read_bytes(), content_type)

    def export_bytes(self, content_type: str | None = None) -> bytes:
        """All live items of one type as one .vcf or .ics file, with the dataset's calendar."""
        records = self.items()
        if content_type is None:
            types = {record.meta.content_type for record in records}
            if len(types) > 1:
                raise RecordStoreError(f"the dataset mixes {sorted(types)}: name one to export")
            if not types:
                types = {meta.content_type for meta in self._all_metadata()}
            content_type = types.pop() if len(types) == 1 else record_formats.VCARD
        contents = [r.content for r in records if r.meta.content_type == content_type and r.content is not None]
        metadata = self.dataset_metadata(content_type)
        return record_formats.join(contents, content_type, metadata.content if metadata else None)

    # --- the dataset's own data ----------------------------------------------------------------

    def _all_metadata(self) -> list[DatasetMetadata]:
        rows = self._db.execute("SELECT content_type, content, version, modified FROM dataset_meta")
        return [DatasetMetadata(*row) for row in rows]

    def all_dataset_metadata(self) -> list[DatasetMetadata]:
        """The dataset's own data of every content type it has some of."""
        return self._all_metadata()

    def dataset_metadata(self, content_type: str = record_formats.ICALENDAR) -> DatasetMetadata | None:
        """The dataset's own data of this content type (a calendar's properties and unreferenced
        time zones) with its version; None when it has none."""
        row = self._db.execute("SELECT content_type, content, version, modified FROM dataset_meta"
                               " WHERE content_type = ?", (content_type,)).fetchone()
        return DatasetMetadata(*row) if row else None

    def set_dataset_metadata(self, content_type: str, content: bytes, *, expected_version: int | None = None,
                             modified: float | None = None) -> DatasetMetadata:
        """New dataset data (from an import, or from a sync that passes the version it saw: a
        stale one writes nothing and raises StaleVersion)."""
        with self.batch():
            current = self.dataset_metadata(content_type)
            version = current.version if current else 0
            if expected_version is not None and version != expected_version:
                raise StaleVersion(f"dataset metadata {content_type}", expected_version, version)
            metadata = DatasetMetadata(content_type, content, version + 1,
                                       self._clock() if modified is None else modified)
            self._db.execute("INSERT OR REPLACE INTO dataset_meta (content_type, content, version, modified)"
                             " VALUES (?, ?, ?, ?)", (content_type, content, metadata.version, metadata.modified))
            return metadata

    # --- the vdir folder's files --------------------------------------------------------------

    def vdir_files(self) -> dict[str, VdirFile]:
        rows = self._db.execute("SELECT name, item_id, etag, hash FROM vdir_files")
        return {row[0]: VdirFile(*row) for row in rows}

    def save_vdir_file(self, entry: VdirFile) -> None:
        with self.batch():
            self._db.execute("DELETE FROM vdir_files WHERE item_id = ? AND name != ?", (entry.item_id, entry.name))
            self._db.execute("INSERT OR REPLACE INTO vdir_files (name, item_id, etag, hash) VALUES (?, ?, ?, ?)",
                             (entry.name, entry.item_id, entry.etag, entry.hash))

    def forget_vdir_file(self, name: str) -> None:
        self._db.execute("DELETE FROM vdir_files WHERE name = ?", (name,))

    # --- anchors, id map, conflicts ------------------------------------------------------------

    def anchor(self, peer: str) -> Anchor:
        row = self._db.execute(
            "SELECT last, last_seq, prev, prev_seq, next FROM anchors WHERE peer = ?", (peer,)
        ).fetchone()
        return Anchor(*row) if row else Anchor()

    def save_anchor(self, peer: str, anchor: Anchor) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO anchors (peer, last, last_seq, prev, prev_seq, next) VALUES (?, ?, ?, ?, ?, ?)",
            (peer, anchor.last, anchor.last_seq, anchor.prev, anchor.prev_seq, anchor.next),
        )

    def peers(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT peer FROM anchors ORDER BY peer")]

    def id_map(self, peer: str) -> dict[str, str]:
        rows = self._db.execute("SELECT local_id, remote_id FROM id_map WHERE peer = ?", (peer,))
        return dict(rows.fetchall())

    def map_id(self, peer: str, local_id: str, remote_id: str) -> None:
        with self.batch():
            self._db.execute("DELETE FROM id_map WHERE peer = ? AND remote_id = ?", (peer, remote_id))
            self._db.execute(
                "INSERT OR REPLACE INTO id_map (peer, local_id, remote_id) VALUES (?, ?, ?)",
                (peer, local_id, remote_id),
            )

    def record_conflict(self, peer: str, conflict: Conflict) -> None:
        def version(v: Version) -> str:
            return json.dumps({"hash": v.hash, "modified": v.modified, "deleted": v.deleted})

        self._db.execute(
            "INSERT INTO conflicts (at, peer, item_id, policy, resolution, caller, callee, copy_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (self._clock(), peer, conflict.item_id, conflict.policy.value, conflict.resolution.value,
             version(conflict.caller), version(conflict.callee), conflict.copy_id),
        )

    def conflicts(self, peer: str | None = None) -> list[ConflictEntry]:
        query = "SELECT at, peer, item_id, policy, resolution, caller, callee, copy_id FROM conflicts"
        rows = self._db.execute(query + (" WHERE peer = ?" if peer else "") + " ORDER BY number",
                                (peer,) if peer else ())
        entries = []
        for at, row_peer, item_id, policy, resolution, caller, callee, copy_id in rows:
            conflict = Conflict(
                item_id, ConflictPolicy(policy), Resolution(resolution),
                Version(**json.loads(caller)), Version(**json.loads(callee)), copy_id,
            )
            entries.append(ConflictEntry(at, row_peer, conflict))
        return entries
