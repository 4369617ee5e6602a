"""A coverage-guided fuzzing campaign over every parser that takes bytes from the network.

Why atheris: it is Google's maintained libFuzzer binding for Python and installs here from a wheel
(no clang needed). libFuzzer keeps the inputs that reach new Python lines and comparisons and
mutates those (bit and byte flips, inserts, erasures that truncate, splicing of two inputs,
dictionary words it learns from the parser's own comparisons), so a run goes deep into a parser
in a way blind mutation of the seeds does not; hypothesis spends far longer per input and is not
built for a million of them. For text formats (SIP, XML, vCard, iCalendar) the mutations are also
told the seeds' structure words (header names, tags, parameters) as a libFuzzer dictionary, so
whole tokens are inserted and swapped: structure awareness at the cost of a regex. Only sipsync's
own modules are instrumented: the libraries under them (aiosipua, lxml, vobject, icalendar) run
and their exceptions count, but tracing their Python code would slow the run tenfold.

Each target runs in its own process (libFuzzer ends the process when it is done) until it has
tried `--inputs` inputs or spent `--seconds`; printed per target: the inputs tried, the crashes
(any exception other than the parser's typed error, minimized and saved) and the slowest input,
timed again without instrumentation. Seeds and kept findings are in tests/fuzz_corpus/<target>/.

    pip install atheris
    python bench/fuzz.py [--targets sip-datagram,syncml] [--seconds 300] [--inputs 1000000]
    python bench/fuzz.py --write-seeds      # refresh the seed files from the builders
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fuzz_targets import CORPUS, TARGETS, Harness, Target  # noqa: E402

SLOW_MS = 100.0
KEEP_CRASHES = 20  # distinct crashes saved per target; all are counted


def crash_key(error: BaseException) -> str:
    """Exception type and the innermost line it came from: two inputs with the same key are
    taken to be the same bug."""
    frames = traceback.extract_tb(error.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    return f"{type(error).__name__} at {where}"


def outcome(harness: Harness, data: bytes) -> str | None:
    """None when the parser returned or refused with its typed error; the crash key otherwise."""
    try:
        harness.run(data)
    except harness.typed:
        return None
    except Exception as error:  # noqa: BLE001 - anything else is what the campaign looks for
        return crash_key(error)
    return None


def minimize(harness: Harness, data: bytes, key: str, budget: int = 3000) -> bytes:
    """A shorter input with the same crash: drop ever smaller chunks while the crash stays."""
    chunk = max(1, len(data) // 2)
    while chunk >= 1 and budget > 0:
        start, shrunk = 0, False
        while start < len(data) and budget > 0:
            candidate = data[:start] + data[start + chunk :]
            budget -= 1
            if outcome(harness, candidate) == key:
                data, shrunk = candidate, True
            else:
                start += chunk
        if not shrunk:
            chunk //= 2
    return data


def plain_time_ms(harness: Harness, data: bytes, repeat: int = 5) -> float:
    """CPU time of one input, uninstrumented, best of a few runs."""
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        outcome(harness, data)
        best = min(best, time.process_time() - start)
    return best * 1000


# --- the worker: one target under libFuzzer ------------------------------------------------------

def _dictionary(seeds: list[bytes]) -> str:
    """libFuzzer dictionary of the seeds' structure words (header names with their colon, XML tags,
    property names, separators), so mutations insert and replace whole tokens, not only bytes."""
    words: set[bytes] = {b"\r\n", b"\r\n\r\n", b"\n", b":", b";", b",", b"=", b"<", b">", b"/>", b'"'}
    for seed in seeds:
        words.update(re.findall(rb"(?m)^[A-Za-z][A-Za-z0-9-]{0,30}[:;]", seed))
        words.update(re.findall(rb"</?[A-Za-z][A-Za-z0-9]{0,30}>?", seed))
        words.update(re.findall(rb"[A-Za-z][A-Za-z0-9+-]{2,20}=", seed))
    return "".join('"' + "".join(f"\\x{byte:02x}" for byte in word) + '"\n' for word in sorted(words))


def work(target: Target, stats_path: Path, inputs: int, seconds: float, seed: int) -> None:
    import atheris

    # A library's warning per malformed input would cost more than parsing it.
    logging.disable(logging.CRITICAL)
    with atheris.instrument_imports(include=list(target.instrument)):
        harness = target.harness()
    stats = {"inputs": 0, "crashes": 0, "keys": {}, "slowest_ms": 0.0, "started": time.time()}
    out = stats_path.parent
    started = time.monotonic()
    last_flush = [started]

    def flush() -> None:
        stats["elapsed"] = time.monotonic() - started
        stats_path.write_text(json.dumps(stats))

    def one(data: bytes) -> None:
        stats["inputs"] += 1
        begin = time.process_time()
        try:
            harness.run(data)
        except harness.typed:
            pass
        except Exception as error:  # noqa: BLE001
            key = crash_key(error)
            stats["crashes"] += 1
            if key not in stats["keys"] and len(stats["keys"]) < KEEP_CRASHES:
                name = f"crash-{len(stats['keys'])}.bin"
                (out / name).write_bytes(data)
                stats["keys"][key] = {"file": name, "traceback": traceback.format_exc()[-2000:]}
                flush()
        spent = (time.process_time() - begin) * 1000
        if spent > stats["slowest_ms"]:
            stats["slowest_ms"] = spent
            (out / "slowest.bin").write_bytes(data)
        if stats["inputs"] % 512 == 0 or stats["inputs"] >= inputs:
            now = time.monotonic()
            if stats["inputs"] >= inputs or now - started >= seconds:
                flush()
                os._exit(0)  # libFuzzer would exit without a word; the figures are written
            if now - last_flush[0] > 2:
                last_flush[0] = now
                flush()

    working = out / "corpus"
    working.mkdir(exist_ok=True)
    seeds_dir = CORPUS / target.name
    args = [sys.argv[0], str(working), str(seeds_dir), f"-max_len={target.max_len}", f"-seed={seed}",
            f"-max_total_time={int(seconds) + 30}", "-timeout=20", "-rss_limit_mb=2048",
            f"-artifact_prefix={out}/", "-print_final_stats=1"]
    if target.lines:
        dictionary = out / "words.dict"
        dictionary.write_text(_dictionary([path.read_bytes() for path in sorted(seeds_dir.iterdir())]))
        args.append(f"-dict={dictionary}")
    atheris.Setup(args, one)
    atheris.Fuzz()


# --- the campaign --------------------------------------------------------------------------------

def write_seeds() -> None:
    for target in TARGETS.values():
        if target.skip():
            continue
        directory = CORPUS / target.name
        directory.mkdir(parents=True, exist_ok=True)
        for old in directory.glob("seed-*"):
            old.unlink()
        for number, seed in enumerate(target.harness().seeds()):
            (directory / f"seed-{number:02d}.bin").write_bytes(seed)
        print(f"{target.name}: {len(list(directory.glob('seed-*')))} seeds")


def campaign(names: list[str], inputs: int, seconds: float, seed: int, keep: Path | None) -> int:
    failed = False
    rows = []
    for name in names:
        target = TARGETS[name]
        reason = target.skip()
        if reason:
            print(f"{name:20} skipped: {reason}", flush=True)
            rows.append({"target": name, "skipped": reason})
            continue
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as temp:
            out = Path(temp)
            stats_path = out / "stats.json"
            log = out / "libfuzzer.log"
            command = [sys.executable, __file__, "--worker", name, "--stats", str(stats_path),
                       "--inputs", str(inputs), "--seconds", str(seconds), "--seed", str(seed)]
            with log.open("wb") as sink:
                result = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT,
                                        timeout=seconds + 600, check=False)
            stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
            if result.returncode != 0 or not stats:
                print(f"{name:20} worker ended with code {result.returncode}; last lines of its log:")
                print("\n".join(log.read_text(errors="replace").splitlines()[-15:]))
                failed = True
            harness = target.harness()
            slowest = out / "slowest.bin"
            plain = plain_time_ms(harness, slowest.read_bytes()) if slowest.exists() else 0.0
            row = {"target": name, "inputs": stats.get("inputs", 0), "crashes": stats.get("crashes", 0),
                   "seconds": round(stats.get("elapsed", 0.0), 1),
                   "slowest_instrumented_ms": round(stats.get("slowest_ms", 0.0), 2),
                   "slowest_ms": round(plain, 2), "distinct": list(stats.get("keys", {}))}
            print(f"{name:20} {row['inputs']:>9,} inputs in {row['seconds']:>6}s  "
                  f"crashes {row['crashes']}  slowest {plain:.2f} ms "
                  f"({row['slowest_instrumented_ms']:.2f} ms instrumented)", flush=True)
            for key, found in stats.get("keys", {}).items():
                data = (out / found["file"]).read_bytes()
                small = minimize(harness, data, key)
                print(f"    {key}: {len(data)} bytes, minimized to {len(small)}: {small[:160]!r}")
                print("      " + found["traceback"].strip().splitlines()[-1])
                if keep is not None:
                    directory = keep / name
                    directory.mkdir(parents=True, exist_ok=True)
                    (directory / f"{found['file'][:-4]}-{seed}.bin").write_bytes(small)
            if keep is not None and slowest.exists():
                (keep / name).mkdir(parents=True, exist_ok=True)
                shutil.copy(slowest, keep / name / f"slowest-{seed}.bin")
            failed |= row["crashes"] > 0 or plain > SLOW_MS
            rows.append(row)
    print(json.dumps(rows))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", default=",".join(TARGETS), help="comma-separated target names")
    parser.add_argument("--inputs", type=int, default=1_000_000, help="inputs per target")
    parser.add_argument("--seconds", type=float, default=300.0, help="time limit per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="save minimized crashes and slowest inputs here")
    parser.add_argument("--write-seeds", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--stats", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_seeds:
        write_seeds()
        return 0
    if args.worker:
        work(TARGETS[args.worker], args.stats, args.inputs, args.seconds, args.seed)
        return 0
    names = [name.strip() for name in args.targets.split(",") if name.strip()]
    unknown = [name for name in names if name not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    return campaign(names, args.inputs, args.seconds, args.seed, args.keep)


if __name__ == "__main__":
    sys.exit(main())
