"""Presence through the balancer: the server's NOTIFYs find a device's own flow (its UDP address
or its TCP connection) by the way the balancer recorded its SUBSCRIBE."""

from __future__ import annotations

import asyncio
import re

import pytest

from peer.config import PeerConfig
from peer.peer import Peer

from ..waiting import wait_until_async
from .sipp_devices import numbered_users, query, users_on_two_servers

pytestmark = pytest.mark.sipp

PASSWORD = "alice-pw"


def device(servers, tmp_path, name: str, transport: str = "udp", user: str = "alice",
           password: str = PASSWORD) -> Peer:
    return Peer(PeerConfig(data_dir=tmp_path / f"{user}-{name}", server=f"127.0.0.1:{servers.port}",
                           transport=transport, user=user, password=password, device=name))


async def until(peer: Peer, predicate, what: str, timeout: float = 15.0) -> None:
    """Wait for the presence table to say so, woken by each NOTIFY."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await peer.presence.changed()
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}") from None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_device_behind_the_balancer_sees_its_users_other_device_come_and_go(
        cluster, tmp_path, transport):
    servers = cluster([("alice", PASSWORD)])
    laptop = device(servers, tmp_path, "laptop", transport)
    async with laptop:
        await until(laptop, lambda: laptop.presence.subscribed, "the laptop subscribed")
        async with device(servers, tmp_path, "phone", transport):
            await until(laptop, lambda: laptop.presence.online("alice/phone"), "the phone online")
        await until(laptop, lambda: not laptop.presence.online("alice/phone"), "the phone gone")


@pytest.mark.parametrize("workers_on", [None, 0, 1],
                         ids=["one-process-each", "watcher-on-workers", "owner-on-workers"])
async def test_a_device_sees_a_shared_device_registered_on_the_other_server(
        cluster, tmp_path, postgres_url, workers_on):
    """On one shared store the watcher's server hears of the binding over LISTEN/NOTIFY; a
    server of two workers hears and tells through its supervisor (cluster_bridge)."""
    users = numbered_users(20)
    options = [(), ()]
    if workers_on is not None:
        options[workers_on] = ("--workers", "2")
    servers = cluster(users, shares=tuple((name, "tablet", other) for name, _ in users
                                          for other, _ in users if other != name),
                      store_url=postgres_url, options_each=tuple(options))
    watcher, owner = await asyncio.to_thread(users_on_two_servers, servers, tmp_path, users)
    passwords = dict(users)
    laptop = device(servers, tmp_path, "laptop", user=watcher, password=passwords[watcher])
    async with laptop:
        await until(laptop, lambda: laptop.presence.subscribed, "the laptop subscribed")
        async with device(servers, tmp_path, "tablet", user=owner, password=passwords[owner]):
            await until(laptop, lambda: laptop.presence.online(f"{owner}/tablet"),
                        "the shared tablet online", timeout=10)
        await until(laptop, lambda: not laptop.presence.online(f"{owner}/tablet"),
                    "the shared tablet gone", timeout=10)
    # The store names the server, never a worker.
    rows = await asyncio.to_thread(query, postgres_url, "SELECT node FROM bindings")
    assert {row["node"] for row in rows} <= {server.data_dir.name for server in servers.servers}


async def stop_the_watchers_server(servers, tmp_path, postgres_url, stop) -> None:
    """A laptop watching its user's phone; `stop(home, other)` ends the server holding the
    laptop's subscription. The laptop must subscribe again, through the other server, and see
    the phone go when it unregisters there."""
    laptop = device(servers, tmp_path, "laptop")
    async with laptop:
        await until(laptop, lambda: laptop.presence.subscribed, "the laptop subscribed")
        async with device(servers, tmp_path, "phone"):
            await until(laptop, lambda: laptop.presence.online("alice/phone"), "the phone online")
            held = await wait_until_async(
                lambda: asyncio.to_thread(query, postgres_url, "SELECT node FROM subscriptions"),
                what="the laptop's subscription in the store")
            by_name = {server.data_dir.name: server for server in servers.servers}
            home = by_name[held[0]["node"]]
            other = next(server for server in servers.servers if server is not home)

            await asyncio.to_thread(stop, home, other)
            await wait_until_async(
                lambda: asyncio.to_thread(
                    query, postgres_url,
                    f"SELECT id FROM subscriptions WHERE node = '{other.data_dir.name}'"),
                what="the laptop subscribed again, through the other server", timeout=20)
        await until(laptop, lambda: not laptop.presence.online("alice/phone"),
                    "the phone gone, seen by the laptop", timeout=20)


async def test_a_watcher_whose_server_was_killed_is_told_and_watches_again_through_the_other(
        cluster, tmp_path, postgres_url):
    """The stored subscription names its server; the server that takes it for gone tells the
    watcher its subscription ended, and the watcher's new one sees the next change."""
    servers = cluster([("alice", PASSWORD)], store_url=postgres_url)
    await stop_the_watchers_server(servers, tmp_path, postgres_url,
                                   lambda home, other: home.kill())


@pytest.mark.parametrize("options", [(), ("--workers", "2")], ids=["one-process", "workers"])
async def test_a_watcher_whose_server_stops_cleanly_is_handed_over_at_once(
        cluster, tmp_path, postgres_url, options):
    """SIGTERM, as a rolling restart stops a server: it takes itself for gone in the store
    rather than waiting to be found silent, tells its watchers to subscribe again, and turns
    the new SUBSCRIBEs away with 503, which the balancer sends on to the other server. With
    workers, each hands over the watchers it holds."""
    servers = cluster([("alice", PASSWORD)], store_url=postgres_url, server_options=options)

    def stop(home, other) -> None:
        home.stop()
        row = next(r for r in query(postgres_url, "SELECT * FROM servers")
                   if r["node"] == home.data_dir.name)
        assert row["gone_at"] is not None  # before anyone could have found it silent
        assert row["gone_at"] - row["alive_at"] < 3.0
        handed = re.findall(r"(\d+) subscription\(s\) handed over", home.logs())
        assert sum(map(int, handed)) == 2  # the laptop's and the phone's
        assert "left the cluster" in home.logs()

    await stop_the_watchers_server(servers, tmp_path, postgres_url, stop)
