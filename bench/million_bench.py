"""A simulated million devices on the cluster: two sipsync servers on one PostgreSQL store behind
Kamailio's dispatcher (deploy/kamailio), holding 1,000,000 registered devices, under keepalive.

Anchor: Kamailio 5.6 (Debian's kamailio) with the anchor harness's configuration, holding the
same N devices in memory (usrloc), under the same keepalive ramp, in the same run. Needs also
sipp (sip-tester) and PostgreSQL (postgresql).

1. N users go into a fresh PostgreSQL store. A sample of them registers for real through the
   balancer (sipp, the anchor's scenario); what the servers stored for them is the template of
   the other bindings, seeded straight into the store: the same Contact (the balancer's alias
   included), device name and server (the dispatcher's hash over the user, checked against the
   sample), so that each seeded device is one the cluster could have registered itself.
2. The cluster starts again on that store: each server loads the directory and the N bindings.
   Printed: the time until both answer, and each server's memory (PSS) with the sample and
   with the N devices.
3. Keepalive: the anchor's sipp scenario re-registers those devices at rising rates (each
   REGISTER refreshes a stored binding with the same Expires, as a device's keepalive does),
   through the balancer.
   Per rate: the rate held, the servers' and balancer's CPU per registration, p99, and
   PostgreSQL's commits and rows written per second and per registration, and by table. Each
   REGISTER is its device's first refresh since the servers started, which the store takes by
   design: these rows are a restart's, not the steady state's.
4. Kamailio alone: N devices registered (Expires 3600), its memory per device, then the same
   keepalive ramp over them.
5. From the highest rate held: how many devices' 60 s keepalive each carries, how many such
   clusters N devices need, and the ratios to Kamailio.

    python bench/million_bench.py [--devices 1000000] [--rates 1000,1500,2000,3000] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import sip_bench  # noqa: E402  (the cluster, the harness and the anchor folder)

SAMPLE = 200
KEEPALIVE_SECONDS = 60


def dispatcher_hash(user: str) -> int:
    """The hash Kamailio's dispatcher takes over a To user (algorithm 2 with flag 1): 4-byte
    big-endian words, each added as v ^ (v >> 3), the tail as one short word, then mixed."""
    data = user.encode()
    total = 0
    whole = len(data) - len(data) % 4
    for at in range(0, whole, 4):
        word = int.from_bytes(data[at:at + 4], "big")
        total = (total + (word ^ (word >> 3))) & 0xFFFFFFFF
    tail = int.from_bytes(data[whole:], "big") if whole < len(data) else 0
    total = (total + (tail ^ (tail >> 3))) & 0xFFFFFFFF
    total = (total + (total >> 11) + (total >> 13) + (total >> 23)) & 0xFFFFFFFF
    return total or 1


async def _sql(url: str, statement: str, *args):
    import asyncpg

    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(statement, *args)
    finally:
        await connection.close()


def provision(url: str, work: Path, count: int) -> None:
    from control_server.store import DirectoryStore

    store = DirectoryStore.open(work, store=url)
    store.realm("sipsync.test")
    started = time.perf_counter()
    store.import_users((f"user{i}", f"pw{i}") for i in range(1, count + 1))
    store.close()
    print(f"provisioned {count:,} users in PostgreSQL in {time.perf_counter() - started:.1f} s",
          flush=True)


PORT_REG = 5071  # the anchor harness's REGISTER port: seeded contacts point where sipp sends from


def register_sample(work: Path) -> None:
    csv = work / "sample.csv"
    csv.write_text("SEQUENTIAL\n" + "".join(f"user{i};pw{i}\n" for i in range(1, SAMPLE + 1)))
    result = subprocess.run(
        ["sipp", f"127.0.0.1:{sip_bench.BALANCER_PORT}",
         "-sf", str(sip_bench.ANCHOR / "register_auth.xml"), "-inf", str(csv),
         "-key", "expires", "3600", "-default_behaviors", "all,-bye", "-i", "127.0.0.1",
         "-p", str(PORT_REG), "-r", "100", "-m", str(SAMPLE), "-nostdin", "-timeout", "60s"],
        cwd=work, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise SystemExit(f"the sample did not register:\n{result.stdout[-2000:]}{result.stderr}")


def seed(url: str, count: int) -> dict:
    """Bindings and devices for users SAMPLE+1..count, made from the sample's stored rows."""
    from control_server.device_names import unnamed_device
    from protocols.sip.message import parse_address

    rows = asyncio.run(_sql(url, 'SELECT * FROM bindings ORDER BY "user"'))
    if len(rows) != SAMPLE:
        raise SystemExit(f"{len(rows)} of the {SAMPLE} sample devices are stored")
    nodes = sorted({row["node"] for row in rows})
    # Which server the dispatcher sends hash % 2 to: read off the sample, then checked on it.
    placed = {row["user"]: row["node"] for row in rows}
    order = {}
    for user, node in placed.items():
        order.setdefault(dispatcher_hash(user) % len(nodes), node)
    misplaced = sum(order[dispatcher_hash(user) % len(nodes)] != node
                    for user, node in placed.items())
    if misplaced or len(set(order.values())) != len(nodes):
        raise SystemExit(f"the dispatcher's hash is not what this bench computes: {misplaced} of "
                         f"{SAMPLE} sample devices on another server")
    template = dict(rows[0])
    times = [column for column in ("registered_at", "last_seen", "expires_at", "held_until")
             if column in template]
    now = time.time()
    bindings, devices = [], []
    for i in range(SAMPLE + 1, count + 1):
        user = f"user{i}"
        contact = template["contact"].replace(template["user"] + "@", user + "@", 1)
        device = unnamed_device(contact, parse_address(contact).uri)
        # Registered over the last keepalive interval, each as the sample was (Expires 3600):
        # every time of the template's row moved by the same amount.
        registered = now - KEEPALIVE_SECONDS * (i % 1000) / 1000
        shift = registered - template["registered_at"]
        row = {**template, **{column: template[column] + shift for column in times},
               "user": user, "device": device, "contact": contact, "call_id": f"seed-{i}@bench",
               "node": order[dispatcher_hash(user) % len(nodes)]}
        bindings.append(tuple(row.values()))
        devices.append((user, device, registered, registered, 0))

    async def copy() -> None:
        import asyncpg

        connection = await asyncpg.connect(url)
        try:
            await connection.copy_records_to_table("devices", records=devices,
                                                   columns=["user", "name", "created_at",
                                                            "last_seen", "disabled"])
            await connection.copy_records_to_table("bindings", records=bindings,
                                                   columns=list(template.keys()))
        finally:
            await connection.close()

    started = time.perf_counter()
    asyncio.run(copy())
    print(f"seeded {len(bindings):,} bindings in {time.perf_counter() - started:.1f} s "
          f"(servers {', '.join(nodes)}; the sample's {SAMPLE} placed as the hash says)",
          flush=True)
    return {"nodes": nodes}


