"""Live sync between real daemons through a real server: changes travel by themselves, at once
when both are online and as soon as one comes back; no ping-pong, no empty sessions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from ..waiting import wait_until
from .conftest import peer_cli


def live_pair(deployment, tmp_path, laptop_direction="two-way", phone_direction="two-way"):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    source = laptop.dataset("notes", tmp_path / "laptop-notes")
    target = phone.dataset("notes", tmp_path / "phone-notes")
    for device, partner, direction in ((laptop, "alice/phone", laptop_direction),
                                       (phone, "alice/laptop", phone_direction)):
        result = peer_cli(device.data_dir, "dataset", "partners", "add", "notes", partner,
                          "--direction", direction)
        assert result.returncode == 0, result.stderr
    return laptop, phone, source, target


def files(folder) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".sipsync") for part in
                                       p.relative_to(folder).parts)}


def sessions(deployment) -> list[dict]:
    return [s for s in deployment.history() if s.get("dataset") == "notes"]


def status(device) -> list[dict]:
    result = peer_cli(device.data_dir, "status", "--json")
    return json.loads(result.stdout).get("live", [])


def test_a_saved_file_reaches_the_partner_by_itself_and_one_change_is_one_session(
        deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both online")
    wait_until(lambda: all(r["state"] == "in sync" for r in status(laptop) + status(phone)),
               what="both in sync at the start")
    before = len(sessions(deployment))
    (source / "todo.txt").write_text("buy milk\n")
    wait_until(lambda: files(target) == {"todo.txt": b"buy milk\n"}, what="the file on the phone")
    # The phone applied it; nothing goes back, and nothing more starts (no ping-pong).
    wait_until(lambda: len(sessions(deployment)) == before + 1 and
               all(s["state"] != "proceeding" and s.get("ended_at") for s in sessions(deployment)),
               what="exactly one session in the history")
    wait_until(lambda: all(r["state"] == "in sync" for r in status(laptop) + status(phone)),
               what="both in sync again")
    assert len(sessions(deployment)) == before + 1
    assert sessions(deployment)[0]["started_by"] == "daemon"  # filed as the daemon's own
    # And the other way round, from the phone.
    (target / "reply.txt").write_text("done\n")
    wait_until(lambda: files(source) == files(target) == {"todo.txt": b"buy milk\n",
                                                          "reply.txt": b"done\n"},
               what="the phone's file on the laptop")


def test_a_burst_of_files_becomes_a_handful_of_sessions(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both online")
    wait_until(lambda: all(r["state"] == "in sync" for r in status(laptop)), what="in sync")
    before = len(sessions(deployment))
    for i in range(1000):
        (source / f"f{i:04}.txt").write_bytes(os.urandom(64))
    wait_until(lambda: files(target) == files(source) and len(files(target)) == 1000,
               timeout=60, what="all 1,000 files on the phone")
    wait_until(lambda: all(r["state"] == "in sync" for r in status(laptop) + status(phone)),
               what="both in sync")
    assert len(sessions(deployment)) - before <= 5


def test_a_partner_that_was_offline_catches_up_when_it_returns(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both online")
    phone.stop()
    wait_until(lambda: ("alice", "phone") not in deployment.online(), what="the phone offline")
    wait_until(lambda: any(r["state"] == "partner offline" for r in status(laptop)),
               what="the laptop sees the phone offline")
    (source / "while-away.txt").write_text("written while the phone was off\n")
    wait_until(lambda: any(r.get("pending") for r in status(laptop)), what="a pending change")
    phone.start()
    wait_until(lambda: files(target) == {"while-away.txt": b"written while the phone was off\n"},
               what="the phone caught up")


def test_both_sides_changing_at_once_gives_one_session_with_both_changes(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both online")
    wait_until(lambda: all(r["state"] == "in sync" for r in status(laptop) + status(phone)),
               what="both in sync")
    before = len([s for s in sessions(deployment) if s["state"] != "failed"])
    (source / "laptop.txt").write_text("from the laptop\n")
    (target / "phone.txt").write_text("from the phone\n")
    both = {"laptop.txt": b"from the laptop\n", "phone.txt": b"from the phone\n"}
    wait_until(lambda: files(source) == files(target) == both, what="both changes on both")
    wait_until(lambda: all(r["state"] == "in sync" for r in status(laptop) + status(phone)),
               what="both in sync")
    done = [s for s in sessions(deployment) if s["state"] != "failed"]
    # Crossing INVITEs are refused with 491 (not filed as done); one session carries both.
    assert len(done) - before <= 2


def test_receive_only_keeps_its_changes_and_send_only_sends(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path, laptop_direction="send-only",
                                              phone_direction="receive-only")
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both online")
    (source / "report.txt").write_text("v1\n")
    wait_until(lambda: files(target).get("report.txt") == b"v1\n", what="sent to the phone")
    (target / "local-only.txt").write_text("stays here\n")
    (source / "report.txt").write_text("v2\n")
    wait_until(lambda: files(target).get("report.txt") == b"v2\n", what="the second version")
    assert "local-only.txt" not in files(source)


def test_a_killed_daemon_restarted_catches_up(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both online")
    laptop.stop(signal.SIGKILL)
    (source / "offline-edit.txt").write_text("made while the daemon was down\n")
    laptop.start()
    wait_until(lambda: files(target).get("offline-edit.txt") == b"made while the daemon was down\n",
               what="the edit made while the daemon was down")


def test_an_added_record_reaches_the_partner(deployment, tmp_path):
    deployment.user("alice", "alice-pw")
    deployment.start_server()
    laptop = deployment.device("alice", "alice-pw", "laptop")
    phone = deployment.device("alice", "alice-pw", "phone")
    laptop.dataset("contacts", tmp_path / "laptop-contacts", "contacts",
                   "--partners", "alice/phone")
    phone.dataset("contacts", tmp_path / "phone-contacts", "contacts", "--partners", "alice/laptop")
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both online")
    card = tmp_path / "ann.vcf"
    card.write_text("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ann-1\r\nFN:Ann Example\r\nEND:VCARD\r\n")
    result = peer_cli(phone.data_dir, "records", "contacts", "import", str(card))
    assert result.returncode == 0, result.stderr

    def on_laptop() -> bool:
        listing = peer_cli(laptop.data_dir, "records", "contacts", "list", "--json")
        return "Ann Example" in listing.stdout

    wait_until(on_laptop, what="the contact on the laptop")


def test_devices_lists_the_partners_online_or_not(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    laptop.start(), phone.start()

    def listed() -> list[tuple]:
        rows = json.loads(peer_cli(laptop.data_dir, "devices", "--json").stdout or "[]")
        return [(d["device"], d["online"], d["datasets"], bool(d["last_seen"])) for d in rows]

    wait_until(lambda: listed() == [("alice/phone", True, ["notes"], True)],
               what="the phone listed online, sharing notes")
    phone.stop()
    wait_until(lambda: listed() == [("alice/phone", False, ["notes"], True)],
               what="the phone listed offline with when it was last seen")


def test_after_a_server_restart_presence_and_changes_still_flow(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    laptop.start(), phone.start()
    wait_until(lambda: all(r["state"] == "in sync" for r in status(laptop) + status(phone)),
               what="both in sync")
    server = deployment.server
    port = server.port
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()
    deployment.start_server(port=port)
    # The server kept its subscriptions: the phone leaving is told to the laptop...
    phone.stop()
    wait_until(lambda: any(r["state"] == "partner offline" for r in status(laptop)),
               what="the laptop told the phone left, after the restart")
    (source / "after-restart.txt").write_text("written after the restart\n")
    # ...and its return too, with what it missed.
    phone.start()
    wait_until(lambda: files(target).get("after-restart.txt") == b"written after the restart\n",
               what="the change made after the restart on the phone")


def test_a_scripted_invite_waits_for_an_offline_device_and_then_syncs(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    # A dataset with no partners: only the scripted session moves it.
    photos = laptop.dataset("photos", tmp_path / "laptop-photos")
    phone_photos = phone.dataset("photos", tmp_path / "phone-photos")
    phone.start()
    wait_until(lambda: ("alice", "phone") in deployment.online(), what="the phone known online")
    phone.stop()
    laptop.start()
    wait_until(lambda: ("alice", "laptop") in deployment.online(), what="the laptop online")
    (photos / "scripted.txt").write_text("pushed once the phone is back\n")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "peer.cli", "--data-dir", str(laptop.data_dir), "invite",
         "alice/phone", "--dataset", "photos", "--wait-online", "--timeout", "120", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        phone.start()
        out, err = waiting.communicate(timeout=150)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 0, out + err
    assert files(phone_photos) == {"scripted.txt": b"pushed once the phone is back\n"}


def test_wait_online_gives_up_after_its_timeout_with_exit_code_4(deployment, tmp_path):
    laptop, phone, source, target = live_pair(deployment, tmp_path)
    laptop.start()
    wait_until(lambda: ("alice", "laptop") in deployment.online(), what="the laptop online")
    result = peer_cli(laptop.data_dir, "invite", "alice/phone", "--dataset", "notes",
                      "--wait-online", "--timeout", "2")
    assert result.returncode == 4 and "did not come online" in result.stdout
