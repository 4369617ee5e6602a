"""REGISTER-with-digest throughput and memory of sipsync-server against Kamailio, in one run.

Both servers get the same sipp scenario from the anchor harness (../shared/anchors/sip beside the
repository, or the folder --anchor names) at rising rates; each step is bounded (`-m
rate*seconds`). Printed per server: the highest rate held with under 0.1 % failures, server CPU
per registration, and memory after 100,000 registrations; then the ratio sipsync / Kamailio.
Kamailio is skipped with a note when it is not installed.

With --workers N, one server of N worker processes runs too (label sipsync-wN). With --cluster,
another setup runs in the same go: two sipsync servers on one PostgreSQL store
(a fresh cluster of Debian's postgresql, as the tests start it) behind Kamailio's dispatcher
(deploy/kamailio), measured as one process tree (bench/cluster_stack.py), with PostgreSQL's
commits and row writes per second during the ramp.

With --refresh-pool N the ramp registers users 1..N over and over, wrapping, as devices on a
keepalive do: past the first N, every registration refreshes a binding the server holds. Without
it, each registration of the ramp is a user's first. For the one-process server the run also
prints what reaching the store cost during the ramp, from its /metrics: binding rows written per
registration and the writer thread's CPU time per registration.

    python bench/sip_bench.py [--rates 1000,2000,...] [--seconds 10] [--bulk 100000]
                              [--bulk-rate 4000] [--anchor DIR]
                              [--workers 2] [--cluster] [--refresh-pool 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ANCHOR = REPO.parent / "shared" / "anchors" / "sip"  # the default; --anchor names another
SIPSYNC_PORT = 5070
KAMAILIO_PORT = 5080
BALANCER_PORT = 5085
CLUSTER_PORTS = (5091, 5092)
POOL = 250_000


def harness(results: Path, raw: Path, label: str, pid: int, port: int, *args: str,
            pool: int = POOL) -> None:
    command = [sys.executable, str(ANCHOR / "sipbench.py"), *args[:1], "--target",
               f"127.0.0.1:{port}", "--server-pid", str(pid), "--out", str(raw), "--results",
               str(results), "--label", label, "--pool", str(pool), *args[1:]]
    subprocess.run(command, check=True)


def start_sipsync(work: Path, workers: int = 1) -> subprocess.Popen:
    data = work / "sipsync-data"
    if not (data / "sipsync.db").exists():
        sys.path.insert(0, str(REPO))
        from control_server.store import DirectoryStore

        store = DirectoryStore.open(data)
        store.realm("sipsync.test")
        started = time.perf_counter()
        store.import_users((f"user{i}", f"pw{i}") for i in range(1, POOL + 1))
        print(f"provisioned {POOL} users in {time.perf_counter() - started:.1f} s", flush=True)
        store.close()
        from control_server.admin.accounts import AdminAccounts
        from control_server.store import AdminStore

        accounts = AdminStore.open(data)
        (work / "token").write_text(AdminAccounts(accounts).create_token("bench", "viewer"))
        accounts.close()
    else:
        # A fresh location table for each phase, as the anchor restarts Kamailio.
        import sqlite3

        with sqlite3.connect(data / "sipsync.db") as db:
            db.execute("DELETE FROM bindings")
    port_file = work / "port"
    port_file.unlink(missing_ok=True)
    (work / "admin-port").unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "control_server.cli", "--data-dir", str(data), "--sip-port",
         str(SIPSYNC_PORT), "--admin-port", "0", "--admin-port-file", str(work / "admin-port"),
         "--log-level", "WARNING", "--port-file", str(port_file),
         # The load comes from one address, as through a load balancer: no flood limit for it.
         "--throttle-allow", "127.0.0.1", "--workers", str(workers)],
        cwd=REPO,
    )
    while not (port_file.exists() and (work / "admin-port").exists()):
        if process.poll() is not None:
            raise SystemExit("sipsync-server did not start")
        time.sleep(0.05)
    return process


class Cluster:
    """Two servers on one PostgreSQL behind the dispatcher; the store outlives the phases."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.provisioned = False

    def start(self, work: Path, keep_bindings: bool = False) -> subprocess.Popen:
        """The cluster on the store; each phase on a fresh location table unless
        `keep_bindings`."""
        sys.path.insert(0, str(REPO))
        if not self.provisioned:
            from control_server.store import DirectoryStore

            store = DirectoryStore.open(work, store=self.url)
            store.realm("sipsync.test")
            started = time.perf_counter()
            store.import_users((f"user{i}", f"pw{i}") for i in range(1, POOL + 1))
            print(f"provisioned {POOL} users in PostgreSQL in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)
            store.close()
            self.provisioned = True
        elif not keep_bindings:
            self.sql("DELETE FROM bindings")
        run = work / "cluster"
        (run / "ready").unlink(missing_ok=True)
        process = subprocess.Popen(
            [sys.executable, str(REPO / "bench" / "cluster_stack.py"), "--store", self.url,
             "--balancer-port", str(BALANCER_PORT),
             "--ports", ",".join(map(str, CLUSTER_PORTS)), "--run-dir", str(run)], cwd=REPO)
        while not (run / "ready").exists():
            if process.poll() is not None:
                raise SystemExit("the cluster did not start")
            time.sleep(0.1)
        return process

    def sql(self, statement: str):
        import asyncio

        import asyncpg

        async def run():
            connection = await asyncpg.connect(self.url)
            try:
                return await connection.fetchrow(statement)
            finally:
                await connection.close()

        return asyncio.run(run())

    def writes(self) -> tuple[float, int, int]:
        row = self.sql("SELECT xact_commit, tup_inserted + tup_updated + tup_deleted AS rows "
                       "FROM pg_stat_database WHERE datname = current_database()")
        return time.monotonic(), row["xact_commit"], row["rows"]


def server_counters(work: Path) -> dict[str, float]:
    """The one-process server's counters from its /metrics (the admin API on a port it picked);
    {} when it has none."""
    import urllib.request

    try:
        port = int((work / "admin-port").read_text())
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/metrics",
            headers={"Authorization": f"Bearer {(work / 'token').read_text()}"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            text = answer.read().decode()
    except (OSError, ValueError):
        return {}
    values = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name.endswith("_total") and not line.startswith("#"):
            values[name.removeprefix("sipsync_").removesuffix("_total")] = float(value)
    return values


def report_store(before: dict[str, float], after: dict[str, float]) -> None:
    registrations = after.get("registrations", 0) - before.get("registrations", 0)
    if "store_bindings_written" not in after or not registrations:
        print("store during the ramp: not reported by this server", flush=True)
        return
    rows = after["store_bindings_written"] - before["store_bindings_written"]
    cpu = after["store_writer_cpu_seconds"] - before["store_writer_cpu_seconds"]
    print(f"store during the ramp: {rows:.0f} binding rows for {registrations:.0f} "
          f"registrations ({rows / registrations:.3f} per registration), writer thread "
          f"{cpu * 1e6 / registrations:.1f} µs CPU per registration", flush=True)


def start_kamailio(work: Path, shm_mb: int = 1024, *defines: str) -> subprocess.Popen:
    """The anchor's Kamailio; `defines` are more -A NAME=value (UL_HASH for millions)."""
    run = work / "kamailio"
    run.mkdir(exist_ok=True)
    process = subprocess.Popen(
        ["kamailio", "-f", str(ANCHOR / "kamailio.cfg"), "-DD", "-E", "-m", str(shm_mb),
         "-M", "32", "-Y", str(run), "-P", str(run / "kamailio.pid"),
         "-A", f"SIP_PORT={KAMAILIO_PORT}", "-A", "NCHILD=2", "-A", 'REALM="sipsync.test"',
         *(part for define in defines for part in ("-A", define))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_answering(KAMAILIO_PORT, process)
    return process


def wait_answering(port: int, process: subprocess.Popen, seconds: float = 120) -> None:
    """Until the server on `port` answers an OPTIONS over UDP: a big shared memory takes
    Kamailio seconds to set up before it reads its socket."""
    import socket

    probe = ("OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\n"
             "Via: SIP/2.0/UDP 127.0.0.1:{local};branch=z9hG4bK-ready-{n}\r\n"
             "From: <sip:ready@127.0.0.1>;tag=ready\r\nTo: <sip:127.0.0.1:{port}>\r\n"
             "Call-ID: ready-{n}@127.0.0.1\r\nCSeq: {n} OPTIONS\r\nMax-Forwards: 70\r\n"
             "Content-Length: 0\r\n\r\n")
    deadline = time.monotonic() + seconds
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(0.5)
        local = sock.getsockname()[1]
        for n in range(1, 1_000_000):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the server on port {port} did not start answering")
            sock.sendto(probe.format(port=port, local=local, n=n).encode(), ("127.0.0.1", port))
            try:
                sock.recv(65536)
                return
            except (TimeoutError, ConnectionRefusedError):
                time.sleep(0.2)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure(name: str, start, port: int, work: Path, results: Path, args,
            cluster: Cluster | None = None) -> None:
    raw = work / "raw"
    server = start(work)
    try:
        before = cluster.writes() if cluster else None
        counted = server_counters(work) if name == "sipsync" else {}
        # The harness wraps its users over the pool: a small one makes the ramp refreshes.
        harness(results, raw, name, server.pid, port, "register-ramp", "--rates", args.rates,
                "--seconds", str(args.seconds), "--expires", "60",
                pool=args.refresh_pool or POOL)
        if name == "sipsync":
            report_store(counted, server_counters(work))
        if cluster and before:
            after = cluster.writes()
            seconds = after[0] - before[0]
            print(f"PostgreSQL during the ramp: {(after[1] - before[1]) / seconds:.0f} commits/s, "
                  f"{(after[2] - before[2]) / seconds:.0f} rows written/s", flush=True)
    finally:
        stop(server)
    server = start(work)
    try:
        harness(results, raw, name, server.pid, port, "register-bulk", "--count",
                str(args.bulk), "--rate", str(args.bulk_rate), "--expires", "3600")
    finally:
        stop(server)


def summary(results: Path, labels: list[str]) -> None:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    best: dict[str, dict] = {}
    memory: dict[str, dict] = {}
    for row in rows:
        label = row.get("label")
        if row.get("kind") == "register" and row.get("passed"):
            if label not in best or row["target_rate"] > best[label]["target_rate"]:
                best[label] = row
        elif "mem_delta_kb" in row:
            memory[label] = row
    print("\n| server | highest rate held (<0.1 % failed) | ok/s | server CPU µs/registration "
          "| memory after 100k devices (PSS) | PSS added per device |")
    print("|---|---|---|---|---|---|")
    for label in labels:
        held = best.get(label, {})
        mem = memory.get(label, {})
        cpu = held.get("cpu_cores", {}).get("server")
        ok = held.get("ok_per_s_steady")
        per = f"{cpu * 1e6 / ok:.0f}" if cpu and ok else "-"
        after = mem.get("mem_after", {}).get("pss_kb")
        delta = mem.get("mem_delta_kb", {}).get("pss_kb")
        count = mem.get("successful") or 1
        print(f"| {label} | {held.get('target_rate', '-')}/s | {ok or '-'} | {per} | "
              f"{f'{after / 1024:.0f} MB' if after else '-'} | "
              f"{f'{delta * 1024 / count:.0f} B' if delta else '-'} |")
    if "kamailio" in best:
        anchor = best["kamailio"]
        for label in labels:
            if label != "kamailio" and label in best:
                ratio = best[label]["ok_per_s_steady"] / anchor["ok_per_s_steady"]
                print(f"ratio {label} / kamailio, highest REGISTER rate held: {ratio:.2f}")


def measure_cluster(work: Path, results: Path, args) -> None:
    if shutil.which("kamailio") is None:
        raise SystemExit("--cluster needs kamailio: apt-get install kamailio")
    sys.path.insert(0, str(REPO))
    from tests.postgres import running_postgres

    with running_postgres() as postgres:
        cluster = Cluster(postgres.create_database("sipsync_bench"))
        measure("cluster", cluster.start, BALANCER_PORT, work, results, args, cluster)


def main() -> None:
    global ANCHOR, SIPSYNC_PORT, KAMAILIO_PORT  # read by harness() and the start functions
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,2000,4000,5000,6000,8000,12000,16000,20000,24000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--bulk-rate", type=int, default=4000,
                        help="registrations per second in the bulk step: one the server holds, "
                             "so that its memory is per device that really registered")
    parser.add_argument("--no-kamailio", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the raw sipp files")
    parser.add_argument("--workers", type=int, default=0,
                        help="also one server of this many worker processes")
    parser.add_argument("--cluster", action="store_true",
                        help="also two servers on PostgreSQL behind Kamailio's dispatcher")
    parser.add_argument("--sipsync-port", type=int, default=SIPSYNC_PORT,
                        help="the one-process server's SIP port (another run may hold the default)")
    parser.add_argument("--kamailio-port", type=int, default=KAMAILIO_PORT)
    parser.add_argument("--refresh-pool", type=int, default=0,
                        help="the ramp registers users 1..N again and again: refreshes")
    parser.add_argument("--anchor", type=Path, default=ANCHOR,
                        help="the anchor harness folder (sipbench.py, kamailio.cfg)")
    args = parser.parse_args()
    ANCHOR = args.anchor.resolve()
    SIPSYNC_PORT, KAMAILIO_PORT = args.sipsync_port, args.kamailio_port
    if shutil.which("sipp") is None:
        raise SystemExit("needs sipp: apt-get install sip-tester")
    if not ANCHOR.exists():
        raise SystemExit(f"the anchor harness is not beside the repository: {ANCHOR}")
    work = Path(tempfile.mkdtemp(prefix="sipsync-bench-"))
    results = work / "results.jsonl"
    labels = ["sipsync"]
    try:
        measure("sipsync", start_sipsync, SIPSYNC_PORT, work, results, args)
        if args.workers > 1:
            label = f"sipsync-w{args.workers}"
            measure(label, lambda w: start_sipsync(w, args.workers), SIPSYNC_PORT, work, results,
                    args)
            labels.append(label)
        if args.cluster:
            measure_cluster(work, results, args)
            labels.append("cluster")
        if args.no_kamailio:
            pass
        elif shutil.which("kamailio") is None:
            print("kamailio is not installed (apt-get install kamailio): no anchor this run")
        else:
            labels.append("kamailio")
            measure("kamailio", start_kamailio, KAMAILIO_PORT, work, results, args)
        summary(results, labels)
    finally:
        if args.keep:
            print(f"raw results in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(REPO))
    main()
