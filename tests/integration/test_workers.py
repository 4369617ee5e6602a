"""`sipsync-server --workers 2`: two processes on one SIP port with one state. Registrations
spread over both, calls between devices registered through different workers, a nonce-count
replayed to the other worker, an admin change seen by both, a killed worker replaced."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from control_server.shared_state import owner_of
from control_server.store import DirectoryStore

from ..admin.conftest import SIP_USERS, start_admin_server, stop_admin_server
from ..cluster.servers import ClusterServer, provision
from ..cluster.sipp_devices import query
from ..waiting import wait_until
from .conftest import ServerProcess, run_sipp, write_users_csv
from .flow_phone import FlowPhone

pytestmark = pytest.mark.sipp


def call_id_owned_by(worker: int, tag: str, workers: int = 2) -> str:
    """A Call-ID that the worker of that index handles, whichever socket reads it."""
    n = 0
    while owner_of(f"{tag}-{n}@test".encode(), workers) != worker:
        n += 1
    return f"{tag}-{n}@test"


def admin(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=30,
    )


def online_in_log(server: ServerProcess, worker: str) -> set[str]:
    """The user/device pairs a worker's log says it bound."""
    return set(re.findall(rf"INFO {worker} sipsync\.server: (\S+) online at", server.logs()))


@pytest.fixture
def workers(data_dir):
    started = []

    def start(users=(), *options: str) -> ServerProcess:
        store = DirectoryStore.open(data_dir)
        store.import_users(list(users))
        store.close()
        process = ServerProcess(data_dir, "--workers", "2", *options).start()
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


def test_registrations_from_one_sipp_spread_over_both_workers(data_dir, tmp_path, workers):
    users = [(f"user{i}", f"pw{i}") for i in range(1, 201)]
    server = workers(users)
    csv = write_users_csv(tmp_path / "users.csv", users)
    code, output = run_sipp("register.xml", server.port, "-inf", str(csv),
                            "-r", "200", "-m", "200", cwd=tmp_path)
    assert code == 0, output
    bound = wait_until(lambda: online_in_log(server, "w0") | online_in_log(server, "w1")
                       if len(online_in_log(server, "w0") | online_in_log(server, "w1")) == 200
                       else None, what="200 devices online")
    assert {key.split("/")[0] for key in bound} == {name for name, _ in users}
    # One sipp, one source address: both workers still did their share.
    assert len(online_in_log(server, "w0")) > 40 and len(online_in_log(server, "w1")) > 40


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_call_reaches_a_device_registered_through_the_other_worker(
        data_dir, workers, transport):
    server = workers([("ann", "ann-pw")])
    callee = FlowPhone(server.port, transport)
    caller = FlowPhone(server.port, transport)
    try:
        assert callee.register("ann", "ann-pw", "phone",
                               call_id_owned_by(0, "reg-phone")).status_code == 200
        assert caller.register("ann", "ann-pw", "laptop",
                               call_id_owned_by(1, "reg-laptop")).status_code == 200
        assert "ann/phone" in online_in_log(server, "w0")
        call_id = call_id_owned_by(1, "call")
        answered = []
        thread = threading.Thread(target=lambda: answered.append(callee.answer_call()))
        thread.start()
        try:
            answer = caller.call("ann-pw", "ann/phone", call_id)
            assert answer.status_code == 200
            assert caller.hang_up().status_code == 200
        finally:
            thread.join(timeout=15)
        assert answered and answered[0].call_id == call_id
    finally:
        caller.close()
        callee.close()

    def ended():
        result = admin(data_dir, "sessions", "--history", "--json")
        return call_id in result.stdout and '"ended"' in result.stdout

    wait_until(ended, what="the session ended in history")


def test_a_replayed_nonce_count_is_refused_by_either_worker(data_dir, workers):
    server = workers([("ann", "ann-pw")])
    phone = FlowPhone(server.port)
    try:
        call_id = call_id_owned_by(0, "reg-replay")
        assert phone.register("ann", "ann-pw", "laptop", call_id).status_code == 200
        replay = phone.last_register
        # The same request again, as an eavesdropper would send it: the worker that counted
        # the nonce refuses it, whichever socket reads it.
        phone.send(replay.replace(b"branch=z9hG4bK", b"branch=z9hG4bKreplay"))
        assert phone.final("REGISTER").status_code == 401
        # With a Call-ID the other worker owns: that worker never saw the nonce and does not
        # take it (a fresh challenge, stale), so no second count anywhere.
        other = call_id_owned_by(1, "reg-replay")
        moved = replay.replace(call_id.encode(), other.encode())
        phone.send(moved.replace(b"branch=z9hG4bK", b"branch=z9hG4bKmoved"))
        refused = phone.final("REGISTER")
        assert refused.status_code == 401
        assert "stale=true" in " ".join(refused.headers.get("www-authenticate"))
    finally:
        phone.close()
    assert "nonce-count replayed" in server.logs()


