"""The store on PostgreSQL: a connection with the calls of a `sqlite3` connection (execute,
executemany, `with` for a transaction, rows and rowcount), so that every part of the store runs
the same SQL on either engine; below it, asyncpg on an event loop of its own.

The parts of the store are called from one thread per connection (the server's writer thread, the
admin API's store thread, or `sipsync-admin`), never from an event loop: each call here waits for
its coroutine on the connection's loop. A connection that is lost is opened again by the next call;
meanwhile calls raise `StoreUnavailable`, which the server answers by keeping its writes."""

from __future__ import annotations

import asyncio
import functools
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import asyncpg

from .errors import StoreError
from .schema import ADDED_COLUMNS, POSTGRES_SCHEMA, postgres_types
from .secret import stored_nonce_secret

CONNECT_SECONDS = 3.0
DIRECTORY_CHANNEL = "sipsync_directory"  # NOTIFY'd in the transaction of each directory change
_SCHEMA_LOCK = 0x51F5  # an advisory lock: two servers starting at once create the schema in turn

# Failures of the connection rather than of the statement: the server is away or restarting.
CONNECTION_LOST = (OSError, asyncio.TimeoutError, asyncpg.InterfaceError,
         asyncpg.PostgresConnectionError, asyncpg.OperatorInterventionError)


class StoreUnavailable(StoreError):
    """The database cannot be reached just now; the same call may work later."""


def is_store_url(store: str | None) -> bool:
    return bool(store) and store.split(":", 1)[0] in ("postgresql", "postgres")


@functools.lru_cache(maxsize=256)
def _numbered(sql: str) -> str:
    """`?` placeholders (SQLite's) as `$1, $2, ...` (PostgreSQL's); no literal in our SQL holds
    a question mark."""
    numbers = iter(range(1, 1000))
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


class Rows:
    """The answer to one statement, read as a `sqlite3` cursor is."""

    def __init__(self, rows: Sequence[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _LoopThread:
    """An event loop on a daemon thread of its own, for coroutines run from ordinary threads."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="postgres",
                                        daemon=True)
        self._thread.start()

    def run(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class PostgresConnection:
    def __init__(self, url: str) -> None:
        self.url = url
        self._loop = _LoopThread()
        self._connection: asyncpg.Connection | None = None
        # One statement or transaction at a time, whichever thread asks.
        self._lock = threading.RLock()

    # -- the calls of a sqlite3 connection --------------------------------------------------------

    def execute(self, sql: str, args: Iterable[Any] = ()) -> Rows:
        with self._lock:
            return self._run(self._execute(_numbered(sql), tuple(args)))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if rows:
            with self._lock:
                self._run(self._executemany(_numbered(sql), rows))

    def __enter__(self) -> PostgresConnection:
        self._lock.acquire()
        try:
            self._run(self._execute("BEGIN", ()))
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        try:
            if self._connection is None or self._connection.is_closed():
                return  # lost with the connection: nothing was committed
            self._run(self._execute("ROLLBACK" if kind else "COMMIT", ()))
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            if self._connection is not None and not self._connection.is_closed():
                try:
                    self._loop.run(self._connection.close(timeout=CONNECT_SECONDS))
                except CONNECTION_LOST:
                    pass
            self._connection = None
            self._loop.stop()

    # -- on the connection's own loop --------------------------------------------------------------

    def _run(self, coroutine) -> Any:
        try:
            return self._loop.run(coroutine)
        except CONNECTION_LOST as exc:
            self._drop()
            raise StoreUnavailable(f"PostgreSQL unavailable: {_reason(exc)}") from exc

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.terminate()

    async def _open(self) -> asyncpg.Connection:
        if self._connection is None or self._connection.is_closed():
            self._connection = await asyncpg.connect(self.url, timeout=CONNECT_SECONDS)
        return self._connection

    async def _execute(self, sql: str, args: tuple) -> Rows:
        connection = await self._open()
        if sql.lstrip()[:6].upper() == "SELECT":
            rows = await connection.fetch(sql, *args)
            return Rows(rows, len(rows))
        status = await connection.execute(sql, *args)
        count = status.rsplit(" ", 1)[-1]
        return Rows((), int(count) if count.isdigit() else -1)

    async def _executemany(self, sql: str, rows: list[tuple]) -> None:
        connection = await self._open()
        await connection.executemany(sql, rows)


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


class PostgresDatabase:
    """The store's tables in one PostgreSQL database, made or brought up to date on opening."""

    engine = "postgresql"
    shared = True  # by the servers of a cluster: each one's bindings and sessions are marked

    def __init__(self, url: str) -> None:
        self.url = url
        self.db = PostgresConnection(url)
        try:
            with self.db:
                self.db.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))
                self.db.execute(POSTGRES_SCHEMA)
                for table, column, definition in ADDED_COLUMNS:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} "
                                    f"{postgres_types(' ' + definition)}")
        except asyncpg.PostgresError as exc:
            self.db.close()
            raise StoreError(f"cannot open the store {self.describe()}: {exc}") from None
        except BaseException:
            self.db.close()
            raise

    def describe(self) -> str:
        """Where the data is, for a log line: the URL without its password."""
        return re.sub(r"//([^:/@]+):[^@/]*@", r"//\1:***@", self.url)

    def announce_directory_change(self) -> None:
        """Inside the transaction of a change: every server's listener hears it on commit."""
        self.db.execute(f"SELECT pg_notify('{DIRECTORY_CHANNEL}', '')")

    def announce(self, channel: str, payload: str) -> None:
        """Inside a transaction: a notification its listeners hear only if it commits, in the
        order of commits."""
        self.db.execute("SELECT pg_notify(?, ?)", (channel, payload))

    def nonce_secret(self) -> bytes:
        return stored_nonce_secret(self.db)

    def directory_changes(self, executor: object = None) -> Any:
        """What the server awaits to learn of an admin's change: NOTIFYs on a listening
        connection of the server's own loop (`executor` is not needed)."""
        from .changes import NotifiedChanges  # it listens with what this module defines

        return NotifiedChanges(self.url)

    def close(self) -> None:
        self.db.close()
