"""Who may use the admin HTTP API: admin accounts (with a password hash, never a password) and API
tokens (kept only as a hash), each with a role. The hashing itself is the admin edge's."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .database import StorePart
from .integrity import INTEGRITY_ERRORS
from .errors import NameTaken, StoreError, UnknownName
from .names import check_user_name

ROLES = ("admin", "viewer")  # admin reads and changes; viewer only reads


@dataclass(frozen=True, slots=True)
class AdminRow:
    name: str
    password_hash: str
    role: str
    created_at: float


@dataclass(frozen=True, slots=True)
class TokenRow:
    name: str
    role: str
    created_at: float


class AdminStore(StorePart):
    def add_admin(self, name: str, password_hash: str, role: str) -> None:
        check_user_name(name)
        _check_role(role)
        try:
            with self.db:
                self.db.execute("INSERT INTO admins VALUES (?, ?, ?, ?)",
                                (name, password_hash, role, time.time()))
        except INTEGRITY_ERRORS:
            raise NameTaken(f"admin {name!r} exists") from None

    def admin(self, name: str) -> AdminRow | None:
        row = self.db.execute(
            "SELECT name, password_hash, role, created_at FROM admins WHERE name=?", (name,)
        ).fetchone()
        return None if row is None else AdminRow(*row)

    def admins(self) -> list[AdminRow]:
        rows = self.db.execute("SELECT name, password_hash, role, created_at FROM admins ORDER BY 1")
        return [AdminRow(*row) for row in rows]

    def remove_admin(self, name: str) -> None:
        with self.db:
            if not self.db.execute("DELETE FROM admins WHERE name=?", (name,)).rowcount:
                raise UnknownName(f"no admin {name!r}")

    def add_token(self, name: str, token_hash: str, role: str) -> None:
        check_user_name(name)
        _check_role(role)
        try:
            with self.db:
                self.db.execute("INSERT INTO api_tokens VALUES (?, ?, ?, ?)",
                                (token_hash, name, role, time.time()))
        except INTEGRITY_ERRORS:
            raise NameTaken(f"token {name!r} exists") from None

    def token(self, token_hash: str) -> TokenRow | None:
        row = self.db.execute(
            "SELECT name, role, created_at FROM api_tokens WHERE token_hash=?", (token_hash,)
        ).fetchone()
        return None if row is None else TokenRow(*row)

    def tokens(self) -> list[TokenRow]:
        rows = self.db.execute("SELECT name, role, created_at FROM api_tokens ORDER BY 1")
        return [TokenRow(*row) for row in rows]

    def remove_token(self, name: str) -> None:
        with self.db:
            if not self.db.execute("DELETE FROM api_tokens WHERE name=?", (name,)).rowcount:
                raise UnknownName(f"no token {name!r}")


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}: {' or '.join(ROLES)}")
    return role
