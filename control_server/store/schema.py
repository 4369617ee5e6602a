"""The store's tables, written once for both engines: the SQLite text is the reference, and the
PostgreSQL text is derived from it so that the two can never drift apart. Also the columns later
versions added, which an older database gains when it is opened."""

from __future__ import annotations

# "user" is quoted: it is a reserved word in PostgreSQL (SQLite accepts it either way).
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    ha1_md5 TEXT NOT NULL,
    ha1_sha256 TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_seen REAL,
    disabled INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY ("user", name)
);
CREATE TABLE IF NOT EXISTS shares (
    owner TEXT NOT NULL,
    device TEXT NOT NULL,
    grantee TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_at REAL NOT NULL,
    PRIMARY KEY (owner, device, grantee),
    FOREIGN KEY (owner, device) REFERENCES devices("user", name) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS bindings (
    "user" TEXT NOT NULL,
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
    node TEXT NOT NULL DEFAULT '',  -- the server holding the device's flow
    -- The latest the registration may run to: expires_at and the refreshes after last_seen
    -- that the server may have left unwritten (control_server/store/refresh_writes.py).
    held_until REAL NOT NULL DEFAULT 0,
    PRIMARY KEY ("user", device)
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,          -- the dialog: Call-ID and the subscriber's tag
    state TEXT NOT NULL,          -- JSON, as control_server/notifier.py writes it
    expires_at REAL NOT NULL,
    node TEXT NOT NULL DEFAULT '' -- the server notifying it; '' before servers had names
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
    started_by TEXT NOT NULL DEFAULT '',  -- "daemon" for a live sync's own; '' when asked for
    node TEXT NOT NULL DEFAULT ''         -- the server that ran it; '' before servers had names
);
CREATE INDEX IF NOT EXISTS sessions_by_end ON sessions(ended_at);
CREATE TABLE IF NOT EXISTS servers (
    node TEXT PRIMARY KEY,        -- the servers of a cluster on one store, by node name
    incarnation INTEGER NOT NULL, -- new at each start, and when it comes back taken for gone
    started_at REAL NOT NULL,
    alive_at REAL NOT NULL,       -- its last heartbeat, by the store's clock
    timeout REAL NOT NULL,        -- how long it may be silent before it is gone
    gone_at REAL                  -- when another server (or its own next start) took it for gone
);
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

# (table, column, definition) in the order versions added them; each is in SCHEMA as well.
ADDED_COLUMNS = (
    ("devices", "disabled", "INTEGER NOT NULL DEFAULT 0"),
    ("sessions", "started_by", "TEXT NOT NULL DEFAULT ''"),
    ("bindings", "node", "TEXT NOT NULL DEFAULT ''"),
    ("sessions", "node", "TEXT NOT NULL DEFAULT ''"),
    ("subscriptions", "node", "TEXT NOT NULL DEFAULT ''"),
    ("bindings", "held_until", "REAL NOT NULL DEFAULT 0"),
)

# Every table, parents before the tables that refer to them: the order a copy fills them in.
# Not `servers`: which servers are alive is of the cluster running now, never copied.
TABLES = ("meta", "users", "devices", "shares", "bindings", "subscriptions", "sessions", "admins",
          "api_tokens")


def postgres_types(sql: str) -> str:
    """SQLite's REAL is PostgreSQL's 4-byte float: times need 8 bytes; INTEGER grows to 64 bits
    as SQLite's is."""
    return sql.replace(" REAL", " DOUBLE PRECISION").replace(" INTEGER", " BIGINT")


POSTGRES_SCHEMA = postgres_types(SCHEMA)