def test_a_device_disabled_by_an_admin_is_dropped_by_both_workers(data_dir, workers):
    server = workers([("ann", "ann-pw")])
    phones = [FlowPhone(server.port), FlowPhone(server.port)]
    try:
        assert phones[0].register("ann", "ann-pw", "laptop",
                                  call_id_owned_by(0, "reg-a")).status_code == 200
        assert phones[1].register("ann", "ann-pw", "phone",
                                  call_id_owned_by(1, "reg-b")).status_code == 200
        # Devices a REGISTER created are written behind: the admin finds them once stored.
        wait_until(lambda: admin(data_dir, "online", "--json").stdout.count('"device"') == 2,
                   what="both devices in the store")
        result = admin(data_dir, "devices", "disable", "ann/phone")
        assert result.returncode == 0, result.stderr + result.stdout
        wait_until(lambda: server.logs().count("ann/phone disabled by an admin") >= 2,
                   what="both workers dropping ann/phone")
        # Either worker now refuses it.
        for worker in (0, 1):
            answer = phones[1].register("ann", "ann-pw", "phone",
                                        call_id_owned_by(worker, f"again{worker}"))
            assert answer.status_code == 403
    finally:
        for phone in phones:
            phone.close()


def test_a_killed_worker_is_replaced_and_its_devices_come_back(data_dir, workers):
    server = workers([("ann", "ann-pw")])
    laptop, phone = FlowPhone(server.port), FlowPhone(server.port, "tcp")
    try:
        assert laptop.register("ann", "ann-pw", "laptop",
                               call_id_owned_by(0, "laptop")).status_code == 200
        assert phone.register("ann", "ann-pw", "phone",
                              call_id_owned_by(1, "phone")).status_code == 200
        started = re.compile(r"worker w1 started \(pid (\d+)\)")
        first = started.findall(server.logs())
        os.kill(int(first[0]), signal.SIGKILL)
        wait_until(lambda: server.logs().count("INFO w1 sipsync.server: SIP on") >= 2,
                   what="a new w1 serving")
        assert len(started.findall(server.logs())) == 2
        phone.close()
        phone = FlowPhone(server.port, "tcp")  # the device reconnects and registers again
        answer = phone.register("ann", "ann-pw", "phone", call_id_owned_by(1, "phone-again"))
        assert answer.status_code == 200
        # The new w1 answers with every binding of the user: the laptop bound through w0 too.
        contacts = " ".join(answer.headers.get("contact"))
        assert f":{laptop.port};" in contacts and f":{phone.port};" in contacts
    finally:
        laptop.close()
        phone.close()


def test_the_sessions_of_a_killed_worker_are_filed_as_failed(data_dir, workers):
    server = workers([("ann", "ann-pw")])
    callee, caller = FlowPhone(server.port), FlowPhone(server.port)
    try:
        assert callee.register("ann", "ann-pw", "phone",
                               call_id_owned_by(0, "reg-phone")).status_code == 200
        assert caller.register("ann", "ann-pw", "laptop",
                               call_id_owned_by(0, "reg-laptop")).status_code == 200
        call_id = call_id_owned_by(1, "doomed")
        answered = []
        thread = threading.Thread(target=lambda: answered.append(callee.answer_invite()))
        thread.start()
        try:
            assert caller.call("ann-pw", "ann/phone", call_id).status_code == 200
        finally:
            thread.join(timeout=15)
        assert answered
        # Once the store holds it as active, the worker running it dies.
        wait_until(lambda: call_id in admin(data_dir, "sessions", "--json").stdout,
                   what="the session active in the store")
        pid = re.search(r"worker w1 started \(pid (\d+)\)", server.logs()).group(1)
        os.kill(int(pid), signal.SIGKILL)

        def filed():
            result = admin(data_dir, "sessions", "--history", "--json")
            return call_id in result.stdout and "worker w1 stopped" in result.stdout

        wait_until(filed, what="the session filed as failed")
    finally:
        caller.close()
        callee.close()


def test_one_admin_api_shows_the_devices_and_sums_the_counters_of_both_workers(tmp_path):
    server = start_admin_server(tmp_path / "data", workers=2)
    (user, password), (other, other_password) = SIP_USERS[:2]
    phones = [FlowPhone(server.sip_port), FlowPhone(server.sip_port, "tcp")]
    try:
        assert phones[0].register(user, password, "laptop",
                                  call_id_owned_by(0, "admin-a")).status_code == 200
        assert phones[1].register(other, other_password, "phone",
                                  call_id_owned_by(1, "admin-b")).status_code == 200
        with server.client(server.viewer_token) as client:
            def both_online():
                rows = client.get("/api/devices?online=1").json()
                return rows if len(rows) == 2 else None

            rows = wait_until(both_online, what="both devices in the admin API")
            assert {(r["user"], r["device"]) for r in rows} == {(user, "laptop"),
                                                                (other, "phone")}

            def summed():
                status = client.get("/api/status").json()
                return status if status["counters"].get("registrations") == 2 else None

            status = wait_until(summed, what="registrations of both workers summed")
            assert status["counts"]["online"] == 2
            assert status["sip"]["port"] == server.sip_port
    finally:
        for phone in phones:
            phone.close()
        stop_admin_server(server)


