"""Kamailio's dispatcher in front of the sipsync servers, as `deploy/kamailio` configures it: its
own process in the foreground on a loopback port, its view of the servers read through kamcmd."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ..tools import require_tool
from ..waiting import wait_until

CONFIG = Path(__file__).parents[2] / "deploy" / "kamailio" / "sipsync-dispatcher.cfg"
# Short enough that a test sees a server leave and rejoin the set within seconds.
PING_INTERVAL = 1
# Long enough that a server slowed by a busy test machine is not taken for a dead one.
FR_TIMER_MS = 3000
# Every test device sends from 127.0.0.1: only the flood test limits one address.
NO_FLOOD_LIMIT = 1_000_000


@dataclass(frozen=True)
class Destination:
    """One sipsync server as the dispatcher sees it: `flags` "AP" while it answers the health
    checks, "IP" (inactive, probing) after it stopped."""

    uri: str
    flags: str

    @property
    def active(self) -> bool:
        return self.flags.startswith("A")


class Balancer:
    def __init__(self, run_dir: Path, port: int, servers: list[int],
                 ping_interval: int = PING_INTERVAL,
                 flood_requests: int = NO_FLOOD_LIMIT) -> None:
        self.run_dir = run_dir
        self.port = port
        self.servers = servers
        self.ping_interval = ping_interval
        self.flood_requests = flood_requests
        self.process: subprocess.Popen | None = None
        self.log_path = run_dir / "kamailio.log"
        self.control = f"unix:{run_dir / 'ctl'}"

    def start(self) -> Balancer:
        kamailio = require_tool("kamailio", "kamailio")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        servers = self.run_dir / "servers.list"
        servers.write_text("".join(f"1 sip:127.0.0.1:{port}\n" for port in self.servers))
        self.log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [kamailio, "-f", str(CONFIG), "-DD", "-E", "-Y", str(self.run_dir),
             "-P", str(self.run_dir / "kamailio.pid"), "-m", "64", "-M", "8",
             "-A", f"LISTEN_UDP=udp:127.0.0.1:{self.port}",
             "-A", f"LISTEN_TCP=tcp:127.0.0.1:{self.port}",
             "-A", f'DISPATCHER_LIST="{servers}"', "-A", f'CTL_SOCKET="{self.control}"',
             "-A", f"PING_INTERVAL={self.ping_interval}", "-A", f"FR_TIMER_MS={FR_TIMER_MS}",
             "-A", f"FLOOD_REQUESTS={self.flood_requests}", "-A", "NCHILD=2"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )

        def answering() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"kamailio exited: {self.logs()}")
            return bool(self._destinations(check=False))

        # The control socket answers once the SIP sockets are bound and the workers forked.
        wait_until(answering, what="kamailio's control socket", timeout=20, interval=0.1)
        return self

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        self.log.close()

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def destinations(self) -> dict[int, Destination]:
        """The dispatcher's servers by port."""
        return self._destinations(check=True)

    def _destinations(self, check: bool) -> dict[int, Destination]:
        result = subprocess.run([require_tool("kamcmd", "kamailio"), "-s", self.control,
                                 "dispatcher.list"], capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            if check:
                raise RuntimeError(f"kamcmd failed: {result.stderr}")
            return {}
        found = re.findall(r"URI:\s*(sip:[^\s]+)\s+FLAGS:\s*(\w+)", result.stdout)
        return {int(uri.rsplit(":", 1)[1]): Destination(uri, flags) for uri, flags in found}

    def wait_for_state(self, port: int, active: bool, timeout: float = 15) -> None:
        state = "back in" if active else "out of"

        def reached() -> bool:
            return self.destinations()[port].active == active

        wait_until(reached, what=f"the server on port {port} {state} the dispatcher's set",
                   timeout=timeout, interval=0.1)
        if active:
            # A health check sent while the server was down can still time out after the
            # server answered a newer one, and take it out of the set for a moment: a device
            # whose challenge and answer straddle that moment meets two servers. Wait until
            # every check sent before the server came back is over.
            time.sleep(FR_TIMER_MS / 1000 + self.ping_interval)
            wait_until(reached, what=f"the server on port {port} still in the dispatcher's set",
                       timeout=timeout, interval=0.1)
