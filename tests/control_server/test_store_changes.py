"""How a server hears that the directory changed: an admin's change through any other connection
is heard, on SQLite by its data version and on PostgreSQL by NOTIFY; the server's own write-behind
is not a change."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import asyncpg
import pytest

from control_server.store import Database, DirectoryStore, PostgresDatabase, StateStore
from control_server.store.postgres import DIRECTORY_CHANNEL

from ..waiting import wait_until_async
from .store_engines import binding, open_store  # noqa: F401  (open_store: a fixture)


@pytest.fixture
def writer():
    executor = ThreadPoolExecutor(1)
    yield executor
    executor.shutdown(wait=True)


async def test_an_admins_change_through_another_connection_is_heard_once(open_store, writer):
    server = open_store()
    DirectoryStore(server).add_user("alice", "pw")
    changes = server.directory_changes(writer)
    await changes.start()
    try:
        DirectoryStore(open_store()).set_disabled("alice", True)
        assert await wait_until_async(changes.changed, what="the change heard", timeout=5)
        assert not await changes.changed()
        changes.again()  # a reload that failed asks for the change again
        assert await changes.changed()
    finally:
        await changes.close()


async def test_on_sqlite_the_servers_own_batch_is_not_a_change(tmp_path, writer):
    server = Database(tmp_path)
    DirectoryStore(server).add_user("alice", "pw")
    changes = server.directory_changes(writer)
    await changes.start()
    StateStore(server).write_batch([binding("alice", "phone")], [], [], [("alice", "phone", 1.0)])
    assert not await changes.changed()
    server.close()


async def test_on_postgresql_an_admins_change_notifies_and_the_servers_batch_does_not(
        postgres_url):
    heard: list[str] = []
    listener = await asyncpg.connect(postgres_url)
    await listener.add_listener(DIRECTORY_CHANNEL, lambda *args: heard.append(args[2]))
    server, admin = PostgresDatabase(postgres_url), PostgresDatabase(postgres_url)
    try:
        DirectoryStore(admin).add_user("alice", "pw")
        await wait_until_async(lambda: heard, what="the admin's NOTIFY", timeout=5)
        StateStore(server).write_batch([binding("alice", "phone")], [], [],
                                       [("alice", "phone", 1.0)])
        DirectoryStore(admin).add_device("alice", "laptop")
        # Notifications arrive in commit order: one from the batch would come before this one.
        await wait_until_async(lambda: len(heard) >= 2, what="the second NOTIFY", timeout=5)
        assert len(heard) == 2
    finally:
        await listener.close()
        server.close()
        admin.close()


async def test_a_listener_that_lost_postgresql_reports_a_change_once_it_is_back(
        postgres, postgres_url):
    server = PostgresDatabase(postgres_url)
    changes = server.directory_changes(None)
    await changes.start()
    try:
        assert not await changes.changed()
        postgres.stop()
        assert not await changes.changed()  # away: nothing to tell yet
        postgres.start()
        # What an admin changed meanwhile was not heard: the first answer after is a change.
        assert await wait_until_async(changes.changed, what="the listener back", timeout=10)
    finally:
        if not postgres.running:  # the cluster serves the tests after this one
            postgres.start()
        await changes.close()
        server.close()