def table_writes(url: str, since: dict[str, int] | None = None) -> dict[str, int]:
    """Rows inserted, updated and deleted by table (since `since`, when given); the statistics
    collector reports them with a delay of its own, hence the pause."""
    time.sleep(1.0)
    rows = asyncio.run(_sql(url, "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS n "
                                 "FROM pg_stat_user_tables ORDER BY relname"))
    return {row["relname"]: row["n"] - (since or {}).get(row["relname"], 0) for row in rows}


def pss_kb(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    return next(int(line.split()[1]) for line in text.splitlines() if line.startswith("Pss:"))


def servers_of(stack_pid: int) -> list[int]:
    """The sipsync servers among the stack's children (the balancer is Kamailio)."""
    children = Path(f"/proc/{stack_pid}/task/{stack_pid}/children").read_text().split()
    found = []
    for pid in map(int, children):
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"control_server.cli" in command:
            found.append(pid)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--rates", default="1000,1500,2000,3000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--kamailio-rates", default="4000,8000,12000,16000")
    parser.add_argument("--no-kamailio", action="store_true")
    parser.add_argument("--expires", type=int, default=3600,
                        help="what the keepalive REGISTERs ask: the seeded bindings' 3600 s, so "
                             "that each is a refresh of its binding, or another interval")
    parser.add_argument("--anchor", type=Path, default=sip_bench.ANCHOR,
                        help="the anchor harness folder (sipbench.py, register_auth.xml)")
    args = parser.parse_args()
    sip_bench.ANCHOR = args.anchor.resolve()
    for tool in ("sipp", "kamailio"):
        if shutil.which(tool) is None:
            raise SystemExit(f"needs {tool}: apt-get install sip-tester kamailio")
    from tests.postgres import running_postgres

    work = Path(tempfile.mkdtemp(prefix="sipsync-million-"))
    results = work / "results.jsonl"
    try:
        with running_postgres() as postgres:
            url = postgres.create_database("sipsync_million")
            provision(url, work, args.devices)
            cluster = sip_bench.Cluster(url)
            cluster.provisioned = True
            stack = cluster.start(work)
            try:
                register_sample(work)
                empty = [pss_kb(pid) for pid in servers_of(stack.pid)]
            finally:
                sip_bench.stop(stack)
            seed(url, args.devices)

            started = time.perf_counter()
            stack = cluster.start(work, keep_bindings=True)
            print(f"the cluster answered {time.perf_counter() - started:.1f} s after its start "
                  f"with {args.devices:,} devices", flush=True)
            try:
                servers = servers_of(stack.pid)
                memory = [pss_kb(pid) for pid in servers]
                # Each server holds every device: its own and, for routing, the other's.
                print("each server's memory (PSS) with the sample, then with every device: " +
                      ", ".join(f"{low / 1024:.0f} MB, then {high / 1024:.0f} MB "
                                f"({(high - low) * 1024 / args.devices:.0f} B per device)"
                                for low, high in zip(empty, memory)), flush=True)
                tables_before = table_writes(url)
                before = cluster.writes()
                sip_bench.harness(results, work / "raw", "cluster", stack.pid,
                                  sip_bench.BALANCER_PORT, "register-ramp", "--rates", args.rates,
                                  "--seconds", str(args.seconds), "--expires", str(args.expires),
                                  pool=args.devices)
                after = cluster.writes()
                tables = table_writes(url, tables_before)
                online = asyncio.run(_sql(url, "SELECT count(*) AS n FROM bindings"))[0]["n"]
            finally:
                sip_bench.stop(stack)
        if not args.no_kamailio:
            kamailio = sip_bench.start_kamailio(work, 4096, "UL_HASH=20")
            try:
                sip_bench.harness(results, work / "raw", "kamailio", kamailio.pid,
                                  sip_bench.KAMAILIO_PORT, "register-bulk", "--count",
                                  str(args.devices), "--rate", "10000", "--expires", "3600",
                                  pool=args.devices)
                sip_bench.harness(results, work / "raw", "kamailio", kamailio.pid,
                                  sip_bench.KAMAILIO_PORT, "register-ramp", "--rates",
                                  args.kamailio_rates, "--seconds", str(args.seconds),
                                  "--expires", str(args.expires), pool=args.devices)
            finally:
                sip_bench.stop(kamailio)
        report(results, before, after, args.devices, online)
        print("rows written during the ramp, by table: " + ", ".join(
            f"{name} {count:,}" for name, count in tables.items() if count))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def report(results: Path, before, after, devices: int, stored: int) -> None:
    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    steps = [row for row in rows if row.get("kind") == "register"]
    print("\n| setup | offered | ok/s | failed | p99 | CPU per registration |")
    print("|---|---|---|---|---|---|")
    for row in sorted(steps, key=lambda r: (r["label"], r["target_rate"])):
        cpu = row.get("cpu_cores", {}).get("server")
        ok = row.get("ok_per_s_steady")
        per = f"{cpu * 1e6 / ok:.0f} µs" if cpu and ok else "-"
        p99 = (row.get("rt", {}).get("2") or {}).get("p99_ms", "-")
        print(f"| {row['label']} | {row['target_rate']}/s | {ok} | {row['failed_pct']} % | "
              f"{p99} ms | {per} |")
    for row in rows:
        if row.get("label") == "kamailio" and "mem_delta_kb" in row:
            added = row["mem_delta_kb"]["pss_kb"] * 1024 / max(row.get("successful") or 1, 1)
            print(f"kamailio: {row.get('successful', 0):,} devices registered, "
                  f"{row['mem_after']['pss_kb'] / 1024:.0f} MB PSS, {added:.0f} B per device")
    cluster_steps = [row for row in steps if row["label"] == "cluster"]
    registrations = sum(row.get("successful", 0) for row in cluster_steps)
    seconds = after[0] - before[0]
    written = after[2] - before[2]
    print(f"\nPostgreSQL over the cluster's ramp ({seconds:.0f} s, {registrations:,} "
          f"registrations): {(after[1] - before[1]) / seconds:.0f} commits/s, "
          f"{written / seconds:.0f} rows written/s, {written / max(registrations, 1):.2f} rows "
          f"per registration; {stored:,} bindings stored at the end")
    best = {}
    for row in steps:
        if row.get("passed") and row["target_rate"] > best.get(row["label"], {}).get(
                "target_rate", 0):
            best[row["label"]] = row
    for label, row in sorted(best.items()):
        rate = row["ok_per_s_steady"]
        carried = rate * KEEPALIVE_SECONDS
        print(f"{label}: highest keepalive rate held {rate:.0f}/s, the {KEEPALIVE_SECONDS} s "
              f"keepalive of {carried:,.0f} devices; {devices:,} devices "
              f"({devices / KEEPALIVE_SECONDS:,.0f} REGISTERs/s) need {devices / carried:.1f} "
              f"of these")
    if "cluster" in best and "kamailio" in best:
        ratio = best["cluster"]["ok_per_s_steady"] / best["kamailio"]["ok_per_s_steady"]
        print(f"ratio cluster / kamailio, highest keepalive rate held: {ratio:.2f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONPATH", str(REPO))
    main()
