"""Data channel throughput on loopback against a plain asyncio TLS copy of the same bytes.

    .venv/bin/python bench/channel_bench.py [--mib 1024] [--repeat 3] [--frame-kib 256] [--uvloop]

Both runs use the same TLS contexts (so the same cipher), the same write size and one event loop in
one process; the anchor receives with a bare asyncio.BufferedProtocol that only counts bytes.
Channel and plain runs alternate, and each pair gives a ratio: on a shared machine a neighbour's
load burst then hits one pair, not one side. The ratio is also given by CPU time (the process's
user + system seconds), which other processes' load does not inflate. Target: 0.8 or more.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from protocols.channel import Timeouts, connect, listen  # noqa: E402
from protocols.channel.framing import DATA_CHUNK_SIZE, FrameType  # noqa: E402
from protocols.channel.identity import DeviceIdentity  # noqa: E402
from protocols.channel.tls import client_context, server_context  # noqa: E402

MIB = 1024 * 1024


@dataclass(frozen=True)
class Run:
    wall: float  # seconds
    cpu: float  # seconds of this process, user + system
    cipher: str


async def channel_run(
    callee: DeviceIdentity, caller: DeviceIdentity, total: int, write_size: int
) -> Run:
    """Move `total` bytes as DATA frames of `write_size` bytes over a channel."""
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
    payload = bytes(write_size)

    async def send() -> None:
        remaining = total
        while remaining:
            size = min(remaining, write_size)
            await sender.send(FrameType.DATA, payload if size == write_size else payload[:size])
            remaining -= size

    async def move() -> None:
        sending = asyncio.create_task(send())
        received = 0
        while received < total:
            received += len((await receiver.receive()).payload)
        await sending

    wall, cpu = await _timed(move)
    cipher = sender.cipher
    await sender.close()
    await receiver.close()
    return Run(wall, cpu, cipher)


class _CountingProtocol(asyncio.BufferedProtocol):
    """The leanest receiver asyncio allows: TLS decrypts into one reused buffer; bytes counted."""

    def __init__(self, total: int, done: asyncio.Future[None], buffer_size: int):
        self.total, self.done, self.received = total, done, 0
        self.buffer = memoryview(bytearray(buffer_size))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        if self.received >= self.total and not self.done.done():
            self.done.set_result(None)


async def plain_tls_run(callee: DeviceIdentity, total: int, write_size: int) -> Run:
    """Move `total` bytes in writes of `write_size` bytes over a bare asyncio TLS connection."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    server = await loop.create_server(
        lambda: _CountingProtocol(total, done, write_size),
        "127.0.0.1",
        0,
        ssl=server_context(callee),
    )
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=client_context(), server_hostname=None
    )
    payload = bytes(write_size)

    async def move() -> None:
        remaining = total
        while remaining:
            size = min(remaining, write_size)
            writer.write(payload if size == write_size else payload[:size])
            await writer.drain()
            remaining -= size
        await done

    wall, cpu = await _timed(move)
    cipher = writer.get_extra_info("cipher")[0]
    writer.close()
    await writer.wait_closed()
    server.close()
    return Run(wall, cpu, cipher)


async def _timed(work: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    await work()
    return time.perf_counter() - wall, time.process_time() - cpu


async def bench(total: int, repeat: int, write_size: int, limit: float) -> None:
    with tempfile.TemporaryDirectory() as directory:
        callee = DeviceIdentity.load_or_create(Path(directory) / "callee", "callee")
        caller = DeviceIdentity.load_or_create(Path(directory) / "caller", "caller")
        pairs: list[tuple[Run, Run]] = []
        for number in range(1, repeat + 1):
            async with asyncio.timeout(limit):
                channel = await channel_run(callee, caller, total, write_size)
            async with asyncio.timeout(limit):
                plain = await plain_tls_run(callee, total, write_size)
            pairs.append((channel, plain))
            print(
                f"run {number}: channel {_rate(total, channel.wall):7.1f} MiB/s, "
                f"plain TLS {_rate(total, plain.wall):7.1f} MiB/s, "
                f"ratio {plain.wall / channel.wall:.2f} (by CPU time {plain.cpu / channel.cpu:.2f})"
            )
    channel_rate = statistics.median(_rate(total, channel.wall) for channel, _ in pairs)
    plain_rate = statistics.median(_rate(total, plain.wall) for _, plain in pairs)
    ratio = statistics.median(plain.wall / channel.wall for channel, plain in pairs)
    cpu_ratio = statistics.median(plain.cpu / channel.cpu for channel, plain in pairs)
    print(f"cipher: channel {pairs[0][0].cipher}, plain TLS {pairs[0][1].cipher}")
    print(f"{total // MIB} MiB per run, writes of {write_size // 1024} KiB, {repeat} runs of each")
    print(f"median channel:   {channel_rate:7.1f} MiB/s")
    print(f"median plain TLS: {plain_rate:7.1f} MiB/s")
    print(f"ratio channel / plain TLS: {ratio:.2f} (median of the pairs; target >= 0.80)")
    print(f"ratio by CPU time:         {cpu_ratio:.2f}")


def _rate(total: int, seconds: float) -> float:
    return total / MIB / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024, help="MiB moved per run (default 1024)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind (default 3)")
    parser.add_argument(
        "--frame-kib",
        type=int,
        default=DATA_CHUNK_SIZE // 1024,
        help=f"KiB per DATA frame and per plain write (default {DATA_CHUNK_SIZE // 1024})",
    )
    parser.add_argument("--limit", type=float, default=120.0, help="seconds allowed per run")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, not asyncio's loop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    print(f"event loop: {'uvloop' if args.uvloop else 'asyncio'}")
    asyncio.run(bench(args.mib * MIB, args.repeat, args.frame_kib * 1024, args.limit))


if __name__ == "__main__":
    main()
