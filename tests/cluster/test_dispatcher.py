"""sipsync servers behind Kamailio's dispatcher (deploy/kamailio): devices spread over the
servers by a hash, health checks with OPTIONS, failover to the next server, a dead server's
devices re-registering through another, and sessions set up through the balancer."""

from __future__ import annotations

import json

import pytest

from ..integration.conftest import free_port, run_sipp, write_users_csv
from ..waiting import wait_until
from .balancer import Balancer
from .servers import ClusterServer, provision
from .sipp_devices import (
    call,
    homes,
    numbered_users,
    register,
    register_device,
    start_callee,
    stored,
    users_on_two_servers,
)
from .unavailable_server import UnavailableServer

pytestmark = pytest.mark.sipp

# A ping interval no test outlives: the balancer learns of a dead server only by failing over.
NO_HEALTH_CHECKS = 3600


def test_a_thousand_devices_registered_through_the_balancer_are_spread_over_both_servers(
        cluster, tmp_path):
    users = numbered_users(1000)
    servers = cluster(users)
    register(servers.port, users, tmp_path, rate=250)

    online = servers.wait_online(1000)
    assert all(count > 0 for count in online), online
    # The hash spreads evenly enough that neither server carries almost everything.
    assert min(online) > 300, online
    # Each device registered once, with one server: the balancer sent its retry to the server
    # that challenged it.
    assert sum(server.metric("sipsync_registrations_total") for server in servers.servers) == 1000


def test_tcp_devices_register_through_the_balancer_on_both_servers(cluster, tmp_path):
    users = numbered_users(100)
    servers = cluster(users)
    register(servers.port, users, tmp_path, rate=100, transport="t1")
    online = servers.wait_online(100)
    assert all(count > 0 for count in online), online


def test_the_balancer_health_checks_every_server_with_options(cluster):
    servers = cluster(numbered_users(1))
    wait_until(lambda: all(server.options_received() >= 2 for server in servers.servers),
               what="two OPTIONS health checks at each server")
    assert all(d.active for d in servers.balancer.destinations().values())


def test_a_register_to_a_killed_server_fails_over_to_the_next_one(cluster, tmp_path):
    users = numbered_users(100)
    servers = cluster(users, ping_interval=NO_HEALTH_CHECKS)
    devices = free_port()
    register(servers.port, users, tmp_path, local_port=devices)
    placed = homes(servers, users)
    dead, alive = servers.servers
    assert 0 in placed.values() and 1 in placed.values()

    dead.kill()
    # The balancer does not know yet: each REGISTER first goes to the dead server, and on its
    # silence to the next in the set.
    register(servers.port, users, tmp_path, local_port=devices)
    wait_until(lambda: alive.online() == 100, what="every device online on the live server")
    assert not servers.balancer.destinations()[dead.port].active
    assert "does not answer: marked down" in servers.balancer.logs()


@pytest.mark.parametrize("status", [503, 500])
def test_a_server_answering_503_hands_its_devices_to_the_next_one_but_a_500_is_an_answer(
        tmp_path, status):
    users = numbered_users(40)
    data_dir = tmp_path / "server"
    provision(data_dir, users)
    server = ClusterServer(data_dir).start()
    try:
        with UnavailableServer(status) as unavailable:
            balancer = Balancer(tmp_path / "balancer", free_port(),
                                [unavailable.port, server.port]).start()
            try:
                csv = write_users_csv(tmp_path / "users.csv", users)
                code, output = run_sipp("register.xml", balancer.port, "-inf", str(csv),
                                        "-r", "100", "-m", "40", cwd=tmp_path)
                assert unavailable.refused, "no REGISTER hashed to the unavailable server"
                if status == 503:
                    assert code == 0, output
                    wait_until(lambda: server.online() == 40, what="all 40 devices online")
                else:
                    # The device gets the 500: retrying elsewhere would hide a real answer.
                    assert code != 0
                    assert server.online() == 40 - len(unavailable.refused)
                # Still answering its health checks, it stays in the set either way.
                assert balancer.destinations()[unavailable.port].active
            finally:
                balancer.stop()
    finally:
        server.stop()


