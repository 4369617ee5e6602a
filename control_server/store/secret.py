"""The per-installation nonce secret, a file beside the database, so that nonces stay valid across
a restart of the server."""

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
