"""Live sync benchmark: how soon a change made on one device is on the other, by itself.

Anchors, measured in the same run: Syncthing (Debian's `syncthing`), two instances on loopback
with static addresses and no discovery or relays (`<repo>/../shared/anchors/folder/syncthing_pair.sh`),
once with its default watcher delay (10 s) and once with `WATCHER_DELAY=1`. Not a test.

    python bench/live_bench.py [--edits 50] [--devices 10000] [--seconds 90] [--idle 30]
                               [--syncthing-edits 20] [--skip-syncthing] [--keep]

sipsync runs as one `sipsync-server` and two live `sipsync-peer daemon`s (a folder and a contacts
dataset, each with the other device as partner), on loopback with ports the OS picks. Measured:
- file: a 4 KiB file rewritten on A until the same bytes are on B (B's file polled every 5 ms);
- record: a vCard imported into A's store until it is in B's store (read-only SQLite, 5 ms);
- catch-up: B stopped, 100 files written on A, B started: from the time B logs its REGISTER's 200
  until B holds all 100;
- idle: CPU of each daemon and of the server over --idle seconds with nothing changing;
- presence load: a second server with --devices simulated devices (two to a user) that REGISTER
  with digest, SUBSCRIBE to `reg` and re-REGISTER every 48 s (the daemon's 60 s keepalive): the
  server's CPU over --seconds, and the NOTIFYs that arrive in that time (none should: a refresh
  is not a change).
The same file edit is timed on the Syncthing pair (polled every 5 ms too). Every process started
is stopped by its PID, every folder made is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.presence_load import LoadResult, accounts_for, cpu_seconds, run_load  # noqa: E402
from peer.record_store import RecordStore, store_path  # noqa: E402

# beside the repository (a worktree may sit one level deeper)
ANCHORS = next((up / "shared" / "anchors" / "folder" for up in REPO.parents
                if (up / "shared" / "anchors" / "folder").is_dir()),
               REPO.parent / "shared" / "anchors" / "folder")
POLL = 0.005
EDIT_TIMEOUT = 30.0     # one edit not arrived by then counts as lost, and the run goes on
SMALL = 4096
CATCH_UP_FILES = 100
MAX_EDITS, MAX_DEVICES, MAX_SECONDS = 500, 20_000, 600
DEVICES_PER_USER = 2    # a laptop and a phone: each one's REGISTER is news to the other


def until(condition: Callable[[], object], timeout: float, what: str) -> float:
    """Poll `condition` every POLL s; the perf_counter time it first held."""
    deadline = time.perf_counter() + timeout
    while True:
        if condition():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(POLL)


def holds(path: Path, data: bytes) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return path.read_bytes() == data
        except OSError:
            return False
    return check


def summary(delays: list[float]) -> tuple[float, float]:
    """Median and p99 (the nearest rank) of the delays."""
    ordered = sorted(delays)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]


# ------------------------------------------------------------------ sipsync live pair
class LivePair:
    def __init__(self, work: Path) -> None:
        from tests.e2e.conftest import Deployment, peer_cli

        self.peer_cli = peer_cli
        self.deployment = Deployment(work / "sipsync")
        self.deployment.user("bench", "bench-pw")
        self.deployment.start_server("--log-level", "WARNING")
        self.a = self.deployment.device("bench", "bench-pw", "laptop")
        self.b = self.deployment.device("bench", "bench-pw", "phone")
        self.folder_a, self.folder_b = work / "a-notes", work / "b-notes"
        self.cards_a, self.cards_b = work / "a-contacts", work / "b-contacts"
        for device, folder, cards, partner in ((self.a, self.folder_a, self.cards_a, "bench/phone"),
                                               (self.b, self.folder_b, self.cards_b, "bench/laptop")):
            folder.mkdir(), cards.mkdir()
            device.dataset("notes", folder, "files", "--partners", partner)
            device.dataset("contacts", cards, "contacts", "--partners", partner)
        self.a.start(), self.b.start()
        until(lambda: len(self.deployment.online()) == 2, 30, "both daemons online")
        self.settle()

    def status(self, device) -> list[dict]:
        import json

        result = self.peer_cli(device.data_dir, "status", "--json")
        return json.loads(result.stdout or "{}").get("live", []) if result.returncode == 0 else []

    def settle(self, timeout: float = 60) -> None:
        """Until both daemons say every link is in sync (and stay so for a moment)."""
        for _ in range(2):
            until(lambda: all(r["state"] == "in sync" for r in self.status(self.a) + self.status(self.b))
                  and self.status(self.a), timeout, "both daemons in sync")
            time.sleep(0.3)

    @property
    def pids(self) -> dict[str, int]:
        return {"daemon A": self.a.process.pid, "daemon B": self.b.process.pid,
                "server": self.deployment.server.process.pid}

    def file_delays(self, edits: int, gap: float) -> tuple[list[float], int]:
        path, target = self.folder_a / "small.bin", self.folder_b / "small.bin"
        delays, lost = [], 0
        for _ in range(edits):
            data = os.urandom(SMALL)
            t0 = time.perf_counter()
            path.write_bytes(data)
            try:
                delays.append(until(holds(target, data), EDIT_TIMEOUT, "the file on B") - t0)
            except TimeoutError:
                lost += 1
            time.sleep(gap)
        return delays, lost

    def record_delays(self, edits: int, gap: float, work: Path) -> tuple[list[float], int]:
        delays, lost = [], 0
        uri = f"file:{store_path(self.cards_b)}?mode=ro"
        for i in range(edits):
            token = os.urandom(6).hex()
            card = work / "card.vcf"
            card.write_text(f"BEGIN:VCARD\r\nVERSION:3.0\r\nUID:bench-{i}\r\nFN:Bench {token}\r\n"
                            f"TEL:+1555{i:07}\r\nEND:VCARD\r\n")
            t0 = time.perf_counter()
            with RecordStore(store_path(self.cards_a)) as store:  # as `records import` does
                store.import_file(card)

            def on_b() -> bool:
                if not store_path(self.cards_b).exists():
                    return False
                try:
                    db = sqlite3.connect(uri, uri=True, timeout=0.05)
                except sqlite3.Error:
                    return False
                try:
                    row = db.execute("SELECT content FROM items WHERE id = ? AND deleted = 0",
                                     (f"bench-{i}",)).fetchone()
                    return row is not None and token.encode() in row[0]
                except sqlite3.Error:
                    return False
                finally:
                    db.close()

            try:
                delays.append(until(on_b, EDIT_TIMEOUT, "the card in B's store") - t0)
            except TimeoutError:
                lost += 1
            time.sleep(gap)
        return delays, lost

    def catch_up(self) -> tuple[float, float]:
        """(seconds from B's registration to all 100 files on B, from B's start to it)."""
        self.b.stop()
        until(lambda: ("bench", "phone") not in self.deployment.online(), 30, "B offline")
        until(lambda: any(r["state"] == "partner offline" for r in self.status(self.a)), 30,
              "A seeing B offline")
        expected = {}
        for i in range(CATCH_UP_FILES):
            data = os.urandom(SMALL)
            expected[f"away-{i:03}.bin"] = data
            (self.folder_a / f"away-{i:03}.bin").write_bytes(data)
        until(lambda: any((r.get("pending") or 0) >= CATCH_UP_FILES for r in self.status(self.a)),
              30, "A counting the changes as pending")
        log = self.b.log_path
        skip = log.stat().st_size if log.exists() else 0
        (self.b.data_dir / "control.sock").unlink(missing_ok=True)
        self.b.log = open(log, "a")
        t_start = time.time()
        self.b.process = subprocess.Popen(
            [sys.executable, "-m", "peer.cli", "--data-dir", str(self.b.data_dir), "daemon"],
            stdout=self.b.log, stderr=subprocess.STDOUT, cwd=REPO)
        pending = dict(expected)

        def all_there() -> bool:
            for name in list(pending):
                if holds(self.folder_b / name, pending[name])():
                    del pending[name]
            return not pending

        until(all_there, 60, "all 100 files on B")
        t_done = time.time()
        registered = registered_at(log, skip)
        if registered is None:
            raise SystemExit("B's log does not say when it registered")
        return t_done - registered, t_done - t_start

    def close(self) -> None:
        self.deployment.close()


def registered_at(log: Path, skip: int) -> float | None:
    """When the daemon logged its first successful REGISTER after byte `skip` of its log."""
    with open(log, "rb") as f:
        f.seek(skip)
        for line in f.read().decode(errors="replace").splitlines():
            if " registered bench/phone " in line:
                stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                return stamp.timestamp()
    return None


def idle_cpu(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """Share of one core each process used over `seconds` with nothing to do."""
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (cpu_seconds(pid) - before[name]) / seconds for name, pid in pids.items()}


# ------------------------------------------------------------------ presence load
def presence_load(work: Path, devices: int, seconds: float) -> LoadResult:
    from control_server.store import DirectoryStore
    from tests.integration.conftest import ServerProcess

    data = work / "load-server"
    store = DirectoryStore.open(data)
    store.realm("sipsync.test")
    accounts = accounts_for(devices, DEVICES_PER_USER)
    store.import_users(sorted({(user, password) for user, password, _ in accounts}))
    store.close()
    server = ServerProcess(data, "--log-level", "WARNING").start()
    try:
        return asyncio.run(run_load(("127.0.0.1", server.port), server.process.pid, accounts,
                                    seconds))
    finally:
        server.stop()


# ------------------------------------------------------------------ the Syncthing anchor
def free_base_port() -> int:
    """A base port with the three after it free too (the pair's REST and sync listeners)."""
    for _ in range(200):
        base = int.from_bytes(os.urandom(2), "big") % 20_000 + 30_000
        try:
            for port in range(base, base + 4):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
    raise SystemExit("no four free ports in a row on loopback")


def syncthing_delays(work: Path, edits: int, watcher_delay: int | None, gap: float
                     ) -> tuple[list[float], int]:
    script = ANCHORS / "syncthing_pair.sh"
    label = f"st-{watcher_delay or 'default'}"
    home, src, dst = work / label, work / f"{label}-src", work / f"{label}-dst"
    env = dict(os.environ)
    env.pop("WATCHER_DELAY", None)
    if watcher_delay is not None:
        env["WATCHER_DELAY"] = str(watcher_delay)
    started = subprocess.run([str(script), "start", str(home), str(src), str(dst),
                              str(free_base_port())], env=env, capture_output=True, text=True)
    try:
        if started.returncode != 0:
            raise SystemExit(f"the Syncthing pair did not start: {started.stderr[-2000:]}")
        subprocess.run([str(script), "wait", str(home), "120"], check=True, capture_output=True)
        delays, lost = [], 0
        timeout = max(EDIT_TIMEOUT, 4.0 * (watcher_delay or 10))
        for _ in range(edits):
            data = os.urandom(SMALL)
            t0 = time.perf_counter()
            (src / "small.bin").write_bytes(data)
            try:
                delays.append(until(holds(dst / "small.bin", data), timeout, "Syncthing") - t0)
            except TimeoutError:
                lost += 1
            subprocess.run([str(script), "wait", str(home), "120"], capture_output=True)
            time.sleep(gap)
        return delays, lost
    finally:
        if (home / "pids").exists():
            subprocess.run([str(script), "stop", str(home)], capture_output=True)


# ------------------------------------------------------------------ the report
def row(name: str, delays: list[float], lost: int, target: str) -> tuple[str, float | None]:
    if not delays:
        print(f"| {name} | - | - | 0 | {lost} | {target} |")
        return name, None
    median, p99 = summary(delays)
    print(f"| {name} | {median:.3f} | {p99:.3f} | {len(delays)} | {lost} | {target} |")
    return name, median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--edits", type=int, default=50, help="file and record edits timed")
    parser.add_argument("--devices", type=int, default=10_000, help="simulated devices (0: skip)")
    parser.add_argument("--seconds", type=float, default=90.0,
                        help="the presence load's measured window")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    parser.add_argument("--gap", type=float, default=1.0, help="pause after each edit arrived")
    parser.add_argument("--syncthing-edits", type=int, default=20)
    parser.add_argument("--skip-syncthing", action="store_true")
    parser.add_argument("--keep", action="store_true",
                        help="keep the folders and logs, and print every delay")
    args = parser.parse_args()
    if not 1 <= args.edits <= MAX_EDITS or not 0 <= args.devices <= MAX_DEVICES \
            or not 1 <= args.seconds <= MAX_SECONDS or not 1 <= args.idle <= MAX_SECONDS \
            or not 1 <= args.syncthing_edits <= MAX_EDITS:
        parser.error(f"bounds: edits 1-{MAX_EDITS}, devices 0-{MAX_DEVICES}, "
                     f"seconds and idle 1-{MAX_SECONDS}")
    syncthing = not args.skip_syncthing
    if syncthing and (shutil.which("syncthing") is None or not (ANCHORS / "syncthing_pair.sh").exists()):
        print("syncthing or its pair script is missing: no anchor this run "
              "(apt-get install syncthing)")
        syncthing = False
    os.chdir(REPO)
    work = Path(tempfile.mkdtemp(prefix="sipsync-live-bench-"))
    pair = None
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores", flush=True)
    try:
        pair = LivePair(work)
        file_delays, file_lost = pair.file_delays(args.edits, args.gap)
        print(f"file: {len(file_delays)} timed", flush=True)
        record_delays, record_lost = pair.record_delays(args.edits, args.gap, work)
        print(f"record: {len(record_delays)} timed", flush=True)
        pair.settle()
        idle = idle_cpu(pair.pids, args.idle)
        catch_up, catch_up_from_start = pair.catch_up()
        print(f"catch-up: {catch_up:.3f} s", flush=True)
        pair.close()
        pair = None
        load = presence_load(work, args.devices, args.seconds) if args.devices else None
        anchors = {}
        if syncthing:
            for delay in (None, 1):
                version = subprocess.run(["syncthing", "--version"], capture_output=True,
                                         text=True).stdout.split()
                anchors[delay] = syncthing_delays(work, args.syncthing_edits, delay, args.gap)
                print(f"Syncthing ({'default' if delay is None else f'{delay} s'}): "
                      f"{len(anchors[delay][0])} timed", flush=True)
    finally:
        if pair is not None:
            pair.close()
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    if args.keep:
        print("file delays:", " ".join(f"{d:.3f}" for d in file_delays))
        print("record delays:", " ".join(f"{d:.3f}" for d in record_delays))
        for delay, (delays, _) in anchors.items():
            print(f"Syncthing {delay or 'default'} delays:", " ".join(f"{d:.3f}" for d in delays))

    print("\n| case | median s | p99 s | n | lost | target |")
    print("|---|---|---|---|---|---|")
    _, ours = row("sipsync file 4 KiB, A -> B", file_delays, file_lost, "median < 1, p99 < 2")
    row("sipsync record (vCard), A -> B", record_delays, record_lost, "median < 0.5")
    medians = {}
    for delay, (delays, lost) in anchors.items():
        name = f"Syncthing file 4 KiB, watcher delay {'10 s (default)' if delay is None else '1 s'}"
        medians[delay] = row(name, delays, lost, "anchor")[1]
    print(f"\ncatch-up, 100 files pending: {catch_up:.3f} s from B's 200 to REGISTER until B "
          f"holds all 100 ({catch_up_from_start:.3f} s from B's daemon start; target < 2 s)")
    print("idle CPU over {:g} s: ".format(args.idle)
          + ", ".join(f"{name} {share * 100:.2f} %" for name, share in idle.items())
          + " of a core (target for a daemon < 1 %)")
    if load is not None:
        per_second = load.cpu_per_second
        counts = load.counts
        mean = statistics.fmean(per_second)
        print(f"presence load: {load.online:,} of {load.devices:,} devices online and subscribed "
              f"({DEVICES_PER_USER} a user, set-up {load.setup_seconds:.1f} s); over "
              f"{load.window_seconds:g} s: server CPU {mean * 100:.1f} % of a core on average, "
              f"{max(per_second) * 100:.1f} % at most in one second; "
              f"{counts.window_registers:,} REGISTER refreshes, {counts.window_notifies} NOTIFYs "
              f"(expected 0); set-up: {counts.notifies - counts.window_notifies:,} NOTIFYs for "
              f"{counts.subscribes:,} SUBSCRIBEs; {counts.failures} refused, "
              f"{counts.timeouts} unanswered")
        if counts.window_registers:
            print(f"  server CPU per REGISTER refresh (digest challenge + answer): "
                  f"{sum(per_second) / counts.window_registers * 1e6:.0f} µs")
    if anchors:
        print(f"\nanchor: syncthing {' '.join(version[:2])}")
        for delay, median in medians.items():
            if median and ours:
                setting = "default 10 s" if delay is None else "1 s"
                print(f"ratio sipsync file median / Syncthing at {setting}: {ours / median:.2f}")


if __name__ == "__main__":
    main()
