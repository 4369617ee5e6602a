"""One connection to the data directory's SQLite file (WAL): every table of every part of the
store, and the migration of a database made by an older version.

The server (one writer thread, batched) and `sipsync-admin --data-dir` may hold connections at the
same time; each part of the store (directory, state, admin accounts) works over one of these."""

from __future__ import annotations

import sqlite3
from pathlib import Path

DB_NAME = "sipsync.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL,
    disabled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user, name)
);
CREATE TABLE IF NOT EXISTS shares (
    owner TEXT NOT NULL,
    device TEXT NOT NULL,
    grantee TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    PRIMARY KEY (owner, device, grantee),
    FOREIGN KEY (owner, device) REFERENCES devices(user, name) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS bindings (
    user TEXT NOT NULL,
    device TEXT NOT NULL,
    contact TEXT NOT NULL,
    transport TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    user_agent TEXT NOT NULL,
    registered_at REAL NOT NULL,
    last_seen REAL NOT NULL,
    expires_at REAL NOT NULL,
    call_id TEXT NOT NULL,
    cseq INTEGER NOT NULL,
    PRIMARY KEY (user, device)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,          -- the dialog: Call-ID and the subscriber's tag
    state TEXT NOT NULL,          -- JSON, as control_server/notifier.py writes it
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    call_id TEXT PRIMARY KEY,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    data_type TEXT,
    protocol TEXT,
    dataset TEXT,
    state TEXT NOT NULL,
    status INTEGER,
    reason TEXT NOT NULL DEFAULT '',
    started_at REAL NOT NULL,
    established_at REAL,
    ended_at REAL,
    progress TEXT,
    started_by TEXT NOT NULL DEFAULT ''  -- "daemon" for a live sync's own; '' when asked for
);
CREATE INDEX IF NOT EXISTS sessions_by_end ON sessions(ended_at);
CREATE TABLE IF NOT EXISTS admins (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS api_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    created_at REAL NOT NULL
);
"""


class Database:
    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a database made by an older version up to the schema above."""
        self._add_column("devices", "disabled", "INTEGER NOT NULL DEFAULT 0")
        self._add_column("sessions", "started_by", "TEXT NOT NULL DEFAULT ''")

    def _add_column(self, table: str, column: str, definition: str) -> None:
        columns = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
        if column in columns:
            return
        try:
            with self.db:
                self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        except sqlite3.OperationalError as exc:
            # The server and an admin command may open an old database at the same moment.
            if "duplicate column" not in str(exc):
                raise

    def close(self) -> None:
        self.db.close()

    def data_version(self) -> int:
        """Changes when another connection (an admin) commits."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]


class StorePart:
    """A part of the store: the tables of one concern, over a connection it may share."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.db = database.db

    @classmethod
    def open(cls, data_dir: Path | str):
        """This part alone, on a connection of its own."""
        return cls(Database(data_dir))

    def data_version(self) -> int:
        """Changes when another connection (an admin) commits."""
        return self.database.data_version()

    def close(self) -> None:
        """Closes the connection under this part (and so under every part sharing it)."""
        self.database.close()