def test_a_killed_servers_devices_come_back_through_the_other_and_return_when_it_is_back(
        cluster, tmp_path):
    users = numbered_users(200)
    servers = cluster(users)
    devices = free_port()
    register(servers.port, users, tmp_path, local_port=devices)
    placed = homes(servers, users)
    first, second = servers.servers
    first_users = {name for name, index in placed.items() if index == 0}
    assert first_users and len(first_users) < 200

    first.kill()
    servers.balancer.wait_for_state(first.port, active=False)
    # Their next REGISTER (the keepalive) brings the first server's devices to the second.
    register(servers.port, users, tmp_path, local_port=devices)
    wait_until(lambda: second.online() == 200, what="all 200 devices online on the second")

    first.start()
    servers.balancer.wait_for_state(first.port, active=True)
    register(servers.port, users, tmp_path, local_port=devices)
    # Back in the set, the first server gets its devices again, and only those.
    wait_until(lambda: first.metric("sipsync_registrations_total") == len(first_users),
               what="the first server's devices registering with it again")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_peer_daemons_register_through_the_balancer_and_sync_a_folder(cluster, tmp_path,
                                                                      transport):
    from ..e2e.conftest import Device, peer_cli

    servers = cluster([("alice", "alice-pw")])
    devices = []
    for name in ("laptop", "phone"):
        device = Device(tmp_path, "alice", "alice-pw", name, servers.port)
        # The same device set up again, over the transport under test.
        result = peer_cli(device.data_dir, "init", "--server", f"127.0.0.1:{servers.port}",
                          "--user", "alice", "--device", name, "--password", "alice-pw",
                          "--transport", transport)
        assert result.returncode == 0, result.stderr
        devices.append(device)
    laptop, phone = devices
    source = laptop.dataset("photos", tmp_path / "laptop-photos")
    target = phone.dataset("photos", tmp_path / "phone-photos")
    (source / "a.txt").write_bytes(b"through the balancer")
    laptop.start(), phone.start()
    try:
        # One user's devices share a server: the hash is over the user.
        wait_until(lambda: sorted(servers.online()) == [0, 2], what="both devices on one server")
        result = laptop.invite("alice/phone", "--dataset", "photos", "--json")
        assert result.returncode == 0, result.stdout + result.stderr + laptop.logs()
        assert json.loads(result.stdout)["ok"]
        assert (target / "a.txt").read_bytes() == b"through the balancer"
        home = next(s for s in servers.servers if s.online() == 2)
        bindings = stored(home.data_dir, "online")
        assert {row["transport"] for row in bindings} == {"udp"}  # balancer to server
        assert all(f"transport={transport}" in row["contact"].lower() for row in bindings)
        if transport == "tcp":
            # A device's connection comes from a port of its own, not its Contact's: the
            # balancer's alias of that connection is what led the INVITE to the phone.
            assert all(";alias=127.0.0.1~" in row["contact"] for row in bindings), bindings
        session = wait_until(lambda: stored(home.data_dir, "sessions", "--history"),
                             what="the session in its server's history")[0]
        assert (session["caller"], session["callee"]) == ("alice/laptop", "alice/phone")
        assert (session["state"], session["reason"]) == ("ended", "ended by BYE")
    finally:
        laptop.stop(), phone.stop()
        print("---- laptop\n" + laptop.logs()[-3000:] + "\n---- phone\n" + phone.logs()[-3000:])


def test_a_peer_daemon_whose_server_is_killed_is_back_online_through_the_other_within_a_keepalive(
        cluster, tmp_path):
    from ..e2e.conftest import Device

    servers = cluster([("alice", "alice-pw")])
    keepalive = 20  # the server's shortest registration: the daemon refreshes 10 s before
    phone = Device(tmp_path, "alice", "alice-pw", "phone", servers.port, expires=keepalive)
    phone.start()
    try:
        wait_until(lambda: sum(servers.online()) == 1, what="the phone online")
        home, other = sorted(servers.servers, key=lambda s: -s.online())
        home.kill()
        wait_until(lambda: other.online() == 1, timeout=keepalive,
                   what="the phone online through the other server")
    finally:
        phone.stop()
        print("---- phone\n" + phone.logs()[-3000:])


