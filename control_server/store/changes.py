""""The directory changed": how a server learns that an admin, through any connection or any
server of a cluster, changed users, devices or shares, so that it reloads them.

On SQLite each directory change moves a version in the `meta` table in its own transaction, and
the server reads it each second. On PostgreSQL each directory change NOTIFYs a channel in its own
transaction, and every server LISTENs on a connection of its own; the server's own write-behind
(bindings, last-seen times, devices a first REGISTER made) notifies nobody, so that thousands of
registrations do not make every server reload the directory."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from typing import Protocol

import asyncpg

from .postgres import CONNECTION_LOST, CONNECT_SECONDS, DIRECTORY_CHANNEL


class DirectoryChanges(Protocol):
    async def start(self) -> None: ...

    async def changed(self) -> bool:
        """Whether the directory changed since the last time this answered True."""

    def again(self) -> None:
        """The last change could not be read: answer True next time too."""

    async def close(self) -> None: ...


class DirectoryVersionChanges:
    """SQLite: the directory's version, read on the server's writer thread. Not SQLite's data
    version: that moves with every other connection's commit, and the workers of one server
    write their bindings each on its own connection, so under traffic every worker would
    reload the whole directory each second."""

    def __init__(self, database, executor: Executor) -> None:
        self._database = database
        self._executor = executor
        self._version: int | None = None

    async def _read(self) -> int:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._database.directory_version)

    async def start(self) -> None:
        self._version = await self._read()

    async def changed(self) -> bool:
        version = await self._read()
        if version == self._version:
            return False
        self._version = version
        return True

    def again(self) -> None:
        self._version = None

    async def close(self) -> None:
        pass


class NotifiedChanges:
    """PostgreSQL: a listening connection on the server's own loop. When it is lost, the changes
    made meanwhile are unknown: the first answer after it is back is True."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: asyncpg.Connection | None = None
        self._pending = False

    def _heard(self, *_: object) -> None:
        self._pending = True

    async def start(self) -> None:
        await self._listen()

    async def _listen(self) -> bool:
        try:
            connection = await asyncpg.connect(self._url, timeout=CONNECT_SECONDS)
            await connection.add_listener(DIRECTORY_CHANNEL, self._heard)
        except CONNECTION_LOST:
            return False
        self._connection = connection
        return True

    async def changed(self) -> bool:
        if self._connection is None or self._connection.is_closed():
            self._connection = None
            if not await self._listen():
                return False
            self._pending = True
        pending, self._pending = self._pending, False
        return pending

    def again(self) -> None:
        self._pending = True

    async def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed():
            try:
                await self._connection.close(timeout=CONNECT_SECONDS)
            except CONNECTION_LOST:
                self._connection.terminate()
        self._connection = None
