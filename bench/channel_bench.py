"""Data channel throughput on loopback against a plain asyncio TLS copy of the same bytes.

    .venv/bin/python bench/channel_bench.py [--mib 1024] [--repeat 3] [--uvloop]

Both runs use the same TLS contexts (so the same cipher), the same 256 KiB writes and one event
loop in one process; the anchor receives with a bare asyncio.Protocol that only counts bytes.
Prints the medians in MiB/s and the ratio channel / plain TLS (target: 0.8 or more).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.channel.connection import Timeouts, connect, listen  # noqa: E402
from protocols.channel.framing import DATA_CHUNK_SIZE, FrameType  # noqa: E402
from protocols.channel.identity import DeviceIdentity  # noqa: E402
from protocols.channel.tls import client_context, server_context  # noqa: E402

MIB = 1024 * 1024


async def channel_run(
    callee: DeviceIdentity, caller: DeviceIdentity, total: int
) -> tuple[float, str]:
    """Seconds to move `total` bytes as DATA frames, and the negotiated cipher."""
    timeouts = Timeouts(idle=30.0)
    listener = await listen(callee, caller.fingerprint, "bench", timeouts=timeouts)
    async with listener:
        dialing = asyncio.create_task(
            connect(
                caller, "127.0.0.1", listener.port, callee.fingerprint, "bench", timeouts=timeouts
            )
        )
        receiver = await listener.accept(timeout=10)
        sender = await dialing
    payload = bytes(DATA_CHUNK_SIZE)

    async def send() -> None:
        remaining = total
        while remaining:
            size = min(remaining, DATA_CHUNK_SIZE)
            await sender.send(
                FrameType.DATA, payload if size == DATA_CHUNK_SIZE else payload[:size]
            )
            remaining -= size

    start = time.perf_counter()
    sending = asyncio.create_task(send())
    received = 0
    while received < total:
        received += len((await receiver.receive()).payload)
    elapsed = time.perf_counter() - start
    await sending
    cipher = sender.cipher
    await sender.close()
    await receiver.close()
    return elapsed, cipher


class _CountingProtocol(asyncio.BufferedProtocol):
    """The leanest receiver asyncio allows: TLS decrypts into one reused buffer; bytes counted."""

    def __init__(self, total: int, done: asyncio.Future[float]):
        self.total, self.done, self.received = total, done, 0
        self.buffer = memoryview(bytearray(DATA_CHUNK_SIZE))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        if self.received >= self.total and not self.done.done():
            self.done.set_result(time.perf_counter())


async def plain_tls_run(callee: DeviceIdentity, total: int) -> tuple[float, str]:
    """Seconds to move `total` bytes over a bare asyncio TLS connection, and the cipher."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[float] = loop.create_future()
    server = await loop.create_server(
        lambda: _CountingProtocol(total, done), "127.0.0.1", 0, ssl=server_context(callee)
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(), server_hostname=None
    )
    cipher = writer.get_extra_info("cipher")[0]
    payload = bytes(DATA_CHUNK_SIZE)
    start = time.perf_counter()
    remaining = total
    while remaining:
        size = min(remaining, DATA_CHUNK_SIZE)
        writer.write(payload if size == DATA_CHUNK_SIZE else payload[:size])
        await writer.drain()
        remaining -= size
    finished = await done
    writer.close()
    await writer.wait_closed()
    server.close()
    return finished - start, cipher


async def bench(total: int, repeat: int, limit: float) -> None:
    with tempfile.TemporaryDirectory() as directory:
        callee = DeviceIdentity.load_or_create(Path(directory) / "callee", "callee")
        caller = DeviceIdentity.load_or_create(Path(directory) / "caller", "caller")
        channel_rates, plain_rates = [], []
        for run in range(1, repeat + 1):
            # Alternate, so that a neighbour's load spike does not fall on one side only.
            async with asyncio.timeout(limit):
                seconds, channel_cipher = await channel_run(callee, caller, total)
            channel_rates.append(total / MIB / seconds)
            async with asyncio.timeout(limit):
                seconds, plain_cipher = await plain_tls_run(callee, total)
            plain_rates.append(total / MIB / seconds)
            print(
                f"run {run}: channel {channel_rates[-1]:8.1f} MiB/s   plain TLS {plain_rates[-1]:8.1f} MiB/s"
            )
    channel, plain = statistics.median(channel_rates), statistics.median(plain_rates)
    print(f"cipher: channel {channel_cipher}, plain TLS {plain_cipher}")
    print(
        f"bytes per run: {total / MIB:.0f} MiB, DATA frames of {DATA_CHUNK_SIZE // 1024} KiB, {repeat} runs"
    )
    print(f"median channel:   {channel:8.1f} MiB/s")
    print(f"median plain TLS: {plain:8.1f} MiB/s")
    print(f"ratio channel / plain TLS: {channel / plain:.2f}  (target >= 0.80)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB moved per run (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument(
        "--limit", type=float, default=120.0, help="seconds allowed per run (default 120)"
    )
    parser.add_argument(
        "--uvloop", action="store_true", help="run on uvloop instead of asyncio's loop"
    )
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    print(f"event loop: {'uvloop' if args.uvloop else 'asyncio'}")
    asyncio.run(bench(args.mib * MIB, args.repeat, args.limit))


if __name__ == "__main__":
    main()
