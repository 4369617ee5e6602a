"""A server on the real store (SQLite file, PostgreSQL) leaves refreshes unwritten and writes
changes at once; a device that refreshed stays online through a crash and in the eyes of a
server that starts after it; a clean stop writes every refresh it skipped."""

from __future__ import annotations

import time

import pytest

from control_server.store import DirectoryStore, StateStore
from protocols.sip.endpoint import Endpoint

from ..waiting import wait_until_async
from .in_process import crash, register, running_server, server_on
from .store_engines import open_store  # noqa: F401  (a fixture: SQLite and PostgreSQL)

INTERVAL = 60.0  # what in_process.register asks for
NAT_MOVED = Endpoint("udp", "127.0.0.1", 5999)


@pytest.fixture
def store(open_store):
    admin = DirectoryStore(open_store())
    admin.add_user("alice", "pw")
    admin.add_user("bob", "pw")
    return open_store


def stored(store, user="alice", *, held=False):
    rows = [b for b in StateStore(store()).bindings(held=held) if b.user == user]
    return rows[0] if rows else None


def device_seen(store, user="alice") -> float | None:
    (row,) = [d for d in DirectoryStore(store()).devices() if d.user == user]
    return row.last_seen


async def written(store, user="alice", *, seen: float | None = None):
    """The row of `user` once the store has it (with that last-seen time, if given)."""
    return await wait_until_async(
        lambda: (row := stored(store, user)) and (seen is None or row.last_seen == seen) and row,
        what=f"{user}'s binding in the store")


async def test_a_refresh_is_not_written_and_a_change_of_flow_is(store, tmp_path):
    async with running_server(store.store, tmp_path, "data") as server:
        registered = time.time()
        assert register(server, at=registered) == 200
        first = await written(store, seen=registered)
        assert first.expires_at == registered + INTERVAL
        # Held one window longer, for the refreshes that may follow unwritten.
        assert stored(store, held=True).expires_at == registered + 2 * INTERVAL

        assert register(server, at=registered + 20) == 200
        assert register(server, "bob", at=registered + 20) == 200
        await written(store, "bob")  # a flush after the refresh: it carried nothing of alice
        assert server.binding("alice", "phone").last_seen == registered + 20
        assert stored(store) == first
        assert device_seen(store) == registered

        assert register(server, source=NAT_MOVED, at=registered + 25) == 200
        moved = await written(store, seen=registered + 25)
        assert moved.source == NAT_MOVED and moved.contact == "sip:alice@127.0.0.1:5999"
        # Three rows of four registrations; a written refresh would have made it four.
        await wait_until_async(lambda: server.counters["store_bindings_written"] == 3,
                               what="three binding rows counted")
        assert server.counters["store_writer_cpu_us"] > 0


async def test_a_clean_stop_writes_the_refreshes_it_skipped(store, tmp_path):
    async with running_server(store.store, tmp_path, "data") as server:
        registered = time.time()
        assert register(server, at=registered) == 200
        await written(store, seen=registered)
        assert register(server, at=registered + 30) == 200
    row = stored(store)
    assert row.last_seen == registered + 30 and row.expires_at == registered + 30 + INTERVAL
    assert device_seen(store) == registered + 30


async def test_a_device_gone_offline_leaves_its_last_refresh_as_its_last_seen_time(store,
                                                                                tmp_path):
    async with running_server(store.store, tmp_path, "data") as server:
        registered = time.time()
        assert register(server, at=registered) == 200
        await written(store, seen=registered)
        assert register(server, at=registered + 20) == 200  # not written
        assert register(server, at=registered + 30, expires=0) == 200
        await wait_until_async(lambda: stored(store) is None, what="the binding deleted")
        assert device_seen(store) == registered + 20


async def test_a_device_that_refreshed_before_a_crash_is_online_after_it(store, tmp_path):
    """It refreshed 45 s before the restart, 55 s after its registration: the store's row is of
    the registration, whose own expiry is past; its pushed-out expiry still holds it."""
    server = server_on(store.store, tmp_path, "data")
    await server.start()
    restart = time.time()
    assert register(server, at=restart - 100) == 200
    await written(store, seen=restart - 100)
    assert register(server, at=restart - 45) == 200
    assert register(server, "bob") == 200
    await written(store, "bob")
    await crash(server)
    row = stored(store)
    assert row.last_seen == restart - 100 and row.expires_at < restart
    assert [b.key for b in StateStore(store()).bindings(restart)] == [("alice", "phone"),
                                                                       ("bob", "phone")]

    # After a crash, the same server; on PostgreSQL, as well another one joining the cluster.
    node = "data" if store.engine == "sqlite" else "two"
    async with running_server(store.store, tmp_path, node) as again:
        loaded = again.binding("alice", "phone")
        assert loaded is not None
        # Held at least until it really expires, and at most one window past that.
        true_expiry = restart - 45 + INTERVAL
        assert true_expiry <= loaded.expires_at <= true_expiry + INTERVAL
