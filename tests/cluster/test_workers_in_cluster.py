"""A server of two workers (`--workers 2`) as one server of a cluster on PostgreSQL, beside a
server of one process, behind the real Kamailio dispatcher: its supervisor speaks for it
(`control_server/cluster_bridge.py`). The others hear its workers' bindings under its name, it
hears theirs, and its heartbeat takes a killed server for gone as any server's does."""

from __future__ import annotations

import asyncio

import pytest

from ..integration.conftest import free_port
from ..waiting import wait_until
from .sipp_devices import (call, numbered_users, query, register_device, start_callee,
                           users_on_two_servers)
from .test_presence_through_balancer import device, until

pytestmark = pytest.mark.sipp

WORKERS = ("--workers", "2")


@pytest.mark.parametrize("workers_on", [0, 1], ids=["watcher-on-workers", "owner-on-workers"])
async def test_a_device_sees_a_shared_device_on_the_other_server_whichever_runs_workers(
        cluster, tmp_path, postgres_url, workers_on):
    users = numbered_users(20)
    options = [(), ()]
    options[workers_on] = WORKERS
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
    nodes = {row["node"] for row in rows}
    assert nodes <= {server.data_dir.name for server in servers.servers}, nodes


def test_a_killed_server_is_taken_for_gone_by_the_workers_beside_it(cluster, tmp_path,
                                                                     postgres_url):
    """Its open session is ended in the store by the workers' server, whose admin API stops
    showing it, and the workers' own row beats."""
    servers = cluster([("carol", "carol-pw")], store_url=postgres_url,
                      options_each=((), WORKERS))
    uas_port = free_port()
    register_device(servers.port, tmp_path, "carol", "carol-pw", "phone", uas_port)
    callee = start_callee(servers.port, tmp_path, uas_port)
    caller = call(servers.port, tmp_path, ("carol", "carol-pw"), "carol", "phone", hold=60,
                  background=True)
    sessions = "SELECT call_id, state, reason, node FROM sessions"
    try:
        session = wait_until(
            lambda: [r for r in query(postgres_url, sessions) if r["state"] == "established"],
            what="the call established in the store")[0]
        by_name = {server.data_dir.name: server for server in servers.servers}
        home = by_name[session["node"]]
        other = next(server for server in servers.servers if server is not home)
        wait_until(lambda: [s for s in other.api("/api/sessions")
                            if s["call_id"] == session["call_id"]],
                   what="the session in the other server's admin API")
        home.kill()
        ended = wait_until(
            lambda: [r for r in query(postgres_url, sessions) if r["state"] == "failed"],
            what="the killed server's session ended in the store", timeout=20)[0]
        assert ended["reason"] == f"server {home.data_dir.name} stopped"
        wait_until(lambda: other.api("/api/sessions") == [], timeout=5,
                   what="the session gone from the other server's admin API")
        rows = {r["node"]: r for r in query(postgres_url, "SELECT * FROM servers")}
        assert rows[other.data_dir.name]["gone_at"] is None
    finally:
        for process in (caller, callee):
            if process.poll() is None:
                process.kill()
                process.wait()
