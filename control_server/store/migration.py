"""From one server to a cluster: every row of a data directory's SQLite store (users with their
HA1 digests, devices, shares, bindings, sessions and history, subscriptions, admins, tokens, the
realm) and its nonce secret, copied in one transaction into an empty PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

from .database import DB_NAME, Database
from .errors import StoreError
from .postgres import PostgresDatabase
from .schema import TABLES
from .secret import SECRET_NAME


def copy_to_postgres(data_dir: Path | str, url: str) -> dict[str, int]:
    """How many rows each table brought. The target must be empty: a copy never merges."""
    data_dir = Path(data_dir)
    if not (data_dir / DB_NAME).exists():
        raise StoreError(f"no store in {data_dir} (no {DB_NAME})")
    source = Database(data_dir)  # opening it brings an older file up to the current tables
    try:
        target = PostgresDatabase(url)
        try:
            return _copy(source, target, data_dir / SECRET_NAME)
        finally:
            target.close()
    finally:
        source.close()


def _copy(source: Database, target: PostgresDatabase, secret: Path) -> dict[str, int]:
    filled = [t for t in TABLES if target.db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone()]
    if filled:
        raise StoreError(f"the target database is not empty ({', '.join(filled)}): "
                         "the copy goes into a new database only")
    copied = {}
    with target.db:
        for table in TABLES:
            columns = ", ".join(f'"{row[1]}"' for row in
                                source.db.execute(f"PRAGMA table_info({table})"))
            rows = source.db.execute(f"SELECT {columns} FROM {table}").fetchall()
            marks = ", ".join("?" * len(columns.split(", ")))
            target.db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
            copied[table] = len(rows)
        if secret.exists():
            # Nonces the old server issued stay good on every server of the cluster.
            target.db.execute("INSERT INTO meta VALUES ('nonce_secret', ?)",
                              (secret.read_bytes().hex(),))
    return copied
