"""The main job on the embedded defaults: a control server on 127.0.0.1:5060, two peer daemons of
one user registering with digest, a scripted session that moves a folder directly between them,
then live datasets that keep themselves in sync (a file, a contact, a partner away and back), and
the admin's views of online devices and session history. Bounded in time; stops what it started."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from peer.control import DaemonNotRunning, ask
from peer.record_store import RecordStore, store_path

from .store import DirectoryStore, StateStore, StoreError

ROOT = Path("sipsync-demo")
SERVER_DIR = ROOT / "server"
USER, PASSWORD = "alice", "alice-demo-password"
SERVER = "127.0.0.1:5060"
# Live changes travel in well under a second; this only bounds a demo where something is broken.
ARRIVAL_TIMEOUT = 10.0
POLL_SECONDS = 0.02  # fine enough that the measured delays are the system's, not the demo's
CONTACT = (b"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:ann-example-1\r\nFN:Ann Example\r\n"
           b"TEL:+1-555-0100\r\nEND:VCARD\r\n")


class DemoFailed(Exception):
    """Something the demo waits for did not happen in time: the run ends with this reason."""


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(*args: str) -> int:
    print("$ " + " ".join(args[2:] if args[:2] == (sys.executable, "-m") else args), flush=True)
    # Wide enough for the admin's tables when the output is not a terminal.
    return subprocess.run(args, env={**os.environ, "COLUMNS": "140"}).returncode


def run_or_fail(*args: str) -> None:
    if run(*args) != 0:
        raise DemoFailed(f"`{' '.join(args[2:])}` failed")


def wait_for(arrived: Callable[[], bool], what: str, timeout: float = ARRIVAL_TIMEOUT) -> float:
    """Seconds until `arrived()` holds; DemoFailed naming `what` once `timeout` passes."""
    start = time.monotonic()
    while not arrived():
        if time.monotonic() - start > timeout:
            raise DemoFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(POLL_SECONDS)
    return time.monotonic() - start


def peer(device: str, *args: str, log_level: str = "INFO") -> list[str]:
    quiet = ["--log-level", log_level] if log_level != "INFO" else []
    return [sys.executable, "-m", "peer.cli", "--data-dir", str(ROOT / device), *quiet, *args]


def admin(*args: str) -> list[str]:
    return [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(SERVER_DIR), *args]


def daemon(device: str) -> subprocess.Popen:
    # A daemon stopped before leaves no socket; removing a stale one lets us wait for the new one.
    (ROOT / device / "control.sock").unlink(missing_ok=True)
    return subprocess.Popen(peer(device, "daemon", log_level="WARNING"))


def online_count() -> int:
    store = StateStore.open(SERVER_DIR)
    try:
        return len(store.bindings(time.time()))
    finally:
        store.close()


def wait_online(count: int, timeout: float = 15.0) -> None:
    try:
        wait_for(lambda: online_count() >= count, "the devices coming online", timeout)
    except DemoFailed as exc:
        sys.exit(str(exc))


def live_links(device: str) -> list[dict]:
    """The daemon's live rows (dataset, partner, state, pending), as `status --json` shows them;
    asked over the daemon's control socket, since a CLI process per poll is slow on a busy machine."""
    async def query() -> list[dict]:
        try:
            async for message in ask(ROOT / device, {"command": "status"}):
                return message.get("status", {}).get("live", [])
        except (DaemonNotRunning, OSError):
            pass
        return []

    return asyncio.run(query())


def all_in_sync(*devices: str) -> bool:
    rows = [row for device in devices for row in live_links(device)]
    return bool(rows) and all(row["state"] == "in sync" for row in rows)


def has_same_file(folder: Path, name: str, content: bytes) -> bool:
    try:
        return (folder / name).read_bytes() == content
    except OSError:
        return False  # not there yet, or being written


def has_contact(folder: Path, name: bytes) -> bool:
    if not store_path(folder).exists():
        return False
    with RecordStore(store_path(folder)) as store:
        return any(name in (item.content or b"") for item in store.items())


