"""A cluster as bench/sip_bench.py measures it: sipsync servers on one PostgreSQL store behind
Kamailio's dispatcher (deploy/kamailio), all children of this one process, so that the
harness's --server-pid measures the CPU and memory of the whole cluster. SIGTERM stops them.

    python bench/cluster_stack.py --store URL --balancer-port 5085 --ports 5091,5092 --run-dir DIR
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

from sip_bench import wait_answering  # bench/ is this script's folder, hence on sys.path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "deploy" / "kamailio" / "sipsync-dispatcher.cfg"


def start_server(store: str, port: int, run: Path) -> subprocess.Popen:
    port_file = run / f"port-{port}"
    port_file.unlink(missing_ok=True)
    data = run / f"server-{port}"
    data.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "control_server.cli", "--data-dir", str(data), "--store", store,
         "--node-name", f"bench-{port}", "--sip-port", str(port), "--no-admin",
         "--log-level", "WARNING", "--port-file", str(port_file),
         # Everything arrives from the balancer's address: no flood limit for it.
         "--throttle-allow", "127.0.0.1", "--workers", "1"],
        cwd=REPO)
    deadline = time.monotonic() + 600  # a server loads its directory and bindings first
    while not (port_file.exists() and port_file.read_text().strip()):
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"sipsync-server on {port} did not start")
        time.sleep(0.05)
    return process


def start_balancer(port: int, servers: list[int], run: Path) -> subprocess.Popen:
    listing = run / "servers.list"
    listing.write_text("".join(f"1 sip:127.0.0.1:{p}\n" for p in servers))
    process = subprocess.Popen(
        ["kamailio", "-f", str(CONFIG), "-DD", "-E", "-Y", str(run), "-P",
         str(run / "kamailio.pid"), "-m", "1024", "-M", "32",
         "-A", f"LISTEN_UDP=udp:127.0.0.1:{port}", "-A", f"LISTEN_TCP=tcp:127.0.0.1:{port}",
         "-A", f'DISPATCHER_LIST="{listing}"', "-A", f'CTL_SOCKET="unix:{run / "ctl"}"',
         "-A", "FLOOD_REQUESTS=100000000", "-A", "NCHILD=2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_answering(port, process)  # the listed servers start active: an answer means ready
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--balancer-port", type=int, required=True)
    parser.add_argument("--ports", required=True, help="the servers' SIP ports, comma separated")
    parser.add_argument("--run-dir", type=Path, required=True)
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",")]
    args.run_dir.mkdir(parents=True, exist_ok=True)
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        children += [start_server(args.store, port, args.run_dir) for port in ports]
        children.append(start_balancer(args.balancer_port, ports, args.run_dir))
        (args.run_dir / "ready").write_text("ready\n")
        while not stopping and all(child.poll() is None for child in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


if __name__ == "__main__":
    main()
