"""The per-installation nonce secret, so that nonces stay valid across a restart of the server: a
file beside an SQLite database, a row of the meta table on PostgreSQL (shared by a cluster)."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

SECRET_NAME = "nonce.secret"


def nonce_secret(data_dir: Path) -> bytes:
    """The secret of this data directory, made (readable by its owner only) on first use."""
    path = Path(data_dir) / SECRET_NAME
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
    os.replace(temp, path)
    return path.read_bytes()


def stored_nonce_secret(db) -> bytes:
    """The secret kept in the store's meta table, made by whichever server comes first: with one
    database under several servers, a nonce one of them issued is good at every other."""
    db.execute("INSERT INTO meta VALUES ('nonce_secret', ?) ON CONFLICT DO NOTHING",
               (secrets.token_hex(32),))
    return bytes.fromhex(db.execute("SELECT value FROM meta WHERE key='nonce_secret'").fetchone()[0])
