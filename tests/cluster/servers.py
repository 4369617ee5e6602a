"""sipsync servers of a cluster, each in its own process with its admin API on a loopback port:
the tests read a server's own counts (online devices, requests by method) from its /metrics.
Each has its own data directory with the same users, or all share one PostgreSQL store."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from control_server.store import DirectoryStore

from ..waiting import wait_until

REALM = "sipsync.test"
# Every device's request reaches the servers from the balancer's address.
BALANCER_ADDRESS = "127.0.0.1"


def provision(data_dir: Path, users: list[tuple[str, str]],
              shares: tuple[tuple[str, str, str], ...] = (), store_url: str = "") -> None:
    """The same realm, users and shares in a server's directory as in the others' (or once in
    the store they share)."""
    store = DirectoryStore.open(data_dir, store=store_url or None)
    store.realm(REALM)
    store.import_users(users)
    for owner, device in dict.fromkeys((owner, device) for owner, device, _ in shares):
        store.add_device(owner, device)
    for owner, device, grantee in shares:
        store.add_share(owner, device, grantee)
    store.close()


def create_token(data_dir: Path, store_url: str = "") -> str:
    result = subprocess.run(
        [sys.executable, "-m", "control_server.admin.cli", "--data-dir", str(data_dir),
         *(("--store", store_url) if store_url else ()),
         "tokens", "create", "--name", f"cluster-tests-{data_dir.name}"],
        capture_output=True, text=True, timeout=30, check=True,
    )
    return result.stdout.strip().splitlines()[-1]


class ClusterServer:
    """`sipsync-server` behind the balancer; `kill` ends it as a crash would, `start` again
    takes the same SIP port, the one in the balancer's list."""

    def __init__(self, data_dir: Path, *extra: str, store_url: str = "") -> None:
        self.data_dir = data_dir
        self.store_url = store_url
        self.extra = (("--store", store_url, "--node-name", data_dir.name) if store_url
                      else ()) + extra
        self.port = 0
        self.admin_port = 0
        self.process: subprocess.Popen | None = None
        self.log_path = data_dir / "server.log"
        self.token = create_token(data_dir, store_url)

    def start(self) -> ClusterServer:
        port_file, admin_port_file = self.data_dir / "port", self.data_dir / "admin-port"
        port_file.unlink(missing_ok=True)
        admin_port_file.unlink(missing_ok=True)
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "control_server.cli", "--data-dir", str(self.data_dir),
             "--sip-port", str(self.port), "--port-file", str(port_file),
             "--admin-port", "0", "--admin-port-file", str(admin_port_file),
             "--throttle-allow", BALANCER_ADDRESS, "--workers", "1", *self.extra],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

        def listening() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.logs()}")
            return all(f.exists() and f.read_text().strip() for f in (port_file, admin_port_file))

        wait_until(listening, what="the server's port files", timeout=20, interval=0.05)
        self.port = int(port_file.read_text())
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

    def api(self, path: str):
        """The server's admin API answer to GET `path`, as JSON."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}{path}",
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    def metric(self, name: str, labels: str = "") -> float:
        """One sample of the server's /metrics, 0 when it has none yet."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.admin_port}/metrics",
                                         headers={"Authorization": f"Bearer {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
        wanted = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
        found = re.search(wanted, text, re.MULTILINE)
        return float(found.group(1)) if found else 0.0

    def online(self) -> int:
        return int(self.metric("sipsync_online_devices"))

    def options_received(self) -> int:
        return int(self.metric("sipsync_sip_requests_total", 'method="OPTIONS"'))
