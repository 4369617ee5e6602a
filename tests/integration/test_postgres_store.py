"""Two `sipsync-server` processes on one PostgreSQL store: a device registered through one is in
the shared store marked with that server, and an admin's change made with `sipsync-admin --store`
reaches the other server within a second."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from control_server.admin.cli import main as admin
from control_server.store import PostgresDatabase, StateStore
from protocols.sip.message import SipResponse, parse_message

from ..control_server.sip_client import answer, build
from ..waiting import wait_until
from .conftest import ServerProcess


def register(port: int, user: str, password: str, device: str) -> SipResponse:
    """One digest REGISTER over UDP, challenge and answer; the final response."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(5)
        mine = udp.getsockname()[1]
        to = f"<sip:{user}@sipsync;device={device}>"
        headers = [f"Contact: <sip:{user}@127.0.0.1:{mine}>", "Expires: 60"]
        first = build("REGISTER", "sip:sipsync", user=user, to=to, headers=headers, cseq=1,
                      port=mine)
        udp.sendto(bytes(first), ("127.0.0.1", port))
        challenge = parse_message(udp.recv(65535))
        credentials = answer(challenge.headers.get("www-authenticate")[0], user=user,
                             password=password, method="REGISTER", uri="sip:sipsync")
        second = build("REGISTER", "sip:sipsync", user=user, to=to,
                       headers=headers + [credentials], cseq=2, port=mine)
        udp.sendto(bytes(second), ("127.0.0.1", port))
        response = parse_message(udp.recv(65535))
    assert isinstance(response, SipResponse)
    return response


@pytest.fixture
def servers(postgres_url, tmp_path):
    started = []
    for node in ("one", "two"):
        (tmp_path / node).mkdir()
        started.append(ServerProcess(tmp_path / node, "--store", postgres_url,
                                     "--node-name", node).start())
    yield started
    for server in started:
        server.stop()


def test_a_device_is_stored_with_its_server_and_an_admins_change_reaches_the_other(
        postgres_url, servers):
    one, two = servers
    run = CliRunner().invoke
    assert run(admin, ["--store", postgres_url, "users", "add", "alice", "--password",
                       "pw"]).exit_code == 0
    # The servers hear of the new user within a second.
    wait_until(lambda: register(one.port, "alice", "pw", "phone").status_code == 200,
               what="alice registered through server one", timeout=5, interval=0.2)
    state = StateStore(PostgresDatabase(postgres_url))
    try:
        wait_until(lambda: [(b.key, b.node) for b in state.bindings()] == [
            (("alice", "phone"), "one")], what="the binding in the store", timeout=5)
        assert run(admin, ["--store", postgres_url, "devices", "disable",
                           "alice/phone"]).exit_code == 0
        wait_until(lambda: register(two.port, "alice", "pw", "phone").status_code == 403,
                   what="server two refusing the disabled device", timeout=5, interval=0.2)
    finally:
        state.close()
