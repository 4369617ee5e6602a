"""The main job on the embedded defaults: a control server on 127.0.0.1:5060, two peer daemons of
one user registering with digest, a scripted session that moves a folder directly between them,
the admin's views of online devices and session history. Stops everything it started."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .store import DirectoryStore, StateStore, StoreError

ROOT = Path("sipsync-demo")
SERVER_DIR = ROOT / "server"
USER, PASSWORD = "alice", "alice-demo-password"
SERVER = "127.0.0.1:5060"


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(*args: str) -> int:
    print("$ " + " ".join(args[2:] if args[:2] == (sys.executable, "-m") else args), flush=True)
    # Wide enough for the admin's tables when the output is not a terminal.
    return subprocess.run(args, env={**os.environ, "COLUMNS": "140"}).returncode


def peer(device: str, *args: str, log_level: str = "INFO") -> list[str]:
    quiet = ["--log-level", log_level] if log_level != "INFO" else []
    return [sys.executable, "-m", "peer.cli", "--data-dir", str(ROOT / device), *quiet, *args]


def admin(*args: str) -> list[str]:
    return [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(SERVER_DIR), *args]


def wait_online(count: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        store = StateStore.open(SERVER_DIR)
        online = len(store.bindings(time.time()))
        store.close()
        if online >= count:
            return
        time.sleep(0.2)
    sys.exit("the devices did not come online")


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
    processes: list[subprocess.Popen] = []
    server = subprocess.Popen([sys.executable, "-m", "control_server.cli", "--data-dir",
                               str(SERVER_DIR), "--no-admin"])
    processes.append(server)
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
            processes.append(subprocess.Popen(peer(device, "daemon", log_level="WARNING")))
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
        time.sleep(0.5)  # the server writes behind, every 200 ms
        step("sipsync-admin sessions --history")
        run(*admin("sessions", "--history", "--limit", "5"))
        step("sipsync-peer status (the phone)")
        run(*peer("phone", "status"))
    finally:
        for process in reversed(processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(timeout=20)
    step("done: the daemons unregistered and the server stopped")
    sys.exit(0 if code == 0 and same else 1)


if __name__ == "__main__":
    main()
