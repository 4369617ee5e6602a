"""End to end, with faults injected: a caller killed mid-sync, a control server killed mid-transfer,
a callee that cannot write. What the devices and the history say afterwards."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys

from protocols.rsync.partial import partial_path

from ..waiting import wait_until

def big_file(path, mib: int) -> None:
    """`mib` MiB that do not compress, made cheaply from one random MiB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    piece = os.urandom(1024 * 1024)
    with open(path, "wb") as out:
        for _ in range(mib):
            out.write(piece)


def moving(deployment) -> bool:
    """A session of the server is moving data and has not finished."""
    # Straight from the server's store: an admin process per poll would be too slow.
    with sqlite3.connect(deployment.server_dir / "sipsync.db") as db:
        rows = db.execute("SELECT progress FROM sessions WHERE ended_at IS NULL").fetchall()
    return any(p and 0 < json.loads(p).get("bytes", 0) < json.loads(p).get("bytes_total", 0)
               for (p,) in rows)


def start_invite(device, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "peer.cli", "--data-dir", str(device.data_dir),
                             "invite", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def test_a_caller_killed_mid_sync_frees_the_dataset_for_another_device_at_once(deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    tablet = deployment.device("alice", "alice-pw", "tablet")
    phone = deployment.device("alice", "alice-pw", "phone")
    big_file(laptop.dataset("photos", tmp_path / "laptop-photos") / "big.bin", 256)
    (tablet.dataset("photos", tmp_path / "tablet-photos") / "note.txt").write_bytes(b"from the tablet")
    phone.dataset("photos", tmp_path / "phone-photos")
    for device in (laptop, tablet, phone):
        device.start()
    wait_until(lambda: len(deployment.online()) == 3, what="three devices online")

    invite = start_invite(laptop, "alice/phone", "--dataset", "photos")
    wait_until(lambda: moving(deployment), what="the laptop's transfer under way")
    # While the laptop's session lives (frozen, its channel still open), the dataset is busy.
    laptop.process.send_signal(signal.SIGSTOP)
    busy = tablet.invite("alice/phone", "--dataset", "photos")
    assert (busy.returncode, busy.stdout.strip()) == (3, "refused: 486 dataset 'photos' is in another session")

    laptop.stop(signal.SIGKILL)
    invite.wait(timeout=30)
    # Its channel broke with it: the phone takes the tablet's session at once, without waiting
    # for a BYE that the dead laptop will never answer.
    accepted = tablet.invite("alice/phone", "--dataset", "photos")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr + phone.logs()
    assert (tmp_path / "phone-photos" / "note.txt").read_bytes() == b"from the tablet"


def test_a_transfer_that_finished_while_the_server_was_down_is_in_the_history_as_done(
        deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    server = deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    big_file(laptop.dataset("photos", tmp_path / "laptop-photos") / "big.bin", 256)
    phone.dataset("photos", tmp_path / "phone-photos")
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both devices online")

    invite = start_invite(laptop, "alice/phone", "--dataset", "photos", "--json")
    wait_until(lambda: moving(deployment), what="the transfer under way")
    port = server.port
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    # The data goes peer to peer: the transfer finishes without the server.
    stdout, stderr = invite.communicate(timeout=120)
    outcome = json.loads(stdout)
    assert invite.returncode == 0 and outcome["ok"], stdout + stderr
    assert outcome["bytes"] > 256 * 1024 * 1024
    # The outcome came once the data had moved, not after the BYE the server never answers.
    assert "went unanswered" not in laptop.logs()

    # Back, the server first files the session as cut off by its restart; then the laptop tells
    # it how the session really ended.
    deployment.start_server(port=port)

    def filed_as_done() -> dict | None:
        # The BYE sent while the server was down may still be retransmitted to it and land before
        # the report re-sent with the final progress: wait for both.
        session = next((s for s in deployment.history() if s["call_id"] == outcome["call_id"]), None)
        if session and session["state"] == "ended" and session["progress"]["phase"] == "done":
            return session
        return None

    session = wait_until(filed_as_done, timeout=90, what="the session in history as done")
    assert session["reason"].startswith("ended by BYE")
    assert session["progress"]["bytes"] == outcome["bytes"]


def test_the_caller_prints_the_reason_the_callee_failed_for(deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    big_file(laptop.dataset("photos", tmp_path / "laptop-photos") / "big.bin", 32)
    target = phone.dataset("photos", tmp_path / "phone-photos")
    # The phone cannot store what it receives: where its partial copy of big.bin would be written
    # as the data arrives, a folder is in the way (a full disk or a read-only folder for root).
    (partial_path(target / "big.bin") / "in-the-way").mkdir(parents=True)
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both devices online")

    result = laptop.invite("alice/phone", "--dataset", "photos")
    # The laptop was sending when the phone gave up: it shows the phone's reason, not a reset.
    assert result.returncode != 0
    assert result.stdout.startswith("failed: data channel: the peer reports: file system: Is a directory"), \
        result.stdout
    assert (target / "big.bin").exists() is False
