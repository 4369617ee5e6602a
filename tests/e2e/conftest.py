"""A real control server and real peer daemons, as processes on loopback."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from control_server.store import DirectoryStore

from ..integration.conftest import ServerProcess
from ..waiting import wait_until


def peer_cli(data_dir: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "peer.cli", "--data-dir", str(data_dir), *args],
                          capture_output=True, text=True, timeout=timeout)


def admin_json(data_dir: Path, *args: str) -> list[dict]:
    result = subprocess.run(
        [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(data_dir), *args,
         "--json"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


class Device:
    """One device: its data directory and, while it runs, its daemon process."""

    def __init__(self, root: Path, user: str, password: str, name: str, server_port: int,
                 expires: int = 60) -> None:
        self.data_dir = root / f"{user}-{name}"
        self.user, self.name = user, name
        result = peer_cli(self.data_dir, "init", "--server", f"127.0.0.1:{server_port}",
                          "--user", user, "--device", name, "--password", password,
                          "--register-expires", str(expires))
        assert result.returncode == 0, result.stderr
        self.process: subprocess.Popen | None = None
        self.log_path = self.data_dir / "daemon.log"

    def dataset(self, name: str, path: Path, kind: str = "files", *extra: str) -> Path:
        result = peer_cli(self.data_dir, "dataset", "add", name, "--type", kind, "--path",
                          str(path), *extra)
        assert result.returncode == 0, result.stderr
        return path

    def start(self) -> Device:
        # A killed daemon leaves its socket behind: wait for the new daemon's, not that one.
        (self.data_dir / "control.sock").unlink(missing_ok=True)
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "peer.cli", "--data-dir", str(self.data_dir), "daemon"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_until(lambda: (self.data_dir / "control.sock").exists(), what="the daemon's socket")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=20)
        self.process = None

    def invite(self, target: str, *args: str) -> subprocess.CompletedProcess:
        return peer_cli(self.data_dir, "invite", target, *args)

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


class Deployment:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.server_dir = root / "server"
        store = DirectoryStore.open(self.server_dir)
        store.realm("sipsync.test")
        store.close()
        self.server: ServerProcess | None = None
        self.devices: list[Device] = []

    def user(self, name: str, password: str) -> None:
        store = DirectoryStore.open(self.server_dir)
        store.add_user(name, password)
        store.close()

    def start_server(self, *extra: str, port: int = 0) -> ServerProcess:
        self.server = ServerProcess(self.server_dir, *extra).start(port=port)
        return self.server

    def device(self, user: str, password: str, name: str, expires: int = 60) -> Device:
        assert self.server is not None
        device = Device(self.root, user, password, name, self.server.port, expires)
        self.devices.append(device)
        return device

    def online(self) -> set[tuple[str, str]]:
        return {(row["user"], row["device"]) for row in self.bindings()}

    def bindings(self) -> list[dict]:
        """`sipsync-admin online`'s rows: a device's address, registration time, expiry..."""
        return admin_json(self.server_dir, "online")

    def history(self) -> list[dict]:
        return admin_json(self.server_dir, "sessions", "--history")

    def close(self) -> None:
        for device in self.devices:
            device.stop()
        if self.server is not None:
            self.server.stop()


@pytest.fixture
def deployment(tmp_path):
    deployment = Deployment(tmp_path)
    yield deployment
    deployment.close()
    # Shown by pytest only when the test failed: what each process said.
    if deployment.server is not None:
        print("---- server log\n" + deployment.server.logs()[-6000:])
    for device in deployment.devices:
        print(f"---- {device.user}/{device.name} log\n" + device.logs()[-6000:])
