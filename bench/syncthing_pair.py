"""Two Syncthing instances on loopback for the folder benchmark: temporary homes, static
addresses only, folders shared and synced through Syncthing's REST API.

Nothing leaves loopback: global and local discovery, relays, NAT traversal, usage and crash
reporting and upgrades are off, and the ports are free ones found by binding port 0. Each
instance runs as `syncthing serve` (its monitor and the syncthing it starts) and is stopped by
PID. A folder is shared with the file watcher and the periodic rescan off, so a sync starts only
when `sync()` asks for a scan: the watcher's delay (10 s by default) is not part of the timing.
"""

from __future__ import annotations

import http.client
import itertools
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.02           # seconds between two looks at both instances' state, at first
POLL_SHARE = 0.02     # later, this share of the time waited so far (a look costs Syncthing CPU)
POLL_MAX = 0.25
QUIET = 0.2           # seconds without a byte between a and b before a timed sync starts
START_TIMEOUT = 60.0

# Options set in both configs: nothing is announced, relayed, mapped or reported.
LOOPBACK_ONLY = {
    "globalAnnounceEnabled": "false",
    "localAnnounceEnabled": "false",
    "announceLANAddresses": "false",
    "relaysEnabled": "false",
    "natEnabled": "false",
    "urAccepted": "-1",
    "crashReportingEnabled": "false",
    "autoUpgradeIntervalH": "0",
    "startBrowser": "false",
    # b dials a as soon as it starts; if a was not listening yet, the next try comes soon
    "reconnectionIntervalS": "1",
    # Syncthing lowers its own priority by default; the tools it is compared with run at the
    # normal one, and on a shared machine that alone would change its figures
    "setLowPriority": "false",
}


class SyncthingError(RuntimeError):
    """The pair did not start, a REST call failed, or a sync did not finish in time."""


@dataclass(frozen=True)
class SharedFolder:
    id: str
    src: Path   # a's copy, where the benchmark writes
    dst: Path   # b's copy


@dataclass(frozen=True)
class Transfer:
    wall: float   # from the scan's request until both sides are idle and identical
    cpu: float    # both instances, monitors included
    wire: int     # bytes between a and b, both ways (Syncthing's protocol, TLS not counted)


def free_ports(count: int) -> list[int]:
    """Loopback ports free now: bound to port 0 all at once (so they differ), then released."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class Rest:
    """One instance's REST API, over one kept-alive connection."""

    def __init__(self, port: int, key: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        self.headers = {"X-API-Key": key}

    def call(self, method: str, path: str, body: object = None):
        payload = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers, **({"Content-Type": "application/json"} if payload else {}))
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=payload, headers=headers)
                response = self.connection.getresponse()
                data = response.read()
                break
            except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
                # Syncthing closes a connection left idle a while: the request never reached
                # it, so it goes again once on a new one
                self.connection.close()
                if attempt == 2:
                    raise
            except (OSError, http.client.HTTPException):
                self.connection.close()  # the next call opens a new one
                raise
        if response.status >= 300:
            raise SyncthingError(f"{method} {path}: {response.status} {data[:300]!r}")
        return json.loads(data) if data.strip() else None

    def close(self) -> None:
        self.connection.close()


