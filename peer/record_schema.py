"""The record store's SQLite schema and its migrations: a store written by an older version is
brought up to date when it is opened (PRAGMA user_version counts the steps taken)."""

from __future__ import annotations

import sqlite3

# Version 1: items, their change log, and per remote device anchors, id map and conflicts.
_VERSION_1 = """
CREATE TABLE IF NOT EXISTS items (
    id TEXT PRIMARY KEY,
    content BLOB,                 -- NULL for a tombstone
    content_type TEXT NOT NULL,
    hash TEXT NOT NULL,
    version INTEGER NOT NULL,
    modified REAL NOT NULL,
    deleted INTEGER NOT NULL,
    created_seq INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    origin TEXT                   -- remote device whose sync wrote it; NULL for a local edit
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS items_by_seq ON items (seq);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id TEXT NOT NULL,
    kind TEXT NOT NULL,           -- add, replace, delete, touch
    version INTEGER NOT NULL,
    origin TEXT,
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS anchors (
    peer TEXT PRIMARY KEY,
    last TEXT NOT NULL, last_seq INTEGER NOT NULL,
    prev TEXT NOT NULL, prev_seq INTEGER NOT NULL,
    next TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS id_map (
    peer TEXT NOT NULL,
    local_id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    PRIMARY KEY (peer, local_id)
);
CREATE TABLE IF NOT EXISTS conflicts (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    peer TEXT NOT NULL,
    item_id TEXT NOT NULL,
    policy TEXT NOT NULL,
    resolution TEXT NOT NULL,
    caller TEXT NOT NULL,         -- JSON: hash, modified, deleted
    callee TEXT NOT NULL,
    copy_id TEXT
);
"""

# Version 2: the dataset's own data beside its items (for a calendar: its properties and the time
# zones no item uses), and the files of a vdir folder the dataset is kept in.
_VERSION_2 = """
CREATE TABLE IF NOT EXISTS dataset_meta (
    content_type TEXT PRIMARY KEY,
    content BLOB NOT NULL,
    version INTEGER NOT NULL,
    modified REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS vdir_files (
    name TEXT PRIMARY KEY,        -- file name in the folder
    item_id TEXT NOT NULL UNIQUE,
    etag TEXT NOT NULL,           -- the file's mtime, size and inode when last read or written
    hash TEXT NOT NULL            -- content hash of the item as the file held it
) WITHOUT ROWID;
"""

MIGRATIONS = (_VERSION_1, _VERSION_2)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: sqlite3.Connection) -> None:
    """Take the steps this store has not taken yet, each in one transaction."""
    current = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[current:], current + 1):
        # executescript commits first; the explicit BEGIN makes each step all or nothing
        db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
