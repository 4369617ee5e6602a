"""sipsync servers of a cluster, each in its own process with its admin API on a loopback port:
the tests read a server's own counts (online devices, requests by method) from its /metrics.
Each has its own data directory with the same users, or all share one PostgreSQL store."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

from control_server.store import DirectoryStore

from ..integration.conftest import ServerProcess

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


class ClusterServer(ServerProcess):
    """`sipsync-server` behind the balancer, with its admin API; `kill` ends it as a crash
    would, `start` again takes the same SIP port, the one in the balancer's list."""

    def __init__(self, data_dir: Path, *extra: str, store_url: str = "") -> None:
        store = ("--store", store_url, "--node-name", data_dir.name) if store_url else ()
        super().__init__(data_dir, "--throttle-allow", BALANCER_ADDRESS, *store, *extra,
                         admin=True)
        self.store_url = store_url
        self.token = create_token(data_dir, store_url)

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
