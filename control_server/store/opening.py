"""Which engine holds the store: the SQLite file in the data directory, unless `--store` (or
`store = "..."`, SIPSYNC_STORE) names another: `postgresql://...`, a database shared by a cluster
of servers, or `sqlite:DIR`, the SQLite file of another directory."""

from __future__ import annotations

from pathlib import Path

from .database import Database
from .errors import StoreError
from .postgres import PostgresDatabase, is_store_url

Store = Database | PostgresDatabase


def open_database(data_dir: Path | str, store: str | None = None) -> Store:
    if not store:
        return Database(data_dir)
    if store.startswith("sqlite:"):
        return Database(store.removeprefix("sqlite:"))
    if not is_store_url(store):
        raise StoreError(f"--store takes a postgresql:// URL or sqlite:DIR, not {store!r}")
    return PostgresDatabase(store)
