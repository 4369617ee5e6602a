"""Session set-up latency through the control server: INVITE (answering the 407) to ACK, for
sessions started in parallel by real peers, each answered with a real descriptor and a freshly
opened data endpoint. Prints the median and the 99th percentile.

    python bench/session_bench.py [--sessions 1000] [--parallel 10]

The server runs in its own process; the callers and callees share this one.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from control_server.store import DirectoryStore  # noqa: E402
from peer import config as peer_config  # noqa: E402
from peer.caller import Caller  # noqa: E402
from peer.config import Dataset, PeerConfig  # noqa: E402
from peer.peer import Peer  # noqa: E402
from session_xml import DataType, SyncProtocol  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def run(args: argparse.Namespace, work: Path, port: int) -> list[float]:
    def device(name: str) -> Peer:
        folder = work / name / "data"
        folder.mkdir(parents=True)
        dataset = Dataset("d", DataType.FILES, folder, (SyncProtocol.RSYNC,))
        config = PeerConfig(data_dir=work / name, server=f"127.0.0.1:{port}", user="bench",
                            password="bench-pw", device=name, datasets={"d": dataset})
        peer_config.save(config)
        return Peer(config)

    callees = [device(f"callee{i}") for i in range(args.parallel)]
    caller = device("caller")
    for peer in (*callees, caller):
        await peer.start()
    for peer in (*callees, caller):
        await peer.wait_online()

    latencies: list[float] = []

    async def worker(index: int) -> None:
        for _ in range(args.sessions // args.parallel):
            session = Caller(caller.agent, caller.config, caller.identity,
                             caller.config.datasets["d"], f"bench/callee{index}")
            started = time.perf_counter()
            refused = await session.establish()
            if refused is not None:
                raise SystemExit(f"session refused: {refused.line()}")
            latencies.append(time.perf_counter() - started)
            await session.hang_up()

    await asyncio.gather(*(worker(i) for i in range(args.parallel)))
    for peer in (caller, *callees):
        await peer.stop()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--port", type=int, default=5076)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sipsync-session-bench-"))
    store = DirectoryStore.open(work / "server")
    store.add_user("bench", "bench-pw")
    store.close()
    server = subprocess.Popen(
        [sys.executable, "-m", "control_server.cli", "--data-dir", str(work / "server"),
         "--sip-port", str(args.port), "--no-admin", "--log-level", "WARNING",
         # Every simulated device sends from 127.0.0.1: as a load balancer would, not a flood.
         "--throttle-allow", "127.0.0.1", "--workers", "1"], cwd=REPO)
    try:
        time.sleep(1.0)
        latencies = asyncio.run(run(args, work, args.port))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
    ms = [v * 1000 for v in latencies]
    print(f"{len(ms)} sessions, {args.parallel} in parallel: INVITE (with 407) to ACK "
          f"median {statistics.median(ms):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, "
          f"max {max(ms):.2f} ms (target: median under 5 ms)")


if __name__ == "__main__":
    main()
