"""REGISTER-with-digest throughput and memory of sipsync-server against Kamailio, in one run.

Both servers get the same sipp scenario from the anchor harness (../shared/anchors/sip) at rising
rates; each step is bounded (`-m rate*seconds`). Printed per server: the highest rate held with
under 0.1 % failures, server CPU per registration, and memory after 100,000 registrations; then
the ratio sipsync / Kamailio. Kamailio is skipped with a note when it is not installed.

    python bench/sip_bench.py [--rates 1000,2000,...] [--seconds 10] [--bulk 100000]
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
ANCHOR = REPO.parent / "shared" / "anchors" / "sip"
SIPSYNC_PORT = 5070
KAMAILIO_PORT = 5080
POOL = 250_000


def harness(results: Path, raw: Path, label: str, pid: int, port: int, *args: str) -> None:
    command = [sys.executable, str(ANCHOR / "sipbench.py"), *args[:1], "--target",
               f"127.0.0.1:{port}", "--server-pid", str(pid), "--out", str(raw), "--results",
               str(results), "--label", label, "--pool", str(POOL), *args[1:]]
    subprocess.run(command, check=True)


def start_sipsync(work: Path) -> subprocess.Popen:
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
    else:
        # A fresh location table for each phase, as the anchor restarts Kamailio.
        import sqlite3

        with sqlite3.connect(data / "sipsync.db") as db:
            db.execute("DELETE FROM bindings")
    port_file = work / "port"
    port_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "control_server.cli", "--data-dir", str(data), "--sip-port",
         str(SIPSYNC_PORT), "--no-admin", "--log-level", "WARNING", "--port-file", str(port_file),
         # The load comes from one address, as through a load balancer: no flood limit for it.
         "--throttle-allow", "127.0.0.1", "--workers", "1"],  # one process, as measured so far
        cwd=REPO,
    )
    while not port_file.exists():
        if process.poll() is not None:
            raise SystemExit("sipsync-server did not start")
        time.sleep(0.05)
    return process


def start_kamailio(work: Path) -> subprocess.Popen:
    run = work / "kamailio"
    run.mkdir(exist_ok=True)
    process = subprocess.Popen(
        ["kamailio", "-f", str(ANCHOR / "kamailio.cfg"), "-DD", "-E", "-m", "1024", "-M", "32",
         "-Y", str(run), "-P", str(run / "kamailio.pid"), "-A", f"SIP_PORT={KAMAILIO_PORT}",
         "-A", "NCHILD=2", "-A", 'REALM="sipsync.test"'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(2.0)
    if process.poll() is not None:
        raise SystemExit("kamailio did not start")
    return process


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def measure(name: str, start, port: int, work: Path, results: Path, args) -> None:
    raw = work / "raw"
    server = start(work)
    try:
        harness(results, raw, name, server.pid, port, "register-ramp", "--rates", args.rates,
                "--seconds", str(args.seconds), "--expires", "60")
    finally:
        stop(server)
    server = start(work)
    try:
        harness(results, raw, name, server.pid, port, "register-bulk", "--count",
                str(args.bulk), "--rate", "4000", "--expires", "3600")
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
    if len(labels) == 2 and all(label in best for label in labels):
        ratio = best[labels[0]]["ok_per_s_steady"] / best[labels[1]]["ok_per_s_steady"]
        print(f"\nratio sipsync / kamailio, highest REGISTER rate held: {ratio:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="1000,2000,4000,5000,6000,8000,12000,16000,20000,24000")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bulk", type=int, default=100_000)
    parser.add_argument("--no-kamailio", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the raw sipp files")
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        raise SystemExit("needs sipp: apt-get install sip-tester")
    if not ANCHOR.exists():
        raise SystemExit(f"the anchor harness is not beside the repository: {ANCHOR}")
    work = Path(tempfile.mkdtemp(prefix="sipsync-bench-"))
    results = work / "results.jsonl"
    labels = ["sipsync"]
    try:
        measure("sipsync", start_sipsync, SIPSYNC_PORT, work, results, args)
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
