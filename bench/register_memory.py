"""Where a registered device's bytes go: devices REGISTER with digest, as the anchor's sipp
scenario does, to a server driven in process, and tracemalloc tells what each part of the server
kept per device once they are all bound (the store's writes flushed, the nonces still alive).

    python bench/register_memory.py [--devices 20000] [--depth 12] [--loaded]

Prints bytes per device by the line of server code that allocated them (the innermost frame in
control_server/ or protocols/), then by module, then the total. The bulk step of sip_bench.py
measures the same from outside (PSS of the real process); this says which structure to cut.
With --loaded, the devices register with one server, which stops, and what is measured is what a
second server on the same store keeps of each binding it loads at its start (a restart, or a
server joining a cluster).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import re
import sys
import tempfile
import time
import tracemalloc
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from control_server.config import ServerConfig  # noqa: E402
from control_server.server import ControlServer  # noqa: E402
from control_server.store import DirectoryStore  # noqa: E402
from protocols.sip.effects import Transmit  # noqa: E402
from protocols.sip.endpoint import Endpoint  # noqa: E402

REALM = "sipsync.test"
SERVER = "127.0.0.1:5070"
NONCE = re.compile(rb'nonce="([0-9a-f]+)"')
# Devices registered before the first snapshot, so one-time state (caches, first resizes of
# the small tables) is not counted as per-device.
WARM_UP = 2000


def register_bytes(n: int, step: int, authorization: str = "") -> bytes:
    """The anchor scenario's REGISTER of user<n> (its step 1 or 2), as sipp writes it."""
    user = f"user{n}"
    lines = [
        f"REGISTER sip:{SERVER} SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-4242-{n}-{step};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@127.0.0.1>;tag=4242R{n}",
        f"To: <sip:{user}@127.0.0.1>",
        f"Call-ID: {n}-4242@127.0.0.1",
        f"CSeq: {step} REGISTER",
        f"Contact: <sip:{user}@127.0.0.1:5071;transport=UDP>",
        *([authorization] if authorization else []),
        "Expires: 3600",
        "User-Agent: sipp-bench",
        "Content-Length: 0",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def credentials(n: int, nonce: str) -> str:
    user, uri, cnonce = f"user{n}", f"sip:{SERVER}", f"{n * 2654435761 % 2**32:08x}"
    ha1 = _md5(f"{user}:{REALM}:pw{n}")
    response = _md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{_md5(f'REGISTER:{uri}')}")
    return (f'Authorization: Digest username="{user}",realm="{REALM}",cnonce="{cnonce}",'
            f'nc=00000001,qop=auth,uri="{uri}",nonce="{nonce}",response="{response}",'
            f"algorithm=MD5")


def phone() -> Endpoint:
    """Where sipp's datagram came from, made anew for each as the UDP transport makes it."""
    return Endpoint("udp", ".".join(("127", "0", "0", "1")), int("5071"))


def register(server: ControlServer, n: int) -> None:
    now = time.time()
    (challenge,) = [e for e in server.register_received(register_bytes(n, 1), phone(), now)
                    if isinstance(e, Transmit)]
    nonce = NONCE.search(challenge.data).group(1).decode()
    (ok,) = [e for e in server.register_received(register_bytes(n, 2, credentials(n, nonce)),
                                                 phone(), time.time())
             if isinstance(e, Transmit)]
    if not ok.data.startswith(b"SIP/2.0 200"):
        raise SystemExit(f"user{n} was not registered: {ok.data[:60]!r}")


async def register_all(server: ControlServer, first: int, count: int) -> None:
    for n in range(first, first + count):
        register(server, n)
        if n % 500 == 0:
            await server._flush()  # what the 0.2 s write-behind does while a load runs
    await server._flush()


def where(trace: tracemalloc.Traceback) -> str:
    """The innermost frame of server code in the allocation's traceback."""
    for frame in reversed(trace):  # tracemalloc lists the most recent call last
        name = frame.filename
        if ("/control_server/" in name or "/protocols/" in name) and "/bench/" not in name:
            return f"{Path(name).relative_to(REPO)}:{frame.lineno}"
    return "elsewhere: " + (f"{trace[-1].filename}:{trace[-1].lineno}" if len(trace) else "?")


def server_on(data: Path) -> ControlServer:
    return ControlServer(ServerConfig(data_dir=data, sip_port=0, admin=False, realm=REALM,
                                      throttle_allow="127.0.0.1", log_level="WARNING"))


async def profile(devices: int, depth: int, data: Path, loaded: bool) -> None:
    server = server_on(data)
    await server.start()
    try:
        await register_all(server, 1, WARM_UP)
        gc.collect()
        tracemalloc.start(depth)
        before = tracemalloc.take_snapshot()
        await register_all(server, WARM_UP + 1, devices)
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
    finally:
        await server.stop()
    if loaded:
        before, after = await loading(devices, depth, data)
        report(before, after, WARM_UP + devices, "loaded by a server at its start")
    else:
        report(before, after, devices, f"registered beside {WARM_UP} warm-up ones")


async def loading(devices: int, depth: int,
                  data: Path) -> tuple[tracemalloc.Snapshot, tracemalloc.Snapshot]:
    """What a second server on the store keeps of every binding it loads at its start."""
    again = server_on(data)  # the directory is read here, not at the start
    gc.collect()
    tracemalloc.start(depth)
    before = tracemalloc.take_snapshot()
    await again.start()
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    try:
        online = len(again.online_bindings())
    finally:
        await again.stop()
    if online != WARM_UP + devices:
        raise SystemExit(f"the second server loaded {online} bindings, not {WARM_UP + devices}")
    return before, after


def report(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, devices: int,
           how: str) -> None:
    by_line: Counter[str] = Counter()
    for stat in after.compare_to(before, "traceback"):
        by_line[where(stat.traceback)] += stat.size_diff
    by_module: Counter[str] = Counter()
    for line, size in by_line.items():
        by_module[line.rsplit(":", 1)[0]] += size
    print(f"{devices} devices {how}; bytes per device:")
    print("\nby line of server code:")
    for line, size in by_line.most_common():
        if abs(size) / devices >= 2:
            print(f"  {size / devices:8.1f}  {line}")
    print("\nby module:")
    for module, size in by_module.most_common():
        if abs(size) / devices >= 1:
            print(f"  {size / devices:8.1f}  {module}")
    print(f"\ntotal: {sum(by_line.values()) / devices:.0f} B per device")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=20_000)
    parser.add_argument("--depth", type=int, default=12, help="frames kept per allocation")
    parser.add_argument("--loaded", action="store_true",
                        help="what a server keeps of the bindings it loads at its start")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sipsync-memory-") as folder:
        data = Path(folder) / "data"
        store = DirectoryStore.open(data)
        store.realm(REALM)
        store.import_users((f"user{i}", f"pw{i}") for i in range(1, WARM_UP + args.devices + 1))
        store.close()
        asyncio.run(profile(args.devices, args.depth, data, args.loaded))


if __name__ == "__main__":
    main()