class Instance:
    """One `syncthing serve` with its own home."""

    def __init__(self, home: Path, rest_port: int, listen_port: int, key: str) -> None:
        self.home, self.listen_port = home, listen_port
        generated = subprocess.run(
            ["syncthing", "generate", f"--home={home}", "--no-default-folder",
             "--skip-port-probing"], capture_output=True, text=True, check=True)
        found = [line.split()[-1] for line in (generated.stdout + generated.stderr).splitlines()
                 if "Device ID:" in line]
        if not found:
            raise SyncthingError(f"syncthing generate gave no device ID: {generated.stderr}")
        self.device_id = found[0]
        self.rest_port, self.key = rest_port, key
        self.rest = Rest(rest_port, key)
        self.process: subprocess.Popen | None = None
        self.pids: list[int] = []

    def configure(self, peer: Instance, dial_peer: bool) -> None:
        """REST and sync listener on loopback, `peer` known by its ID (and its address if this
        side dials), and LOOPBACK_ONLY."""
        path = self.home / "config.xml"
        tree = ET.parse(path)
        root = tree.getroot()
        root.find("gui/address").text = f"127.0.0.1:{self.rest_port}"
        root.find("gui/apikey").text = self.key
        options = root.find("options")
        for old in options.findall("listenAddress"):
            options.remove(old)
        ET.SubElement(options, "listenAddress").text = f"tcp://127.0.0.1:{self.listen_port}"
        for name, value in LOOPBACK_ONLY.items():
            element = options.find(name)
            if element is None:
                element = ET.SubElement(options, name)
            element.text = value
        device = ET.SubElement(root, "device", id=peer.device_id, name=peer.home.name,
                               compression="metadata", introducer="false")
        # "dynamic" with discovery off: this side never dials and only accepts
        ET.SubElement(device, "address").text = (f"tcp://127.0.0.1:{peer.listen_port}"
                                                 if dial_peer else "dynamic")
        tree.write(path)

    def start(self) -> None:
        log = open(self.home / "syncthing.log", "ab")
        env = dict(os.environ, STNODEFAULTFOLDER="1", STNOUPGRADE="1")
        with log:
            self.process = subprocess.Popen(
                ["syncthing", "serve", f"--home={self.home}", "--no-browser", "--no-restart",
                 "--no-upgrade"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                env=env)
        self.pids = [self.process.pid]

    def wait_ready(self, deadline: float) -> None:
        """Until REST answers; then the monitor's child, the syncthing doing the work, is known."""
        while True:
            if self.process.poll() is not None:
                raise SyncthingError(f"syncthing exited ({self.process.returncode}); see "
                                     f"{self.home / 'syncthing.log'}")
            try:
                self.rest.call("GET", "/rest/system/ping")
                break
            except (OSError, http.client.HTTPException, SyncthingError):
                if time.monotonic() > deadline:
                    raise SyncthingError(f"no REST answer on port {self.rest_port}") from None
                time.sleep(0.1)
        monitor = self.process.pid
        children = []
        # the monitor starts its child from whichever of its threads runs that goroutine
        for task in Path(f"/proc/{monitor}/task").iterdir():
            children += (int(pid) for pid in (task / "children").read_text().split())
        self.pids = [monitor, *children]

    def connected_to(self, peer: Instance) -> bool:
        connections = self.rest.call("GET", "/rest/system/connections")["connections"]
        return bool(connections.get(peer.device_id, {}).get("connected"))

    def cpu(self) -> float:
        total = 0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
            except FileNotFoundError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime stime
        return total / TICK

    def stop(self) -> None:
        """SIGTERM to the monitor (it stops its child), then SIGKILL to whichever PID is left."""
        self.rest.close()
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.pids[1:]:
            deadline = time.monotonic() + 10
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class SyncthingPair:
    """a and b; only b dials (when both dial at once from their listen ports, TCP's simultaneous
    open can join the two dials into one socket and the handshake stalls)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(24)
        rest_a, rest_b, listen_a, listen_b = free_ports(4)
        self.a = Instance(home / "a", rest_a, listen_a, key)
        self.b = Instance(home / "b", rest_b, listen_b, key)
        self.a.configure(self.b, dial_peer=False)
        self.b.configure(self.a, dial_peer=True)
        self.names = itertools.count(1)
        deadline = time.monotonic() + START_TIMEOUT
        try:
            self.a.start()
            self.a.wait_ready(deadline)
            self.b.start()
            self.b.wait_ready(deadline)
            while not (self.a.connected_to(self.b) and self.b.connected_to(self.a)):
                if time.monotonic() > deadline:
                    raise SyncthingError("the instances did not connect; see "
                                         f"{home}/*/syncthing.log")
                time.sleep(0.1)
        except BaseException:
            self.close()
            raise

    def version(self) -> str:
        return self.a.rest.call("GET", "/rest/system/version")["version"]

    def share(self) -> SharedFolder:
        """A new send-receive folder at a and b, empty, shared both ways."""
        folder_id = f"bench-{next(self.names)}"
        folder = SharedFolder(folder_id, self.home / f"{folder_id}-a", self.home / f"{folder_id}-b")
        devices = [{"deviceID": self.a.device_id}, {"deviceID": self.b.device_id}]
        for side, path in ((self.a, folder.src), (self.b, folder.dst)):
            path.mkdir()
            side.rest.call("PUT", f"/rest/config/folders/{folder_id}", {
                "id": folder_id, "label": folder_id, "path": str(path), "type": "sendreceive",
                "devices": devices, "fsWatcherEnabled": False, "rescanIntervalS": 0})
        # Syncthing 1.19 does not tell whether the other side's cluster config naming the folder
        # has arrived (later versions have completion's remoteState); what it shows is that no
        # side still holds the folder as offered but not accepted, and that both are idle
        deadline = time.monotonic() + START_TIMEOUT
        while not (self.settled(folder) and not self._offered(self.a, folder)
                   and not self._offered(self.b, folder)):
            if time.monotonic() > deadline:
                raise SyncthingError(f"folder {folder_id} was not shared in {START_TIMEOUT:.0f} s")
            time.sleep(POLL)
        return folder

    @staticmethod
    def _offered(side: Instance, folder: SharedFolder) -> bool:
        return folder.id in side.rest.call("GET", "/rest/cluster/pending/folders")

    def unshare(self, folder: SharedFolder) -> None:
        for side in (self.a, self.b):
            side.rest.call("DELETE", f"/rest/config/folders/{folder.id}")

    def settled(self, folder: SharedFolder) -> bool:
        """b holds all a has indexed, a has b's index saying so, and neither side is busy (asked
        in that order, so a look during a sync costs one REST call)."""
        def complete(side: Instance, query: str) -> bool:
            c = side.rest.call("GET", f"/rest/db/completion?folder={folder.id}{query}")
            return (c["completion"] == 100 and c["needBytes"] == 0 and c["needItems"] == 0
                    and c["needDeletes"] == 0)

        def idle(side: Instance) -> bool:
            return side.rest.call("GET", f"/rest/db/status?folder={folder.id}")["state"] == "idle"

        return (complete(self.a, f"&device={self.b.device_id}") and complete(self.b, "")
                and idle(self.a) and idle(self.b))

    def cpu(self) -> float:
        return self.a.cpu() + self.b.cpu()

    def wire(self) -> int:
        """Bytes a has sent to and received from b since they connected."""
        peer = self.a.rest.call("GET", "/rest/system/connections")["connections"][self.b.device_id]
        return peer["inBytesTotal"] + peer["outBytesTotal"]

    def wait_quiet(self, timeout: float = 60.0) -> None:
        """Until no byte has gone between a and b for QUIET seconds. Right after a sync has
        settled, now and then an index goes again (~16 KB for a folder of 300 files); without
        this wait it would count in the next sync's bytes."""
        deadline = time.monotonic() + timeout
        last = self.wire()
        while True:
            time.sleep(QUIET)
            now = self.wire()
            if now == last:
                return
            if time.monotonic() > deadline:
                raise SyncthingError(f"a and b still exchanging bytes after {timeout:.0f} s")
            last = now

    def sync(self, folder: SharedFolder, identical: Callable[[], bool],
             timeout: float = 900.0) -> Transfer:
        """Scan a's copy now, then wait until the pair has settled and `identical()` agrees. The
        wall time ends at the look that found it settled (to 2 % of the wait), not after the
        comparison that confirmed it; the CPU includes the looks (about 1 ms each, at most)."""
        self.wait_quiet()
        cpu, wire = self.cpu(), self.wire()
        t0 = time.perf_counter()
        self.a.rest.call("POST", f"/rest/db/scan?folder={folder.id}")  # returns once scanned
        deadline = time.monotonic() + timeout
        while True:
            if self.settled(folder):
                done = time.perf_counter()
                if identical():
                    break
            if time.monotonic() > deadline:
                raise SyncthingError(f"folder {folder.id} not in sync after {timeout:.0f} s")
            time.sleep(min(POLL_MAX, max(POLL, POLL_SHARE * (time.perf_counter() - t0))))
        return Transfer(done - t0, self.cpu() - cpu, self.wire() - wire)

    def close(self) -> None:
        for side in (self.b, self.a):
            side.stop()
