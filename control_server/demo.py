"""The main job on the embedded defaults: a control server on 127.0.0.1:5060, two devices of one
user registering with digest (real sipp clients), a sync session between them through the proxy,
then the admin's views of online devices and session history. Stops everything it started."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .store import Store, StoreError

SCENARIOS = Path(__file__).resolve().parents[1] / "sipp"
DATA_DIR = Path("sipsync-data")
USER, PASSWORD = "alice", "alice-demo-password"
SERVER_PORT = 5060


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def sipp(*args: str, cwd: Path, background: bool = False):
    command = ["sipp", f"127.0.0.1:{SERVER_PORT}", "-i", "127.0.0.1", "-nostdin",
               "-timeout", "30s", "-timeout_error", *args]
    if background:
        return subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        sys.exit(f"sipp failed:\n{result.stdout[-2000:]}")
    return result


def admin(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "control_server.admin_cli", "--data-dir", str(DATA_DIR),
                    *args], check=True)


def main() -> None:
    if shutil.which("sipp") is None:
        sys.exit("the demo drives the server with sipp: apt-get install sip-tester")
    step(f"users in {DATA_DIR}/ (kept between runs)")
    store = Store(DATA_DIR)
    try:
        store.add_user(USER, PASSWORD)
        print(f"added user {USER}")
    except StoreError:
        store.set_password(USER, PASSWORD)
        print(f"user {USER} exists")
    store.close()

    step(f"sipsync-server on its defaults: SIP on 127.0.0.1:{SERVER_PORT}, UDP and TCP")
    server = subprocess.Popen([sys.executable, "-m", "control_server.cli", "--data-dir",
                               str(DATA_DIR), "--no-admin"])
    work = Path(tempfile.mkdtemp(prefix="sipsync-demo-"))
    callee = None
    try:
        time.sleep(1.0)
        if server.poll() is not None:
            sys.exit(f"the server did not start (is port {SERVER_PORT} taken?)")
        users = work / "device.csv"
        users.write_text(f"SEQUENTIAL\n{USER};{PASSWORD};phone\n")
        step("alice/phone registers (sipp: REGISTER, 401 challenge, REGISTER with digest, 200)")
        sipp("-sf", str(SCENARIOS / "register_device.xml"), "-inf", str(users), "-m", "1",
             "-p", "5090", cwd=work)
        callee = sipp("-sf", str(SCENARIOS / "uas.xml"), "-m", "1", "-p", "5090",
                      cwd=work, background=True)
        step("alice/laptop starts a session with alice/phone "
             "(INVITE with a descriptor, 407, INVITE, 200, ACK, BYE)")
        sipp("-sf", str(SCENARIOS / "uac.xml"), "-inf", str(users), "-m", "1", "-p", "5091",
             cwd=work)
        callee.wait(timeout=30)
        time.sleep(0.5)  # the server writes behind, every 200 ms
        step("sipsync-admin online")
        admin("online")
        step("sipsync-admin sessions --history")
        admin("sessions", "--history", "--limit", "5")
    finally:
        if callee is not None and callee.poll() is None:
            callee.terminate()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)
        shutil.rmtree(work, ignore_errors=True)
    step("done: the server stopped cleanly")


if __name__ == "__main__":
    main()
