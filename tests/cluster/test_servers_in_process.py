"""Two control servers in process on one real PostgreSQL, each with its heartbeat and feed:
a PostgreSQL restart longer than the timeout makes nobody gone, and a server that hears itself
announced gone keeps what it holds."""

from __future__ import annotations

import asyncio
import time

from control_server.cluster_feed import NodeGone
from control_server.config import ServerConfig
from control_server.liveness import HeartbeatPolicy
from control_server.location import Binding
from control_server.server import ControlServer
from control_server.server_link import ServerLink
from control_server.store import StateStore, open_database
from control_server.store.membership import MembershipStore
from protocols.sip.endpoint import Endpoint

from ..waiting import wait_until_async
from .test_membership_store import session
from .unreachable_store import Unreachable

POLICY = HeartbeatPolicy(interval=0.2, missed=3)


def linked_server(url: str, tmp_path, node: str) -> ControlServer:
    config = ServerConfig(data_dir=tmp_path / node, store=url, sip_port=0, admin=False,
                          node_name=node)
    return ControlServer(config, ServerLink(url, node, POLICY))


def tcp_binding(device: str, node: str) -> Binding:
    return Binding("ann", device, "sip:ann@127.0.0.1:5070;transport=tcp",
                   Endpoint("tcp", "127.0.0.1", 5070), "phone", time.time(), time.time(),
                   time.time() + 60, "c1", 1, node=node)


def judged_for_a_timeout(server: ControlServer) -> bool:
    """The server's heartbeats have run without a gap for longer than the timeout: any other
    silent that long would have been taken for gone by now."""
    watch = server.cluster.heartbeat.watch
    return (watch.since is not None and watch.last is not None
            and watch.last - watch.since > 2 * POLICY.timeout)


async def test_a_postgresql_restart_longer_than_the_timeout_takes_nobody_for_gone(
        postgres, postgres_url, tmp_path):
    """Every heartbeat stops at once; one server is back a moment before the other, as their
    retries never line up: the first gives the other its timeout before judging it."""
    one, two = (linked_server(postgres_url, tmp_path, node) for node in ("one", "two"))
    await one.start()
    await two.start()
    # A session of two's in the store: what taking two for gone would end.
    StateStore(open_database("", postgres_url)).write_batch(
        [], [], [session("two-open")], [], "two")
    try:
        await asyncio.to_thread(postgres.stop)
        await wait_until_async(lambda: one.cluster.heartbeat.watch.last is None
                               and two.cluster.heartbeat.watch.last is None,
                               what="both heartbeats failing", timeout=10)
        await asyncio.sleep(POLICY.timeout * 3)  # the outage: three timeouts long
        late = Unreachable.around(two.cluster.heartbeat)
        await asyncio.to_thread(postgres.start)
        await wait_until_async(lambda: one.cluster.heartbeat.watch.last is not None,
                               what="the first server beating again", timeout=20)
        await asyncio.sleep(POLICY.timeout / 2)  # the second is back half a timeout later
        late.cut = False
        await wait_until_async(lambda: judged_for_a_timeout(one) and judged_for_a_timeout(two),
                               what="both servers beating again for a while", timeout=20)
        members = MembershipStore(open_database("", postgres_url))
        _, rows = members.members()
        assert [(row.node, row.gone_at) for row in rows] == [("one", None), ("two", None)]
        assert [r.call_id for r in StateStore(members.database).sessions(history=False)] == [
            "two-open"]
    finally:
        if not postgres.running:  # the cluster serves the tests after this one
            postgres.start()
        await one.stop()
        await two.stop()


async def test_a_server_that_hears_itself_announced_gone_keeps_its_connections(
        postgres_url, tmp_path):
    one = linked_server(postgres_url, tmp_path, "one")
    await one.start()
    try:
        one.location.put(tcp_binding("mine", "one"))
        one.location.put(tcp_binding("theirs", "two"))
        one.apply_shared(NodeGone("one"))  # the others took us for gone: we are not
        one.apply_shared(NodeGone("two"))
        assert [b.device for b in one.online_bindings()] == ["mine"]
    finally:
        await one.stop()