def test_a_flood_from_one_address_is_dropped_at_the_balancer_while_another_address_registers(
        cluster, tmp_path):
    users = numbered_users(200)
    servers = cluster(users + [("witness", "witness-pw")], flood_requests=20)
    csv = write_users_csv(tmp_path / "flood.csv", users)
    # 200 requests a second from 127.0.0.1, ten times the limit; each REGISTER waits 2 s at most.
    code, output = run_sipp("register.xml", servers.port, "-inf", str(csv), "-r", "100",
                            "-m", "200", "-recv_timeout", "2000", cwd=tmp_path)
    assert code != 0, output
    assert "flood from 127.0.0.1: dropped" in servers.balancer.logs()
    assert sum(servers.online()) < 200

    witness = write_users_csv(tmp_path / "witness.csv", [("witness", "witness-pw")])
    code, output = run_sipp("register.xml", servers.port, "-inf", str(witness), "-m", "1",
                            "-i", "127.0.0.2", cwd=tmp_path)
    assert code == 0, output
    wait_until(lambda: any(row["user"] == "witness" for server in servers.servers
                           for row in stored(server.data_dir, "online")),
               what="the witness online")


def test_a_call_between_devices_on_the_same_server_completes_through_the_balancer(
        cluster, tmp_path):
    servers = cluster([("carol", "carol-pw")])
    uas_port = free_port()
    register_device(servers.port, tmp_path, "carol", "carol-pw", "phone", uas_port)
    callee = start_callee(servers.port, tmp_path, uas_port)
    try:
        code, output = call(servers.port, tmp_path, ("carol", "carol-pw"), "carol", "phone")
        assert code == 0, output
        assert callee.wait(timeout=30) == 0, callee.stdout.read().decode()
    finally:
        if callee.poll() is None:
            callee.kill()
            callee.wait()
    home = next(s for s in servers.servers if s.online() == 1)
    session = wait_until(lambda: stored(home.data_dir, "sessions", "--history"),
                         what="the session in history")[0]
    # The BYE went through the balancer to the server and on to the callee.
    assert session["callee"] == "carol/phone"
    assert (session["state"], session["reason"]) == ("ended", "ended by BYE")


def test_a_call_to_a_device_on_the_other_server_reaches_it_through_the_callees_server(
        cluster, tmp_path):
    users = numbered_users(20)
    servers = cluster(users, shares=tuple((name, "phone", other) for name, _ in users
                                        for other, _ in users if other != name))
    caller, callee = users_on_two_servers(servers, tmp_path, users)
    passwords = dict(users)
    uas_port = free_port()
    register_device(servers.port, tmp_path, callee, passwords[callee], "phone", uas_port)
    answering = start_callee(servers.port, tmp_path, uas_port)
    try:
        code, output = call(servers.port, tmp_path, (caller, passwords[caller]), callee, "phone")
        assert code == 0, output
        assert answering.wait(timeout=30) == 0, answering.stdout.read().decode()
    finally:
        if answering.poll() is None:
            answering.kill()
            answering.wait()
    # The INVITE went where the callee is: the callee's server holds the session.
    session = wait_until(lambda: stored(servers.servers[1].data_dir, "sessions", "--history"),
                         what="the session in the callee's server's history")[0]
    assert (session["caller"], session["callee"]) == (f"{caller}/laptop", f"{callee}/phone")
    assert (session["state"], session["reason"]) == ("ended", "ended by BYE")


def test_a_device_that_moved_during_an_outage_is_reachable_when_its_server_is_back(
        cluster, tmp_path, postgres_url):
    """On one shared store the callee's own server, back, knows the binding the other made."""
    users = numbered_users(20)
    servers = cluster(users, shares=tuple((name, "phone", other) for name, _ in users
                                          for other, _ in users if other != name),
                      store_url=postgres_url)
    caller, callee = users_on_two_servers(servers, tmp_path, users)
    passwords = dict(users)
    home = servers.servers[1]
    home.kill()
    servers.balancer.wait_for_state(home.port, active=False)
    # The callee's phone registers during the outage: through the other server.
    uas_port = free_port()
    register_device(servers.port, tmp_path, callee, passwords[callee], "phone", uas_port)
    home.start()
    servers.balancer.wait_for_state(home.port, active=True)

    # Its INVITE goes to the callee's own server again, which learnt the registration the
    # other server made from the store they share.
    answering = start_callee(servers.port, tmp_path, uas_port)
    try:
        code, output = call(servers.port, tmp_path, (caller, passwords[caller]), callee, "phone")
    finally:
        if answering.poll() is None:
            answering.kill()
            answering.wait()
    assert code == 0, output

