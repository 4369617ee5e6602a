"""Where the directory lives: users with their HA1 digests (never a password), devices and shares,
and the realm the digests were made for. Changed by admins, read by the server at start and
whenever it hears of an admin's change (`changes`): every change announces itself in its own
transaction."""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from protocols.sip.digest import Algorithm, ha1

from .database import StorePart
from .errors import NameTaken, StoreError, UnknownName
from .integrity import INTEGRITY_ERRORS, is_duplicate
from .names import check_device_name, check_user_name


@dataclass(frozen=True, slots=True)
class UserRow:
    name: str
    disabled: bool
    created_at: float
    devices: int


@dataclass(frozen=True, slots=True)
class DeviceRow:
    user: str
    name: str
    created_at: float
    last_seen: float | None
    disabled: bool


@dataclass(frozen=True, slots=True)
class ShareRow:
    owner: str
    device: str
    grantee: str


class DirectoryStore(StorePart):
    # -- realm ------------------------------------------------------------------------------------

    def realm(self, wanted: str | None = None) -> str:
        """The realm the HA1 digests were made for; set once, by the first caller."""
        row = self.db.execute("SELECT value FROM meta WHERE key='realm'").fetchone()
        if row is not None:
            if wanted and wanted != row[0]:
                raise StoreError(
                    f"this data directory belongs to realm {row[0]!r}, not {wanted!r}: "
                    "stored digests only work in their own realm"
                )
            return row[0]
        realm = wanted or "sipsync"
        with self.db:
            self.db.execute("INSERT INTO meta VALUES ('realm', ?) ON CONFLICT DO NOTHING", (realm,))
        return self.realm()

    # -- users ------------------------------------------------------------------------------------

    def _digests(self, name: str, password: str) -> tuple[str, str]:
        realm = self.realm()
        return ha1(name, realm, password, Algorithm.MD5), ha1(name, realm, password, Algorithm.SHA256)

    def add_user(self, name: str, password: str) -> None:
        check_user_name(name)
        if not password:
            raise StoreError("empty password")
        md5, sha = self._digests(name, password)
        try:
            with self.db:
                self.db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, 0, ?)", (name, md5, sha, time.time())
                )
                self.database.announce_directory_change()
        except INTEGRITY_ERRORS:
            raise NameTaken(f"user {name!r} exists") from None

    def import_users(self, rows: Iterable[tuple[str, str]]) -> int:
        """Add or replace users from (name, password) pairs in one transaction."""
        realm = self.realm()
        now = time.time()
        records = []
        for number, (name, password) in enumerate(rows, 1):
            try:
                check_user_name(name)
            except StoreError as exc:
                raise StoreError(f"row {number}: {exc}") from None
            if not password:
                raise StoreError(f"row {number}: empty password for {name!r}")
            records.append(
                (
                    name,
                    ha1(name, realm, password, Algorithm.MD5),
                    ha1(name, realm, password, Algorithm.SHA256),
                    now,
                )
            )
        with self.db:
            self.db.executemany(
                "INSERT INTO users (name, ha1_md5, ha1_sha256, disabled, created_at) "
                "VALUES (?, ?, ?, 0, ?) ON CONFLICT(name) DO UPDATE SET "
                "ha1_md5=excluded.ha1_md5, ha1_sha256=excluded.ha1_sha256",
                records,
            )
            self.database.announce_directory_change()
        return len(records)

    def set_password(self, name: str, password: str) -> None:
        if not password:
            raise StoreError("empty password")
        md5, sha = self._digests(name, password)
        self._change_user("UPDATE users SET ha1_md5=?, ha1_sha256=? WHERE name=?", (md5, sha, name))

    def set_disabled(self, name: str, disabled: bool) -> None:
        self._change_user("UPDATE users SET disabled=? WHERE name=?", (int(disabled), name))

    def remove_user(self, name: str) -> None:
        self._change_user("DELETE FROM users WHERE name=?", (name,))
        # Its bindings go too, so that a restart of the server does not bring its devices back.
        with self.db:
            self.db.execute('DELETE FROM bindings WHERE "user"=?', (name,))
            self.db.execute("DELETE FROM shares WHERE owner=?", (name,))
            self.database.announce_directory_change()

    def _change_user(self, sql: str, args: tuple) -> None:
        with self.db:
            if self.db.execute(sql, args).rowcount == 0:
                raise UnknownName(f"no user {args[-1]!r}")
            self.database.announce_directory_change()

    def users(self) -> list[UserRow]:
        rows = self.db.execute(
            "SELECT u.name, u.disabled, u.created_at, COUNT(d.name) FROM users u "
            'LEFT JOIN devices d ON d."user" = u.name GROUP BY u.name ORDER BY u.name'
        )
        return [UserRow(n, bool(dis), c, count) for n, dis, c, count in rows]

    def credentials(self) -> Iterable[tuple[str, str, str, bool]]:
        """(name, ha1_md5, ha1_sha256, disabled) for every user: what the server keeps in memory."""
        return self.db.execute("SELECT name, ha1_md5, ha1_sha256, disabled FROM users")

    # -- devices and shares -----------------------------------------------------------------------

    def add_device(self, user: str, device: str) -> None:
        check_user_name(user), check_device_name(device)
        try:
            with self.db:
                self.db.execute(
                    'INSERT INTO devices ("user", name, created_at) VALUES (?, ?, ?)',
                    (user, device, time.time()),
                )
                self.database.announce_directory_change()
        except INTEGRITY_ERRORS:
            if self.db.execute("SELECT 1 FROM users WHERE name=?", (user,)).fetchone() is None:
                raise UnknownName(f"no user {user!r}") from None
            raise NameTaken(f"device {user}/{device} exists") from None

    def remove_device(self, user: str, device: str) -> None:
        with self.db:
            gone = self.db.execute(
                'DELETE FROM devices WHERE "user"=? AND name=?', (user, device)
            ).rowcount
            # In the same transaction: a removed device is never restored online by a restart.
            self.db.execute('DELETE FROM bindings WHERE "user"=? AND device=?', (user, device))
            self.database.announce_directory_change()
        if not gone:
            raise UnknownName(f"no device {user}/{device}")

    def set_device_disabled(self, user: str, device: str, disabled: bool) -> None:
        with self.db:
            found = self.db.execute(
                'UPDATE devices SET disabled=? WHERE "user"=? AND name=?',
                (int(disabled), user, device),
            ).rowcount
            self.database.announce_directory_change()
        if not found:
            raise UnknownName(f"no device {user}/{device}")

    def devices(self) -> list[DeviceRow]:
        rows = self.db.execute(
            'SELECT "user", name, created_at, last_seen, disabled FROM devices ORDER BY "user", name'
        )
        return [DeviceRow(u, n, c, seen, bool(dis)) for u, n, c, seen, dis in rows]

    def add_share(self, owner: str, device: str, grantee: str) -> None:
        try:
            with self.db:
                self.db.execute(
                    "INSERT INTO shares VALUES (?, ?, ?, ?)", (owner, device, grantee, time.time())
                )
                self.database.announce_directory_change()
        except INTEGRITY_ERRORS as exc:
            if is_duplicate(exc):
                raise NameTaken(f"{owner}/{device} is already shared with {grantee}") from None
            raise UnknownName(f"no device {owner}/{device} or no user {grantee!r}") from None

    def remove_share(self, owner: str, device: str, grantee: str) -> None:
        with self.db:
            gone = self.db.execute(
                "DELETE FROM shares WHERE owner=? AND device=? AND grantee=?",
                (owner, device, grantee),
            ).rowcount
            self.database.announce_directory_change()
        if not gone:
            raise UnknownName(f"{owner}/{device} is not shared with {grantee}")

    def shares(self) -> list[ShareRow]:
        rows = self.db.execute("SELECT owner, device, grantee FROM shares ORDER BY 1, 2, 3")
        return [ShareRow(*row) for row in rows]

    def counts(self) -> tuple[int, int, int]:
        """How many users, devices and shares there are."""
        return tuple(  # type: ignore[return-value]
            self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("users", "devices", "shares")
        )
