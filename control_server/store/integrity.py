"""What either engine raises when a write breaks a key, so that the parts of the store tell "it
exists already" from "what it refers to does not exist" without knowing the engine."""

from __future__ import annotations

import sqlite3

import asyncpg

INTEGRITY_ERRORS = (sqlite3.IntegrityError, asyncpg.IntegrityConstraintViolationError)


def is_duplicate(exc: BaseException) -> bool:
    """A unique or primary key was hit (rather than a foreign key)."""
    return isinstance(exc, asyncpg.UniqueViolationError) or "UNIQUE" in str(exc)
