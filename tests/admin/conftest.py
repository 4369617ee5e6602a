"""A real control server with its admin HTTP API on a port the OS picks, and its credentials."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from control_server.admin.datadir_backend import DataDirBackend

from ..integration.conftest import free_port
from ..waiting import wait_until
from .http_client import Client

# SIP users stored before the server starts (the server reloads later changes only each second).
SIP_USERS = [("ev", "ev-pw"), ("mx", "mx-pw"), ("carol", "carol-pw"), ("dv", "dv-pw")]
ADMIN_PASSWORD = "admin-pw-1"
VIEWER_PASSWORD = "viewer-pw-1"


@dataclass
class AdminServer:
    data_dir: Path
    process: subprocess.Popen
    sip_port: int
    admin_port: int
    admin_token: str
    viewer_token: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def client(self, token: str | None = None) -> Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return Client(self.url, headers=headers, timeout=10)

    def logs(self) -> str:
        return self.log_path.read_text()


def start_admin_server(data_dir: Path, store: str = "", workers: int = 1) -> AdminServer:
    """On the store `store` (a PostgreSQL URL), or by default the SQLite file of `data_dir`."""
    backend = DataDirBackend(data_dir, store)
    backend.directory.realm("sipsync.test")
    backend.import_users(SIP_USERS)
    backend.add_admin("root", ADMIN_PASSWORD, "admin")
    backend.add_admin("watcher", VIEWER_PASSWORD, "viewer")
    admin_token = backend.create_token("ci-admin", "admin")
    viewer_token = backend.create_token("ci-viewer", "viewer")
    backend.close()
    port_file, admin_port_file = data_dir / "port", data_dir / "admin-port"
    log_path = data_dir / "server.log"
    with open(log_path, "a") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "control_server.cli", "--data-dir", str(data_dir),
             "--sip-port", str(free_port()), "--port-file", str(port_file),
             "--admin-port", "0", "--admin-port-file", str(admin_port_file),
             "--workers", str(workers), *(("--store", store) if store else ())],
            stdout=log, stderr=subprocess.STDOUT,
        )

    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log_path.read_text()}")
        return port_file.exists() and bool(port_file.read_text().strip())

    try:
        wait_until(listening, what="the server's port file", timeout=15, interval=0.02)
    except AssertionError:
        process.kill()
        raise
    return AdminServer(data_dir, process, int(port_file.read_text()),
                       int(admin_port_file.read_text()), admin_token, viewer_token, log_path)


def stop_admin_server(server: AdminServer) -> None:
    if server.process.poll() is None:
        server.process.terminate()
        server.process.wait(timeout=15)


@pytest.fixture(scope="module")
def admin_server(tmp_path_factory):
    """One server for a module's tests; each test uses names of its own."""
    server = start_admin_server(tmp_path_factory.mktemp("admin") / "data")
    yield server
    stop_admin_server(server)


@pytest.fixture
def fresh_admin_server(tmp_path):
    server = start_admin_server(tmp_path / "data")
    yield server
    stop_admin_server(server)