def live_sessions_line() -> str:
    """How many sessions each live dataset took: one per change shows there was no ping-pong."""
    result = subprocess.run(admin("sessions", "--history", "--json"), capture_output=True,
                            text=True)
    rows = json.loads(result.stdout or "[]") if result.returncode == 0 else []
    counts = {name: sum(1 for row in rows if row.get("dataset") == name)
              for name in ("notes", "contacts")}
    return ("live sessions in the history: " +
            ", ".join(f"{name} {count}" for name, count in counts.items()) +
            " (one per change, none sent back)")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()  # a daemon stuck in shutdown must not keep the demo from ending
            process.wait()


def live_sync(processes: dict[str, subprocess.Popen]) -> None:
    """Live datasets on both devices: changes travel by themselves, also after the phone was away.
    `processes` maps each device to its running daemon; a restarted daemon replaces its entry."""
    notes = {device: ROOT / f"{device}-notes" for device in ("laptop", "phone")}
    contacts = {device: ROOT / f"{device}-contacts" for device in ("laptop", "phone")}
    step("live datasets: a notes folder and the contacts, each device the other's partner")
    for device, partner in (("laptop", "phone"), ("phone", "laptop")):
        notes[device].mkdir()
        run_or_fail(*peer(device, "dataset", "add", "notes", "--type", "files", "--path",
                          str(notes[device])))
        run_or_fail(*peer(device, "dataset", "partners", "add", "notes", f"{USER}/{partner}"))
        run_or_fail(*peer(device, "dataset", "add", "contacts", "--type", "contacts", "--path",
                          str(contacts[device]), "--partners", f"{USER}/{partner}"))
    wait_for(lambda: all_in_sync("laptop", "phone"), "both devices in sync at the start")
    run(*peer("laptop", "status"))

    step("a file saved on the laptop appears on the phone by itself")
    text = b"Buy milk\nCall Ann about the trip\n"
    (notes["laptop"] / "todo.txt").write_bytes(text)
    print(f"saved {notes['laptop'] / 'todo.txt'}", flush=True)
    delay = wait_for(lambda: has_same_file(notes["phone"], "todo.txt", text),
                     "todo.txt on the phone")
    print(f"appeared on the phone after {delay:.1f} s", flush=True)

    step("a contact added on the phone appears on the laptop by itself")
    card = ROOT / "ann.vcf"
    card.write_bytes(CONTACT)
    command = peer("phone", "records", "contacts", "add", str(card))
    print("$ " + " ".join(command[2:]), flush=True)
    adding = subprocess.Popen(command)
    try:
        # Timed from the contact being in the phone's store, not from the command's start-up.
        wait_for(lambda: has_contact(contacts["phone"], b"FN:Ann Example"),
                 "the contact in the phone's store")
        delay = wait_for(lambda: has_contact(contacts["laptop"], b"FN:Ann Example"),
                         "the contact on the laptop")
    finally:
        if adding.wait(timeout=60) != 0:
            raise DemoFailed("`records contacts add` on the phone failed")
    print(f"appeared on the laptop after {delay:.1f} s", flush=True)
    run_or_fail(*peer("laptop", "records", "contacts", "list"))

    step("the phone goes offline; the laptop changes a file meanwhile")
    wait_for(lambda: all_in_sync("laptop", "phone"), "both devices in sync before the phone stops")
    stop(processes["phone"])
    print("the phone's daemon stopped (it unregistered)", flush=True)
    wait_for(lambda: any(row["dataset"] == "notes" and row["state"] == "partner offline"
                         for row in live_links("laptop")), "the laptop seeing the phone offline")
    text = b"Buy milk\nCall Ann about the trip\nBook the train for Friday\n"
    (notes["laptop"] / "todo.txt").write_bytes(text)
    print(f"changed {notes['laptop'] / 'todo.txt'}", flush=True)
    wait_for(lambda: any(row["dataset"] == "notes" and row.get("pending")
                         for row in live_links("laptop")), "the laptop counting a pending change")
    step("sipsync-peer status (the laptop)")
    run(*peer("laptop", "status"))

    step("the phone comes back and catches up by itself")
    started = time.monotonic()
    processes["phone"] = daemon("phone")
    # The daemon's own start-up is a Python process starting: slower on a busy machine.
    wait_for(lambda: online_count() >= 2, "the phone registering again", timeout=30)
    registered = time.monotonic() - started
    wait_for(lambda: has_same_file(notes["phone"], "todo.txt", text), "the phone catching up")
    print(f"online {registered:.1f} s after its daemon started; caught up "
          f"{time.monotonic() - started:.1f} s after the start", flush=True)
    wait_for(lambda: all_in_sync("laptop", "phone"), "both devices in sync after the catch-up")

    step("sipsync-peer devices (the laptop)")
    run(*peer("laptop", "devices"))


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    step(f"a user for the devices, in {SERVER_DIR}/")
    store = DirectoryStore.open(SERVER_DIR)
    try:
        store.add_user(USER, PASSWORD)
    except StoreError as exc:
        sys.exit(str(exc))
    store.close()
    print(f"user {USER}")

    step(f"sipsync-server on its defaults: SIP on {SERVER}, UDP and TCP")
    server = subprocess.Popen([sys.executable, "-m", "control_server.cli", "--data-dir",
                               str(SERVER_DIR), "--no-admin"])
    daemons: dict[str, subprocess.Popen] = {}
    code, same, failure = 1, False, None
    try:
        time.sleep(1.0)
        if server.poll() is not None:
            sys.exit(f"the server did not start (is {SERVER} taken?)")
        step("two devices of alice: a laptop with photos, a phone to receive them")
        photos = ROOT / "laptop-photos"
        (photos / "2026").mkdir(parents=True)
        (photos / "2026" / "beach.jpg").write_bytes(os.urandom(2_000_000))
        (photos / "2026" / "hills.jpg").write_bytes(os.urandom(1_500_000))
        (photos / "list.txt").write_text("beach\nhills\n")
        for device, folder in (("laptop", photos), ("phone", ROOT / "phone-photos")):
            run(*peer(device, "init", "--server", SERVER, "--user", USER, "--device", device,
                      "--password", PASSWORD))
            run(*peer(device, "dataset", "add", "photos", "--type", "files", "--path", str(folder)))
            daemons[device] = daemon(device)
        wait_online(2)
        step("sipsync-admin online")
        run(*admin("online"))

        step("a scripted session: the laptop pushes its photos to the phone, directly")
        code = run(*peer("laptop", "invite", f"{USER}/phone", "--dataset", "photos"))
        step("the laptop edits one photo a little; the next session sends only the change")
        with open(photos / "2026" / "beach.jpg", "r+b") as edited:
            edited.seek(1_000_000)
            edited.write(os.urandom(4_000))
        code |= run(*peer("laptop", "invite", f"{USER}/phone", "--dataset", "photos"))
        same = all((ROOT / "phone-photos" / p.relative_to(photos)).read_bytes() == p.read_bytes()
                   for p in photos.rglob("*") if p.is_file())
        print(f"the phone's folder {'matches' if same else 'DIFFERS FROM'} the laptop's")
        step("sipsync-peer status (the phone)")
        run(*peer("phone", "status"))

        live_sync(daemons)

        time.sleep(0.5)  # the server writes behind, every 200 ms
        step("sipsync-admin sessions --history")
        run(*admin("sessions", "--history", "--limit", "8"))
        print(live_sessions_line(), flush=True)
    except DemoFailed as exc:
        failure = exc
    finally:
        for process in (*daemons.values(), server):
            stop(process)
    step("done: the daemons unregistered and the server stopped")
    if failure is not None:
        sys.exit(f"the demo FAILED: {failure}")
    sys.exit(0 if code == 0 and same else 1)


if __name__ == "__main__":
    main()
