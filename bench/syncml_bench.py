"""Record sync benchmark: a slow sync of two 100,000-vCard stores that differ in 1 %, and two-way
syncs of a few changes each side among them, each over TCP loopback with length-prefixed frames.

    python bench/syncml_bench.py [--items 100000] [--repeat 3]

Prints time (median of the repeats), messages and bytes on the wire, items moved, and peak memory
(Python heap by tracemalloc, in a separate untimed run, and the process's max RSS).
Anchor: the contact-sync study among the project's sources took 5,787 s for a full sync of 4,000
contacts.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peer.record_store import RecordStore  # noqa: E402
from protocols.syncml import SessionState, SyncCallee, SyncCaller, SyncMode  # noqa: E402

STUDY_SECONDS, STUDY_CONTACTS = 5787, 4000


def vcard(number: int, revision: str = "") -> bytes:
    return (
        f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bench-{number:06d}\r\nFN:Person {number}{revision}\r\n"
        f"N:{number};Person;;;\r\nTEL;TYPE=CELL:+1555{number:07d}\r\nEMAIL:person{number}@example.org\r\n"
        f"ORG:Example Org {number % 97}\r\nNOTE:Met at conference {number % 13}{revision}\r\nEND:VCARD\r\n"
    ).encode()


@dataclass
class Run:
    seconds: float
    messages: int
    bytes: int
    moved: int


async def _drive(session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wire: list[int]) -> None:
    """The whole of the asyncio glue: frames out, frames in, until the session ends."""
    try:
        while True:
            for data in session.data_to_send():
                writer.write(len(data).to_bytes(4, "big") + data)
                wire[0] += 1
                wire[1] += len(data)
            await writer.drain()
            if session.state is not SessionState.RUNNING:
                return
            size = int.from_bytes(await reader.readexactly(4), "big")
            session.receive(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return
    finally:
        writer.close()


async def _sync_over_tcp(caller: SyncCaller, callee: SyncCallee) -> tuple[int, int]:
    wire = [0, 0]
    served = asyncio.get_running_loop().create_future()

    async def on_connect(reader, writer):
        await _drive(callee, reader, writer, wire)
        served.set_result(None)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _drive(caller, reader, writer, wire)
    await served
    server.close()
    await server.wait_closed()
    return wire[0], wire[1]


def sync(path_a: Path, path_b: Path, mode: SyncMode) -> Run:
    with RecordStore(path_a) as a, RecordStore(path_b) as b:
        started = time.perf_counter()
        caller = SyncCaller(a, device="phone", peer="laptop", dataset="contacts", mode=mode)
        callee = SyncCallee(b, device="laptop", dataset="contacts")
        messages, size = asyncio.run(_sync_over_tcp(caller, callee))
        seconds = time.perf_counter() - started
        if caller.state is not SessionState.DONE or callee.state is not SessionState.DONE:
            raise SystemExit(f"sync failed: {caller.error} / {callee.error}")
        moved = caller.report.items_sent + callee.report.items_sent
        return Run(seconds, messages, size, moved)


def peak_python_mb(path_a: Path, path_b: Path, mode: SyncMode) -> float:
    tracemalloc.start()
    sync(path_a, path_b, mode)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 1e6


def copy_store(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)


def build(directory: Path, items: int) -> tuple[Path, Path]:
    """Two stores with the same `items` cards, then 1 % of them made different on one side or the other."""
    path_a, path_b = directory / "phone.db", directory / "laptop.db"
    with RecordStore(path_a) as a, a.batch():
        for number in range(items):
            a.add(vcard(number), "text/vcard")
    copy_store(path_a, path_b)
    differ = items // 100
    with RecordStore(path_a) as a, RecordStore(path_b) as b, a.batch(), b.batch():
        for k in range(differ * 2 // 5):
            a.replace(f"bench-{2 * k:06d}", vcard(2 * k, " (phone)"))
            b.replace(f"bench-{2 * k + 1:06d}", vcard(2 * k + 1, " (laptop)"))
        for k in range(differ // 10):
            a.add(vcard(items + 2 * k), "text/vcard")
            b.add(vcard(items + 2 * k + 1), "text/vcard")
    return path_a, path_b


def change_both(path_a: Path, path_b: Path, per_side: int, round_number: int, items: int) -> None:
    stride = items // (2 * per_side)
    with RecordStore(path_a) as a, RecordStore(path_b) as b, a.batch(), b.batch():
        for k in range(per_side):
            a.replace(f"bench-{2 * k * stride:06d}", vcard(2 * k * stride, f" r{round_number}a"))
            b.replace(f"bench-{(2 * k + 1) * stride:06d}", vcard((2 * k + 1) * stride, f" r{round_number}b"))


def check(runs: list[Run], moved: int) -> None:
    for run in runs:
        if run.moved != moved:
            raise SystemExit(f"expected {moved} items to cross, {run.moved} did: the figures would be wrong")


def row(name: str, runs: list[Run], peak: float, target: str) -> str:
    seconds = statistics.median(run.seconds for run in runs)
    run = runs[-1]
    return f"| {name} | {seconds:.3f} | {run.messages} | {run.bytes:,} | {run.moved:,} | {peak:.0f} | {target} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    items = args.items
    rows = []
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        started = time.perf_counter()
        path_a, path_b = build(directory, items)
        print(f"built two stores of {items:,} vCards in {time.perf_counter() - started:.1f} s", flush=True)
        saved_a, saved_b = directory / "phone.saved", directory / "laptop.saved"
        # the backup API, not a file copy: recent writes may still sit in the WAL file
        copy_store(path_a, saved_a)
        copy_store(path_b, saved_b)

        slow_runs = []
        for _ in range(args.repeat):
            copy_store(saved_a, path_a)
            copy_store(saved_b, path_b)
            slow_runs.append(sync(path_a, path_b, SyncMode.SLOW))
        copy_store(saved_a, path_a)
        copy_store(saved_b, path_b)
        check(slow_runs, items // 100)
        slow_peak = peak_python_mb(path_a, path_b, SyncMode.SLOW)
        rows.append(row(f"slow sync, {items:,} items, 1 % differ", slow_runs, slow_peak, "< 10 s"))

        round_number = 0
        for per_side, target in ((100, "< 0.5 s"), (10, "bytes ~ changes")):
            runs = []
            for _ in range(args.repeat):
                round_number += 1
                change_both(path_a, path_b, per_side, round_number, items)
                runs.append(sync(path_a, path_b, SyncMode.TWO_WAY))
            check(runs, 2 * per_side)
            round_number += 1
            change_both(path_a, path_b, per_side, round_number, items)
            peak = peak_python_mb(path_a, path_b, SyncMode.TWO_WAY)
            rows.append(row(f"two-way, {per_side} + {per_side} changes among {items:,}", runs, peak, target))

        with RecordStore(path_a) as a, RecordStore(path_b) as b:
            same = {(m.id, m.hash) for m in a.scan()} == {(m.id, m.hash) for m in b.scan()}

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print()
    print(f"python bench/syncml_bench.py --items {items} --repeat {args.repeat}")
    print()
    print("| scenario | time s (median) | messages | bytes on wire | items moved | peak Python MB | target |")
    print("|---|---:|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    print()
    print(f"stores identical afterwards: {same}; process max RSS {rss:.0f} MB")
    slow = statistics.median(run.seconds for run in slow_runs)
    study_rate = STUDY_CONTACTS / STUDY_SECONDS
    print(
        f"anchor: the contact-sync study's full sync ran {study_rate:.2f} contacts/s ({STUDY_CONTACTS:,} in "
        f"{STUDY_SECONDS:,} s); this slow sync compared {items / slow:,.0f} items/s"
    )


if __name__ == "__main__":
    main()
