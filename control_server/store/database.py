"""One connection to the data directory's SQLite file (WAL): every table of every part of the
store, and the migration of a database made by an older version. The embedded default; the same
tables on PostgreSQL are `postgres.PostgresDatabase`, and `opening.open_database` picks one.

The server (one writer thread, batched) and `sipsync-admin --data-dir` may hold connections at the
same time; each part of the store (directory, state, admin accounts) works over one of these."""

from __future__ import annotations

import sqlite3
from concurrent.futures import Executor
from pathlib import Path

from .schema import ADDED_COLUMNS, SCHEMA

DB_NAME = "sipsync.db"


class Database:
    engine = "sqlite"
    shared = False  # one server's file: whatever it holds is that server's, whatever its name

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring a database made by an older version up to the schema above."""
        for table, column, definition in ADDED_COLUMNS:
            self._add_column(table, column, definition)

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

    def describe(self) -> str:
        """Where the data is, for a log line."""
        return str(self.data_dir)

    def announce_directory_change(self) -> None:
        """Inside the transaction of a change: the directory's version moves with its commit.
        (SQLite's data version would move too, but with every other connection's commit, the
        write-behind of the other workers of a server included.)"""
        self.db.execute("INSERT INTO meta (key, value) VALUES ('directory_version', '1') "
                        "ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")

    def announce(self, channel: str, payload: str) -> None:
        """Nothing to do: no server listens on a file of one server's own."""

    def nonce_secret(self) -> bytes:
        from .secret import nonce_secret

        return nonce_secret(self.data_dir)

    def directory_changes(self, executor: Executor):
        """What the server awaits to learn of an admin's change: the directory's version, read
        on `executor`, the thread that uses this connection."""
        from .changes import DirectoryVersionChanges

        return DirectoryVersionChanges(self, executor)

    def close(self) -> None:
        self.db.close()

    def directory_version(self) -> int:
        """Moves with every change an admin commits to users, devices or shares (0: none yet)."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'directory_version'").fetchone()
        return 0 if row is None else int(row[0])


class StorePart:
    """A part of the store: the tables of one concern, over a connection it may share."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.db = database.db

    @classmethod
    def open(cls, data_dir: Path | str, store: str | None = None):
        """This part alone, on a connection of its own (to `store`, a PostgreSQL URL, if given)."""
        from .opening import open_database

        return cls(open_database(data_dir, store))

    def directory_version(self) -> int:
        """Moves with every change an admin commits to users, devices or shares (0: none yet)."""
        return self.database.directory_version()

    def close(self) -> None:
        """Closes the connection under this part (and so under every part sharing it)."""
        self.database.close()
