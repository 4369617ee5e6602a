"""End to end: a control server and two peer daemons on loopback, sessions placed by script."""

from __future__ import annotations

import filecmp
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

from ..waiting import wait_until


def fill(folder, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def tree(folder) -> dict[str, bytes]:
    # What a user keeps there; the versions a sync kept are its own business.
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".sipsync-versions" not in p.relative_to(folder).parts}


def two_devices(deployment, tmp_path, expires=60):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop", expires)
    phone = deployment.device("alice", "alice-pw", "phone", expires)
    source = laptop.dataset("photos", tmp_path / "laptop-photos")
    target = phone.dataset("photos", tmp_path / "phone-photos")
    return laptop, phone, source, target


def test_a_scripted_invite_moves_a_folder_directly_and_lands_in_history(deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    content = {"a.txt": b"hello", "trip/day1.jpg": os.urandom(300_000),
               "trip/day2.jpg": os.urandom(700_000)}
    fill(source, content)
    laptop.start(), phone.start()
    wait_until(lambda: deployment.online() == {("alice", "laptop"), ("alice", "phone")},
               what="both devices online")

    result = laptop.invite("alice/phone", "--dataset", "photos", "--json")
    outcome = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr + laptop.logs()
    # What crossed the channel: the files (incompressible, so whole) and a little bookkeeping.
    assert outcome["ok"] and outcome["files"] == 3
    assert 1_000_005 < outcome["bytes"] < 1_010_000
    assert tree(target) == content

    session = wait_until(lambda: deployment.history(), what="the session in history")[0]
    assert (session["caller"], session["callee"]) == ("alice/laptop", "alice/phone")
    assert session["state"] == "ended" and session["reason"] == "ended by BYE"
    assert session["data_type"] == "files" and session["dataset"] == "photos"
    assert session["progress"]["phase"] == "done"
    assert session["progress"]["bytes"] == outcome["bytes"]

    # The data went peer to peer: the server saw a few kilobytes of SIP, not the megabyte.
    deployment.server.stop()
    received = int(deployment.server.logs().rsplit("SIP message(s), ", 1)[1].split()[0])
    assert received < 100_000


def test_a_pull_brings_the_callee_folder_to_the_caller(deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    fill(target, {"notes/todo.txt": b"buy milk"})
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both devices online")
    result = laptop.invite("alice/phone", "--dataset", "photos", "--direction", "pull")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("done: 1 file(s), ")
    assert tree(source) == {"notes/todo.txt": b"buy milk"}


def test_refusals_give_their_exit_code_and_reason(deployment, tmp_path):
    laptop, phone, source, _ = two_devices(deployment, tmp_path)
    deployment.user("bob", "bob-pw")
    desk = deployment.device("bob", "bob-pw", "desk")
    desk.dataset("photos", tmp_path / "desk-photos")
    tablet = deployment.device("alice", "alice-pw", "tablet")
    laptop.dataset("docs", tmp_path / "laptop-docs")
    phone.dataset("docs", tmp_path / "phone-docs", "files", "--protocols", "syncml")
    fill(source, {"x": b"1"})
    for device in (laptop, phone, desk, tablet):
        device.start()
    wait_until(lambda: len(deployment.online()) == 4, what="four devices online")
    tablet.stop()
    wait_until(lambda: ("alice", "tablet") not in deployment.online(), what="the tablet offline")

    cases = {
        "alice/nosuch": (3, "refused: 404 No such device"),
        "alice/tablet": (3, "refused: 480 Device offline"),
        "bob/desk": (3, "refused: 403 Not allowed to sync with this device"),
    }
    for target, (code, line) in cases.items():
        result = laptop.invite(target, "--dataset", "photos")
        assert (result.returncode, result.stdout.strip()) == (code, line), target
    # No protocol in common: the phone takes "docs" only over syncml, the laptop offers rsync.
    result = laptop.invite("alice/phone", "--dataset", "docs")
    assert result.returncode == 3
    assert result.stdout.startswith("refused: 488 ")
    # Asked for syncml, the laptop offers it; the phone takes its files dataset only over rsync.
    result = laptop.invite("alice/phone", "--dataset", "photos", "--protocol", "syncml")
    assert result.returncode == 3
    assert result.stdout.startswith("refused: 488 no common protocol for files")


def test_the_daemon_comes_back_online_after_a_server_restart_and_a_removal(deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    server = deployment.start_server("--min-expires", "2")
    phone = deployment.device("alice", "alice-pw", "phone", expires=3).start()
    wait_until(lambda: ("alice", "phone") in deployment.online(), what="the phone online")

    # The server dies and its record of the binding is lost with it.
    port = server.port
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    with sqlite3.connect(deployment.server_dir / "sipsync.db") as db:
        db.execute("DELETE FROM bindings")
    deployment.start_server("--min-expires", "2", port=port)
    wait_until(lambda: ("alice", "phone") in deployment.online(), timeout=30,
               what="the phone online again after the restart")

    # An admin removes the device; the daemon's next refresh registers it again. Offline only
    # until that refresh (2.4 s), which a poll of the admin command may miss on a loaded
    # machine: the binding's registration time says it was made again.
    removed_at = time.time()
    subprocess.run([sys.executable, "-m", "control_server.admin.cli", "--data-dir",
                    str(deployment.server_dir), "devices", "remove", "alice/phone"], check=True)
    wait_until(lambda: [row for row in deployment.bindings()
                        if (row["user"], row["device"]) == ("alice", "phone")
                        and row["registered_at"] > removed_at], timeout=30,
               what="the phone registered again after its removal")


def test_a_caller_killed_mid_transfer_leaves_the_callee_files_intact_and_a_retry_resumes(
        deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    old = {"keep.txt": b"the old data", "big.bin": os.urandom(64 * 1024)}
    fill(target, old)
    # 256 MiB that does not compress, made cheaply: one random MiB again and again (each
    # literal is compressed on its own, and the phone's old big.bin matches none of it).
    piece = os.urandom(1024 * 1024)
    with open(source / "big.bin", "wb") as big:
        for _ in range(256):
            big.write(piece)
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both devices online")
    invite = subprocess.Popen([sys.executable, "-m", "peer.cli", "--data-dir", str(laptop.data_dir),
                               "invite", "alice/phone", "--dataset", "photos"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def moving() -> bool:
        # Straight from the server's store: an admin process per poll would be too slow.
        with sqlite3.connect(deployment.server_dir / "sipsync.db") as db:
            rows = db.execute("SELECT progress FROM sessions WHERE ended_at IS NULL").fetchall()
        return any(p and 0 < json.loads(p).get("bytes", 0) < json.loads(p).get("bytes_total", 0)
                   for (p,) in rows)

    wait_until(moving, what="the transfer under way")
    laptop.process.send_signal(signal.SIGSTOP)  # frozen mid-transfer, then gone
    laptop.stop(signal.SIGKILL)
    invite.wait(timeout=30)
    # The callee's BYE goes to a dead device: the server files the session when its relay of
    # that BYE times out (timer F, 32 s), keeping the reason the callee gave.
    failed = wait_until(lambda: [s for s in deployment.history() if s["state"] == "failed"],
                        timeout=120, what="the session ended with a reason")
    assert "data channel" in failed[0]["reason"]
    # The half-received big.bin replaced nothing; it waits beside it, hidden, for a retry.
    visible = {p.name for p in target.iterdir() if not p.name.startswith(".sipsync-partial-")}
    assert visible == set(old) and {name: (target / name).read_bytes() for name in old} == old
    held = sum(p.stat().st_size for p in target.glob(".sipsync-partial-*") if p.suffix != ".json")
    assert held > 0

    # Back again, the same push resumes where the phone's partial copy ends.
    laptop.start()
    wait_until(lambda: len(deployment.online()) == 2, what="the laptop online again")
    result = wait_until(lambda: (lambda r: r if r.returncode != 3 else None)(
        laptop.invite("alice/phone", "--dataset", "photos", "--json")),
        timeout=90, what="the phone free for a new session")
    outcome = json.loads(result.stdout)
    assert outcome["ok"], result.stdout
    assert outcome["bytes"] < 256 * 1024 * 1024 - held + 1024 * 1024
    assert filecmp.cmp(source / "big.bin", target / "big.bin", shallow=False)
    assert not list(target.glob(".sipsync-partial-*"))
