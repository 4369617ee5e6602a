"""What one registration costs the server, measured in process where other load on the machine
cannot move the figure: devices REGISTER with digest as the anchor's sipp scenario does (the
challenge, then the authorized REGISTER) through the server's SIP driver, its sends captured
instead of sent, the store's flushes included as the 0.2 s write-behind does them.

    python bench/register_cost.py [--registrations 2000]
    python bench/register_cost.py --callgrind [--registrations 1000]

    python bench/register_cost.py --callgrind --sockets [--registrations 1000] [--window 16]

The first prints the main thread's CPU time per registration (the median and the quickest of
blocks of 250). With --callgrind it runs itself under valgrind twice, with the registrations
and with none, and prints the instructions per registration: the difference over the count,
the same on a busy machine as on a quiet one. sip_bench.py measures the real process from
outside (sockets, sendto, the event loop); this says what the REGISTER path itself costs.

With --sockets the server runs as the CLI runs it (uvloop, its UDP socket on loopback) in a
process of its own, the one valgrind counts, and a client here sends the REGISTERs over UDP,
--window users under way at once (1: each datagram read alone): the count then takes in the event loop, the socket calls'
Python side and the timers, though not the kernel's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import socket
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
# Users whose registration is under way at once in --sockets, by default: enough for the
# server to find several datagrams waiting when it reads.
WINDOW = 16
CALL_ID = re.compile(rb"Call-ID: (\d+)-")


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


async def serve(data: Path, count: int, port_file: Path) -> None:
    """The server on a loopback UDP port (written to `port_file`) until `count` devices
    registered through it."""
    config = ServerConfig(data_dir=data, sip_host="127.0.0.1", sip_port=0, admin=False,
                          realm=REALM, throttle_allow="127.0.0.1", log_level="WARNING")
    server = ControlServer(config)
    await server.start()
    port_file.write_text(str(server.port))
    try:
        while server.counters["registrations"] < count:
            await asyncio.sleep(0.05)
    finally:
        await server.stop()


def drive(port: int, count: int, window: int) -> None:
    """Register users 1..count with the server on `port` over UDP, `window` at a time."""
    server = ("127.0.0.1", port)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(60.0)  # a server under valgrind is slow, not silent
    under_way, started, done = 0, 0, 0
    with client:
        while done < count:
            while under_way < window and started < count:
                started += 1
                under_way += 1
                client.sendto(register_bytes(started, 1), server)
            try:
                answer = client.recv(65535)
            except TimeoutError:
                raise SystemExit(f"no answer from the server after {done} registrations")
            n = int(CALL_ID.search(answer).group(1))
            if answer.startswith(b"SIP/2.0 401"):
                nonce = NONCE.search(answer).group(1).decode()
                client.sendto(register_bytes(n, 2, credentials(n, nonce)), server)
            elif answer.startswith(b"SIP/2.0 200"):
                done += 1
                under_way -= 1
            else:
                raise SystemExit(f"user{n} was not registered: {answer[:80]!r}")


def provisioned(folder: Path, users: int) -> Path:
    data = folder / "data"
    store = DirectoryStore.open(data)
    store.realm(REALM)
    store.import_users((f"user{i}", f"pw{i}") for i in range(1, users + 1))
    store.close()
    return data


def instructions(count: int, template: Path, work: Path, sockets: bool = False,
                 window: int = WINDOW) -> int:
    """Instructions valgrind counts for this script's run of `count` registrations (both of
    the server's threads), on a copy of one provisioned data directory; with `sockets`, of
    the server process a client here registers the users with."""
    data = work / f"data-{count}"
    shutil.copytree(template, data)
    mode = ["--serve", str(work / f"port-{count}")] if sockets else []
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, __file__, "--run", str(count), "--data", str(data), *mode]
    # One hash seed for both runs, so that the dictionaries grow and probe alike.
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    if not sockets:
        done = subprocess.run(command, capture_output=True, text=True, env=env)
    else:
        port_file = work / f"port-{count}"
        with subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env) as server:
            while not port_file.exists() or not port_file.read_text():
                if server.poll() is not None:
                    break
                time.sleep(0.1)
            else:
                drive(int(port_file.read_text()), count, window)
            _, stderr = server.communicate(timeout=600)
        done = subprocess.CompletedProcess(command, server.returncode, "", stderr)
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
    parser.add_argument("--sockets", action="store_true",
                        help="with --callgrind: the server in a process of its own, over UDP")
    parser.add_argument("--window", type=int, default=WINDOW,
                        help="with --sockets: registrations under way at once")
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # its port file
    args = parser.parse_args()
    if args.run is not None:
        if args.serve is None:
            asyncio.run(register(args.data, args.run))
            return
        import uvloop  # as the CLI runs the server

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        asyncio.run(serve(args.data, args.run, args.serve))
        return
    if args.sockets and not args.callgrind:
        raise SystemExit("--sockets goes with --callgrind")
    count = args.registrations or (1000 if args.callgrind else 2000)
    users = max(USERS, count)
    with tempfile.TemporaryDirectory(prefix="sipsync-register-cost-") as folder:
        data = provisioned(Path(folder), users)
        if args.callgrind:
            if shutil.which("valgrind") is None:
                raise SystemExit("--callgrind needs valgrind: apt-get install valgrind")
            without = instructions(0, data, Path(folder), args.sockets, args.window)
            with_them = instructions(count, data, Path(folder), args.sockets, args.window)
            where = (f"the server process, over UDP, {args.window} under way" if args.sockets
                     else "in process")
            print(f"{(with_them - without) / count:,.0f} instructions per registration "
                  f"({count} registrations, {users} users, {where})")
            return
        blocks = [seconds / BLOCK * 1e6 for seconds in asyncio.run(register(data, count))]
    print(f"main thread CPU per registration over {len(blocks)} blocks of {BLOCK}: median "
          f"{statistics.median(blocks):.1f} µs, quickest {min(blocks):.1f} µs")


if __name__ == "__main__":
    main()