async def test_presence_follows_devices_bound_through_either_worker(data_dir, tmp_path, workers):
    from peer.config import PeerConfig
    from peer.peer import Peer

    from .test_presence import until

    store = DirectoryStore.open(data_dir)
    store.import_users([("alice", "alice-pw"), ("bob", "bob-pw")])
    for user, name in (("alice", "laptop"), ("alice", "phone"), ("bob", "tablet")):
        store.add_device(user, name)
    store.add_share("bob", "tablet", "alice")
    store.close()
    server = workers()
    laptop = Peer(PeerConfig(data_dir=tmp_path / "laptop", server=f"127.0.0.1:{server.port}",
                             user="alice", password="alice-pw", device="laptop"))
    phone, tablet = FlowPhone(server.port), FlowPhone(server.port)
    try:
        async with laptop:
            await until(lambda: laptop.presence.subscribed, "subscribed")
            # One of these two is bound by the worker not holding the laptop's subscription.
            loop = asyncio.get_running_loop()
            assert (await loop.run_in_executor(None, phone.register, "alice", "alice-pw",
                                               "phone", call_id_owned_by(0, "p"))).status_code == 200
            assert (await loop.run_in_executor(None, tablet.register, "bob", "bob-pw", "tablet",
                                               call_id_owned_by(1, "t"))).status_code == 200
            await until(lambda: laptop.presence.online("alice/phone")
                        and laptop.presence.online("bob/tablet"), "both online", peer=laptop)
            for device, user, password, name, worker in ((phone, "alice", "alice-pw", "phone", 0),
                                                         (tablet, "bob", "bob-pw", "tablet", 1)):
                answer = await loop.run_in_executor(
                    None, lambda: device.register(user, password, name,
                                                  call_id_owned_by(worker, f"{name}-off"), 0))
                assert answer.status_code == 200
            await until(lambda: not laptop.presence.online("alice/phone")
                        and not laptop.presence.online("bob/tablet"), "both gone", peer=laptop)
    finally:
        phone.close()
        tablet.close()


def test_guesses_spread_over_both_workers_are_banned_as_on_one(data_dir, workers):
    server = workers([("ann", "ann-pw")], "--slow-after-failures", "100")
    guesser = FlowPhone(server.port)
    answered = 0
    try:
        for n in range(14):
            try:
                guesser.register("ann", f"guess{n}", "laptop",
                                 call_id_owned_by(n % 2, f"guess{n}"), timeout=1)
            except AssertionError:
                break  # banned: unanswered
            answered += 1
        # On one worker the tenth guess bans. The feed is asynchronous: a guess may reach one
        # worker before the other's last failure does, so one or two more may get their 401;
        # never the 19 that two separate counts would give.
        assert 9 <= answered <= 11
        for worker in (0, 1):  # banned at both, the right password included
            with pytest.raises(AssertionError, match="nothing received"):
                guesser.register("ann", "ann-pw", "laptop",
                                 call_id_owned_by(worker, f"right{worker}"), timeout=1)
    finally:
        guesser.close()
    # The worker's log line reaches the file a moment after its ban took effect.
    wait_until(lambda: "banned address 127.0.0.1" in server.logs(), what="the ban logged")


def test_workers_on_postgresql_are_one_server_of_the_cluster(tmp_path, postgres_url):
    """The supervisor's admin API reads and writes the store the workers share, not a file of
    the data directory: its token and its users are the ones in PostgreSQL. Its heartbeat
    holds the server's row, and a clean stop leaves the cluster at once."""
    data_dir = tmp_path / "node"
    data_dir.mkdir()
    provision(data_dir, [("ann", "ann-pw")], store_url=postgres_url)
    server = ClusterServer(data_dir, "--workers", "2", store_url=postgres_url).start()
    try:
        assert [user["name"] for user in server.api("/api/users")] == ["ann"]
        phone = FlowPhone(server.port)
        try:
            assert phone.register("ann", "ann-pw", "phone", "on-pg").status_code == 200
        finally:
            phone.close()
        (row,) = query(postgres_url, "SELECT node, gone_at FROM servers")
        assert (row["node"], row["gone_at"]) == ("node", None)
        # The store names the server, not the worker that bound the phone.
        bound = wait_until(lambda: query(postgres_url, "SELECT node FROM bindings"),
                           what="the phone's binding in the store")
        assert [r["node"] for r in bound] == ["node"]
    finally:
        server.stop()
    assert query(postgres_url, "SELECT gone_at FROM servers")[0]["gone_at"] is not None
