"""What one registration costs the server, measured in process where other load on the machine
cannot move the figure: devices REGISTER with digest as the anchor's sipp scenario does (the
challenge, then the authorized REGISTER) through the server's SIP driver, its sends captured
instead of sent, the store's flushes included as the 0.2 s write-behind does them.

    python bench/register_cost.py [--registrations 2000]
    python bench/register_cost.py --callgrind [--registrations 1000]

The first prints the main thread's CPU time per registration (the median and the quickest of
blocks of 250). With --callgrind it runs itself under valgrind twice, with the registrations
and with none, and prints the instructions per registration: the difference over the count,
the same on a busy machine as on a quiet one. sip_bench.py measures the real process from
outside (sockets, sendto, the event loop); this says what the REGISTER path itself costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.register_memory import NONCE, REALM, credentials, phone, register_bytes  # noqa: E402
from control_server.config import ServerConfig  # noqa: E402
from control_server.server import ControlServer  # noqa: E402
from control_server.store import DirectoryStore  # noqa: E402

BLOCK = 250
USERS = 5000


async def register(data: Path, count: int) -> list[float]:
    """`count` registrations; the main thread's CPU seconds of each block of BLOCK."""
    config = ServerConfig(data_dir=data, sip_port=0, admin=False, realm=REALM,
                          throttle_allow="127.0.0.1", log_level="WARNING")
    server = ControlServer(config)
    await server.start()
    sent: list[bytes] = []
    server.driver.transport.send_here = lambda answer, destination: sent.append(answer)
    handle = server.driver.handle
    blocks, spent = [], 0.0
    try:
        for n in range(1, count + 1):
            first = register_bytes(n, 1)
            sent.clear()
            started = time.thread_time()
            handle(first, phone())
            spent += time.thread_time() - started
            nonce = NONCE.search(sent[0]).group(1).decode()
            second = register_bytes(n, 2, credentials(n, nonce))
            sent.clear()
            started = time.thread_time()
            handle(second, phone())
            spent += time.thread_time() - started
            if not sent or not sent[0].startswith(b"SIP/2.0 200"):
                raise SystemExit(f"user{n} was not registered: {sent[:1]!r}")
            if n % BLOCK == 0:
                started = time.thread_time()
                await server._flush()
                blocks.append(spent + time.thread_time() - started)
                spent = 0.0
    finally:
        await server.stop()
    return blocks


def provisioned(folder: Path, users: int) -> Path:
    data = folder / "data"
    store = DirectoryStore.open(data)
    store.realm(REALM)
    store.import_users((f"user{i}", f"pw{i}") for i in range(1, users + 1))
    store.close()
    return data


def instructions(count: int, template: Path, work: Path) -> int:
    """Instructions valgrind counts for this script's run of `count` registrations (both of
    the server's threads), on a copy of one provisioned data directory."""
    data = work / f"data-{count}"
    shutil.copytree(template, data)
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, __file__, "--run", str(count), "--data", str(data)]
    # One hash seed for both runs, so that the dictionaries grow and probe alike.
    done = subprocess.run(command, capture_output=True, text=True,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise SystemExit(f"valgrind failed:\n{done.stderr[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registrations", type=int, default=0,
                        help="default 2000, or 1000 with --callgrind")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--run", type=int, help=argparse.SUPPRESS)  # one run under valgrind
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run is not None:
        asyncio.run(register(args.data, args.run))
        return
    count = args.registrations or (1000 if args.callgrind else 2000)
    users = max(USERS, count)
    with tempfile.TemporaryDirectory(prefix="sipsync-register-cost-") as folder:
        data = provisioned(Path(folder), users)
        if args.callgrind:
            if shutil.which("valgrind") is None:
                raise SystemExit("--callgrind needs valgrind: apt-get install valgrind")
            without = instructions(0, data, Path(folder))
            with_them = instructions(count, data, Path(folder))
            print(f"{(with_them - without) / count:,.0f} instructions per registration "
                  f"({count} registrations, {users} users)")
            return
        blocks = [seconds / BLOCK * 1e6 for seconds in asyncio.run(register(data, count))]
    print(f"main thread CPU per registration over {len(blocks)} blocks of {BLOCK}: median "
          f"{statistics.median(blocks):.1f} µs, quickest {min(blocks):.1f} µs")


if __name__ == "__main__":
    main()
