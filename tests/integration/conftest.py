"""Real control server processes and a real sipp, on loopback ports chosen by the OS."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from control_server.store import DirectoryStore

from ..tools import require_tool
from ..waiting import wait_until

SCENARIOS = Path(__file__).parents[2] / "sipp"


def free_port() -> int:
    """A port free for both UDP and TCP right now."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port


class ServerProcess:
    """`sipsync-server` as an operator runs it, in its own process; with `admin`, its admin API
    on a loopback port too (`admin_port`)."""

    def __init__(self, data_dir: Path, *extra: str, admin: bool = False) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.admin = admin
        self.process: subprocess.Popen | None = None
        self.port = 0
        self.admin_port = 0
        self.log_path = data_dir / "server.log"

    def start(self, port: int | None = None) -> ServerProcess:
        """Start on `port`; by default on the port of the last start (0 at first: the OS
        picks one), so a server started again is where its clients knew it."""
        port_file, admin_port_file = self.data_dir / "port", self.data_dir / "admin-port"
        written = [port_file, admin_port_file] if self.admin else [port_file]
        for file in written:
            file.unlink(missing_ok=True)
        admin = (["--admin-port", "0", "--admin-port-file", str(admin_port_file)] if self.admin
                 else ["--no-admin"])
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "control_server.cli", "--data-dir", str(self.data_dir),
             "--sip-port", str(self.port if port is None else port),
             "--port-file", str(port_file), *admin, "--workers", "1", *self.extra],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()}")
            return all(file.exists() and file.read_text().strip() for file in written)

        wait_until(listening, what="the server's port files", timeout=20, interval=0.02)
        self.port = int(port_file.read_text())
        if self.admin:
            self.admin_port = int(admin_port_file.read_text())
        return self

    def kill(self) -> None:
        """SIGKILL: no goodbye to anyone, as when the machine dies."""
        self.process.kill()
        self.process.wait(timeout=15)
        self.log.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=15)
        self.log.close()

    def logs(self) -> str:
        return self.log_path.read_text()


@pytest.fixture
def data_dir(tmp_path) -> Path:
    directory = tmp_path / "data"
    store = DirectoryStore.open(directory)
    store.realm("sipsync.test")
    store.close()
    return directory


@pytest.fixture
def server(data_dir):
    process = ServerProcess(data_dir).start()
    yield process
    process.stop()


def run_sipp(scenario: str, target_port: int, *args: str, cwd: Path, timeout: float = 60,
             transport: str = "u1", local_port: int | None = None, background: bool = False):
    """Run sipp to completion; returns its exit code (0: every call succeeded) and output."""
    command = [
        require_tool("sipp", "sip-tester"), f"127.0.0.1:{target_port}", "-sf", str(SCENARIOS / scenario),
        "-i", "127.0.0.1", "-p", str(local_port or free_port()), "-t", transport,
        "-timeout", f"{int(timeout)}s", "-timeout_error", "-nostdin", "-trace_err",
        "-trace_msg", *args,
    ]
    if background:
        return subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout + 30)
    return result.returncode, result.stdout + result.stderr


def write_users_csv(path: Path, users: list[tuple[str, str]], extra=None) -> Path:
    with open(path, "w") as out:
        out.write("SEQUENTIAL\n")
        for i, (name, password) in enumerate(users):
            fields = [name, password] + ([extra[i]] if extra else [])
            out.write(";".join(fields) + "\n")
    return path
