"""The control server's SQLite store (WAL): users, devices, shares, bindings, sessions, and the
admin accounts and API tokens of the HTTP API.

Shared by the server (one writer thread, batched) and `sipsync-admin --data-dir`, which may run
while the server does. Passwords never reach the disk: only HA1 digests for each algorithm.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from protocols.sip.digest import Algorithm, ha1

from .location import Binding
from .sessions import SessionRecord

DB_NAME = "sipsync.db"
SECRET_NAME = "nonce.secret"
DEFAULT_DEVICE = "default"

_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

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
    progress TEXT
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

ROLES = ("admin", "viewer")  # admin reads and changes; viewer only reads


class StoreError(Exception):
    """A request the store refuses, with the reason a person reads."""


class UnknownName(StoreError):
    """The user, device, share, admin or token named does not exist."""


class NameTaken(StoreError):
    """What was to be added exists already."""


def check_user_name(name: str) -> str:
    if not _USER_NAME.match(name):
        raise StoreError(f"invalid user name {name!r}: letters, digits, '._+-', at most 64")
    return name


def check_device_name(name: str) -> str:
    if not _DEVICE_NAME.match(name):
        raise StoreError(f"invalid device name {name!r}: letters, digits, '._-', at most 64")
    return name


def split_device(spec: str) -> tuple[str, str]:
    """`USER/DEVICE` into its two checked names."""
    user, sep, device = spec.partition("/")
    if not sep:
        raise StoreError(f"expected USER/DEVICE, got {spec!r}")
    return check_user_name(user), check_device_name(device)


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


class Store:
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
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(devices)")}
        if "disabled" not in columns:
            try:
                with self.db:
                    self.db.execute(
                        "ALTER TABLE devices ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0"
                    )
            except sqlite3.OperationalError as exc:
                # The server and an admin command may open an old database at the same moment.
                if "duplicate column" not in str(exc):
                    raise

    def close(self) -> None:
        self.db.close()

    def data_version(self) -> int:
        """Changes when another connection (an admin) commits."""
        return self.db.execute("PRAGMA data_version").fetchone()[0]

    # -- realm and secret -------------------------------------------------------------------------

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
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('realm', ?)", (realm,))
        return self.realm()

    def nonce_secret(self) -> bytes:
        """A per-installation secret, so nonces stay valid across a restart."""
        path = self.data_dir / SECRET_NAME
        try:
            return path.read_bytes()
        except FileNotFoundError:
            pass
        secret = secrets.token_bytes(32)
        temp = path.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secret)
        os.replace(temp, path)
        return path.read_bytes()

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
        except sqlite3.IntegrityError:
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
        with self.db:
            self.db.execute("DELETE FROM bindings WHERE user=?", (name,))
            self.db.execute("DELETE FROM shares WHERE owner=?", (name,))

    def _change_user(self, sql: str, args: tuple) -> None:
        with self.db:
            if self.db.execute(sql, args).rowcount == 0:
                raise UnknownName(f"no user {args[-1]!r}")

    def users(self) -> list[UserRow]:
        rows = self.db.execute(
            "SELECT u.name, u.disabled, u.created_at, COUNT(d.name) FROM users u "
            "LEFT JOIN devices d ON d.user = u.name GROUP BY u.name ORDER BY u.name"
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
                    "INSERT INTO devices (user, name, created_at) VALUES (?, ?, ?)",
                    (user, device, time.time()),
                )
        except sqlite3.IntegrityError:
            if self.db.execute("SELECT 1 FROM users WHERE name=?", (user,)).fetchone() is None:
                raise UnknownName(f"no user {user!r}") from None
            raise NameTaken(f"device {user}/{device} exists") from None

    def remove_device(self, user: str, device: str) -> None:
        with self.db:
            gone = self.db.execute(
                "DELETE FROM devices WHERE user=? AND name=?", (user, device)
            ).rowcount
            self.db.execute("DELETE FROM bindings WHERE user=? AND device=?", (user, device))
        if not gone:
            raise UnknownName(f"no device {user}/{device}")

    def set_device_disabled(self, user: str, device: str, disabled: bool) -> None:
        with self.db:
            found = self.db.execute(
                "UPDATE devices SET disabled=? WHERE user=? AND name=?",
                (int(disabled), user, device),
            ).rowcount
        if not found:
            raise UnknownName(f"no device {user}/{device}")

    def devices(self) -> list[DeviceRow]:
        rows = self.db.execute(
            "SELECT user, name, created_at, last_seen, disabled FROM devices ORDER BY user, name"
        )
        return [DeviceRow(u, n, c, seen, bool(dis)) for u, n, c, seen, dis in rows]

    def add_share(self, owner: str, device: str, grantee: str) -> None:
        try:
            with self.db:
                self.db.execute(
                    "INSERT INTO shares VALUES (?, ?, ?, ?)", (owner, device, grantee, time.time())
                )
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise NameTaken(f"{owner}/{device} is already shared with {grantee}") from None
            raise UnknownName(f"no device {owner}/{device} or no user {grantee!r}") from None

    def remove_share(self, owner: str, device: str, grantee: str) -> None:
        with self.db:
            gone = self.db.execute(
                "DELETE FROM shares WHERE owner=? AND device=? AND grantee=?",
                (owner, device, grantee),
            ).rowcount
        if not gone:
            raise UnknownName(f"{owner}/{device} is not shared with {grantee}")

    def shares(self) -> list[ShareRow]:
        rows = self.db.execute("SELECT owner, device, grantee FROM shares ORDER BY 1, 2, 3")
        return [ShareRow(*row) for row in rows]

    # -- bindings and sessions: written by the server ---------------------------------------------

    def write_batch(
        self,
        bindings: Iterable[Binding],
        unbound: Iterable[tuple[str, str]],
        sessions: Iterable[SessionRecord],
        new_devices: Iterable[tuple[str, str, float]],
    ) -> None:
        """One transaction for everything the server changed since its last flush."""
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO devices (user, name, created_at) VALUES (?, ?, ?)",
                new_devices,
            )
            self.db.executemany(
                "INSERT OR REPLACE INTO bindings VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        b.user, b.device, b.contact, b.source.transport, b.source.host,
                        b.source.port, b.user_agent, b.registered_at, b.last_seen,
                        b.expires_at, b.call_id, b.cseq,
                    )
                    for b in bindings
                ],
            )
            seen = [(b.last_seen, b.user, b.device) for b in bindings]
            self.db.executemany("UPDATE devices SET last_seen=? WHERE user=? AND name=?", seen)
            self.db.executemany("DELETE FROM bindings WHERE user=? AND device=?", unbound)
            self.db.executemany(
                "INSERT OR REPLACE INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        s.call_id, s.caller, s.callee, s.data_type, s.protocol, s.dataset,
                        s.state, s.status, s.reason, s.started_at, s.established_at,
                        s.ended_at, json.dumps(s.progress) if s.progress else None,
                    )
                    for s in sessions
                ],
            )

    def bindings(self, now: float | None = None) -> list[Binding]:
        from protocols.sip.endpoint import Endpoint

        query = "SELECT * FROM bindings"
        args: tuple = ()
        if now is not None:
            query += " WHERE expires_at > ?"
            args = (now,)
        return [
            Binding(
                user=u, device=d, contact=c, source=Endpoint(t, h, p), user_agent=ua,
                registered_at=ra, last_seen=ls, expires_at=ex, call_id=ci, cseq=cs,
            )
            for u, d, c, t, h, p, ua, ra, ls, ex, ci, cs in self.db.execute(
                query + " ORDER BY user, device", args
            )
        ]

    def sessions(self, *, history: bool, limit: int = 100) -> list[SessionRecord]:
        where = "ended_at IS NOT NULL" if history else "ended_at IS NULL"
        order = "ended_at DESC" if history else "started_at"
        rows = self.db.execute(
            f"SELECT * FROM sessions WHERE {where} ORDER BY {order} LIMIT ?", (limit,)
        )
        return [
            SessionRecord(
                call_id=r[0], caller=r[1], callee=r[2], data_type=r[3], protocol=r[4],
                dataset=r[5], state=r[6], status=r[7], reason=r[8], started_at=r[9],
                established_at=r[10], ended_at=r[11],
                progress=json.loads(r[12]) if r[12] else {},
            )
            for r in rows
        ]

    def end_interrupted_sessions(self, now: float) -> int:
        """Sessions still open when the server last stopped cannot be resumed: close them."""
        with self.db:
            return self.db.execute(
                "UPDATE sessions SET state='failed', reason='control server restarted', "
                "ended_at=? WHERE ended_at IS NULL",
                (now,),
            ).rowcount

    def session_history(self, query: HistoryQuery) -> tuple[list[SessionRecord], int]:
        """Ended sessions, newest first, filtered and paged; with how many match in all."""
        where, args = ["ended_at IS NOT NULL"], []
        if query.device:
            where.append("(caller = ? OR callee = ?)")
            args += [query.device, query.device]
        if query.user:
            where.append("(caller LIKE ? ESCAPE '\\' OR callee LIKE ? ESCAPE '\\')")
            pattern = query.user.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            args += [pattern, pattern]
        if query.outcome:
            where.append("state = ?")
            args.append(query.outcome)
        if query.since is not None:
            where.append("started_at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("started_at < ?")
            args.append(query.until)
        condition = " AND ".join(where)
        total = self.db.execute(f"SELECT COUNT(*) FROM sessions WHERE {condition}", args).fetchone()[0]
        rows = self.db.execute(
            f"SELECT * FROM sessions WHERE {condition} ORDER BY ended_at DESC LIMIT ? OFFSET ?",
            [*args, query.limit, query.offset],
        )
        return [_session_record(r) for r in rows], total

    # -- admin accounts and API tokens ------------------------------------------------------------

    def add_admin(self, name: str, password_hash: str, role: str) -> None:
        check_user_name(name)
        _check_role(role)
        try:
            with self.db:
                self.db.execute("INSERT INTO admins VALUES (?, ?, ?, ?)",
                                (name, password_hash, role, time.time()))
        except sqlite3.IntegrityError:
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
        except sqlite3.IntegrityError:
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


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which ended sessions to list: every filter optional; times are Unix seconds."""

    device: str | None = None  # USER/DEVICE, caller or callee
    user: str | None = None  # caller or callee belongs to this user
    outcome: str | None = None  # "ended" or "failed"
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0


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


def _check_role(role: str) -> str:
    if role not in ROLES:
        raise StoreError(f"unknown role {role!r}: {' or '.join(ROLES)}")
    return role


def _session_record(r: tuple) -> SessionRecord:
    return SessionRecord(
        call_id=r[0], caller=r[1], callee=r[2], data_type=r[3], protocol=r[4],
        dataset=r[5], state=r[6], status=r[7], reason=r[8], started_at=r[9],
        established_at=r[10], ended_at=r[11],
        progress=json.loads(r[12]) if r[12] else {},
    )
