"""The control server driven by sipp, a real SIP client: registrations with digest over UDP and
TCP, wrong passwords, and a whole INVITE / 200 / ACK / BYE session through the proxy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from control_server.store import DirectoryStore

from ..waiting import wait_until
from .conftest import SCENARIOS, ServerProcess, free_port, run_sipp, write_users_csv

pytestmark = pytest.mark.sipp


def admin(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(data_dir), *args],
        capture_output=True, text=True, timeout=30,
    )


def online(data_dir: Path) -> list[dict]:
    result = admin(data_dir, "online", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def history(data_dir: Path) -> list[dict]:
    result = admin(data_dir, "sessions", "--history", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def add_users(data_dir: Path, count: int) -> list[tuple[str, str]]:
    users = [(f"user{i}", f"pw{i}") for i in range(1, count + 1)]
    store = DirectoryStore.open(data_dir)
    store.import_users(users)
    store.close()
    return users


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_many_users_register_with_digest_and_get_200(data_dir, tmp_path, transport):
    users = add_users(data_dir, 300)
    server = ServerProcess(data_dir).start()
    try:
        csv = write_users_csv(tmp_path / "users.csv", users)
        code, output = run_sipp("register.xml", server.port, "-inf", str(csv),
                                "-r", "200", "-m", "300", cwd=tmp_path, transport=transport)
        assert code == 0, output

        def all_bound() -> list[dict] | None:
            rows = online(data_dir)  # the server writes bindings behind: poll the store
            return rows if len(rows) == 300 else None

        bound = wait_until(all_bound, what="300 devices online")
        assert {row["user"] for row in bound} == {name for name, _ in users}
        assert {row["transport"] for row in bound} == {"udp" if transport == "u1" else "tcp"}
        # sipp names no device: each binding is named from its Contact.
        assert all(row["device"].startswith("contact-") and 50 < row["expires_in"] <= 60
                   for row in bound)
    finally:
        server.stop()


@pytest.fixture
def server_with_users(data_dir):
    """A server started after its users, devices and shares were stored."""
    started = []

    def start(users=(), devices=(), shares=(), options=()) -> ServerProcess:
        store = DirectoryStore.open(data_dir)
        for name, password in users:
            store.add_user(name, password)
        for user, device in devices:
            store.add_device(user, device)
        for share in shares:
            store.add_share(*share)
        store.close()
        started.append(ServerProcess(data_dir, *options).start())
        return started[-1]

    yield start
    for process in started:
        process.stop()


def test_a_wrong_password_never_gets_200(data_dir, tmp_path, server_with_users):
    # Twenty wrong passwords from one address: the throttle's limits are raised so that each
    # gets its 401 at once (test_throttle_live covers the throttle).
    server = server_with_users([(f"user{i}", f"pw{i}") for i in range(1, 21)]
                               + [("witness", "witness-pw")],
                               options=("--ban-after-failures", "1000",
                                        "--slow-after-failures", "1000"))
    wrong = [(f"user{i}", "not-the-password") for i in range(1, 21)]
    csv = write_users_csv(tmp_path / "wrong.csv", wrong)
    # The scenario succeeds only when the answer to the challenge is another 401.
    code, output = run_sipp("register_wrong_password.xml", server.port, "-inf", str(csv),
                            "-r", "50", "-m", "20", cwd=tmp_path)
    assert code == 0, output
    # Bindings are written behind, all pending ones in each flush: once a device registered
    # after the wrong attempts is in the store, so is anything those attempts could have bound.
    register_device(server.port, tmp_path, "witness", "witness-pw", "phone", free_port())
    bound = wait_until(lambda: online(data_dir), what="the witness device online")
    assert [(row["user"], row["device"]) for row in bound] == [("witness", "phone")]
    assert "wrong credentials" in server.logs()


def test_an_unknown_user_gets_the_same_401_as_a_wrong_password(tmp_path, server):
    csv = write_users_csv(tmp_path / "ghost.csv", [("ghost", "pw")])
    code, output = run_sipp("register_wrong_password.xml", server.port, "-inf", str(csv),
                            "-m", "1", cwd=tmp_path)
    assert code == 0, output


def register_device(port: int, tmp_path: Path, user: str, password: str, device: str,
                    local_port: int) -> None:
    csv = write_users_csv(tmp_path / f"{device}.csv", [(user, password)], extra=[device])
    code, output = run_sipp("register_device.xml", port, "-inf", str(csv), "-m", "1",
                            cwd=tmp_path, local_port=local_port)
    assert code == 0, output


def call(port: int, tmp_path: Path, user: str, password: str, device: str):
    csv = write_users_csv(tmp_path / "caller.csv", [(user, password)], extra=[device])
    return run_sipp("uac.xml", port, "-inf", str(csv), "-m", "1", cwd=tmp_path)


def start_callee(port: int, tmp_path: Path, local_port: int):
    return run_sipp("uas.xml", port, "-m", "1", cwd=tmp_path, local_port=local_port,
                    background=True, timeout=30)


def test_a_session_between_two_devices_goes_through_the_proxy_into_history(
        data_dir, tmp_path, server_with_users):
    server = server_with_users([("carol", "carol-pw")])
    uas_port = free_port()
    register_device(server.port, tmp_path, "carol", "carol-pw", "phone", uas_port)
    callee = start_callee(server.port, tmp_path, uas_port)
    try:
        code, output = call(server.port, tmp_path, "carol", "carol-pw", "phone")
        assert code == 0, output
        assert callee.wait(timeout=30) == 0, callee.stdout.read().decode()
    finally:
        if callee.poll() is None:
            callee.kill()
    sessions = wait_until(lambda: history(data_dir), what="the session in history")
    assert len(sessions) == 1
    session = sessions[0]
    assert session["caller"] == "carol/laptop" and session["callee"] == "carol/phone"
    assert session["state"] == "ended" and session["status"] == 200
    assert session["data_type"] == "files" and session["dataset"] == "photos"
    assert session["protocol"] == "rsync"  # from the callee's answer
    assert session["duration"] >= 0.2  # the caller held the session 200 ms before its BYE


def refused(port: int, tmp_path: Path, user: str, password: str, device: str, status: int):
    template = (SCENARIOS / "uac_refused.xml").read_text()
    scenario = tmp_path / f"uac_refused_{status}.xml"
    scenario.write_text(template.replace('response="STATUS"', f'response="{status}"'))
    csv = write_users_csv(tmp_path / "refused.csv", [(user, password)], extra=[device])
    return run_sipp(str(scenario), port, "-inf", str(csv), "-m", "1", cwd=tmp_path)


def test_invites_are_refused_with_the_right_status(data_dir, tmp_path, server_with_users):
    server = server_with_users([("dave", "dave-pw"), ("erin", "erin-pw")],
                               devices=[("dave", "desk"), ("erin", "tablet")])
    # Unknown device, device known but offline.
    assert refused(server.port, tmp_path, "dave", "dave-pw", "nosuch", 404)[0] == 0
    assert refused(server.port, tmp_path, "dave", "dave-pw", "desk", 480)[0] == 0
    failed = wait_until(lambda: [s for s in history(data_dir) if s["status"] == 480],
                        what="the 480 in history")
    assert failed[0]["state"] == "failed" and failed[0]["reason"] == "Device offline"


def test_a_restarted_server_still_knows_its_online_devices_and_history(data_dir, tmp_path):
    store = DirectoryStore.open(data_dir)
    store.add_user("carol", "carol-pw")
    store.close()
    server = ServerProcess(data_dir).start()
    uas_port = free_port()
    try:
        register_device(server.port, tmp_path, "carol", "carol-pw", "phone", uas_port)
        callee = start_callee(server.port, tmp_path, uas_port)
        assert call(server.port, tmp_path, "carol", "carol-pw", "phone")[0] == 0
        callee.wait(timeout=30)
        wait_until(lambda: history(data_dir), what="the session in history")
    finally:
        server.stop()
    port = server.port
    server = ServerProcess(data_dir).start(port=port)
    try:
        assert [(d["user"], d["device"]) for d in online(data_dir)] == [("carol", "phone")]
        assert len(history(data_dir)) == 1
        # The restarted server routes to the device without it registering again.
        callee = start_callee(server.port, tmp_path, uas_port)
        code, output = call(server.port, tmp_path, "carol", "carol-pw", "phone")
        assert code == 0, output
        callee.wait(timeout=30)
        wait_until(lambda: len(history(data_dir)) == 2, what="the second session in history")
    finally:
        server.stop()
