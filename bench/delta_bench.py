"""Delta engine benchmark: sipsync's signature/delta/patch against librsync's `rdiff`, same run.

Generates the seeded anchor cases (`<repo>/../shared/anchors/delta/make_cases.py`) in a temporary
directory, times each step of both tools in its own child process (median of --reps), and prints
a markdown table with throughput, delta size, peak RSS and the ratios to rdiff. Not a test.

    python bench/delta_bench.py [--size-mib 256] [--cases a,b,c,d,e,f] [--reps 3] [--anchors DIR]

Timing: rdiff = wall time of its process; sipsync = time inside its child process after the
imports and one warm-up call (a daemon pays start-up once; `cold start` is printed separately).
MiB/s is the new file's size over that time, for every step (the anchor's convention). The patch's
CPU time (user + system) is printed too, as it moves less than wall time on a shared machine:
rdiff's is its whole process's, sipsync's that of the timed part.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import mmap
import os
import resource
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ANCHORS = REPO.parent / "shared" / "anchors" / "delta"
MiB = 1 << 20
IO_CHUNK = 1 << 20
TIMEOUT = 600
TIME = "/usr/bin/time"


# ------------------------------------------------------------------ child steps (sipsync side)
def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _read_chunks(path: str):
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(IO_CHUNK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            yield view[:n]


def child_step(step: str, prefault_mib: int, args: list[str]) -> None:
    sys.path.insert(0, str(REPO))
    from protocols.rsync import DeltaEncoder, FilePatcher, Signature, SignatureBuilder, delta_of, signature_of

    # warm-up: loads the numba cache; a daemon does this once at start
    delta_of(Signature.from_wire(signature_of(bytes(4096))), bytes(5000))
    # the parent's prefault can be handed back to the host while this interpreter starts (a
    # second or more on a busy machine): touch the memory again here, just before the clock
    prefault_unmapped(prefault_mib)
    base = _rss_mib()
    c0 = time.process_time()
    t0 = time.perf_counter()
    if step == "sig":
        basis, sig = args
        builder = SignatureBuilder(os.path.getsize(basis))
        with open(sig, "wb") as out:
            for chunk in _read_chunks(basis):
                out.write(builder.feed(chunk))
            out.write(builder.finish())
        extra = {"block": builder.header.block_size}
    elif step == "delta":
        sig, new, delta = args
        enc = DeltaEncoder(Signature.from_wire(Path(sig).read_bytes()))
        with open(delta, "wb") as out:
            for chunk in _read_chunks(new):
                out.writelines(enc.feed(chunk))
            out.writelines(enc.finish())
        extra = {"literal": enc.stats.literal_bytes, "copy_ops": enc.stats.copy_ops}
    elif step == "patch":
        basis, delta, target = args
        patcher = FilePatcher(target, basis)
        for chunk in _read_chunks(delta):
            patcher.feed(chunk)
        t1 = time.perf_counter()
        patcher.finish()  # fsync of the output, rename, fsync of the directory: rdiff does none
        extra = {"commit": time.perf_counter() - t1}
    else:
        raise SystemExit(f"unknown step {step}")
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    print(json.dumps({"t": dt, "cpu": cpu, "base_rss": base, "rss": _rss_mib(), **extra}))


# ------------------------------------------------------------------ parent
def prefault(mib: int) -> None:
    """Touch and free memory untimed: on this VM the first touch of freed pages is slow
    (see the anchors' README); without this the cost lands on whichever step writes most."""
    m = mmap.mmap(-1, mib * MiB)
    for off in range(0, mib * MiB, 4096):
        m[off] = 1
    m.close()


def prefault_unmapped(mib: int) -> None:
    """The same through a memory file that is written, never mapped, so that the touch does not
    count in the process's peak RSS."""
    fd = os.memfd_create("prefault")
    try:
        zeros = bytes(MiB)
        for _ in range(mib):
            os.write(fd, zeros)
    finally:
        os.close(fd)


def run(cmd: list[str], pf_mib: int, work: Path) -> tuple[float, float, str, float]:
    """Wall seconds, peak RSS MiB of the command, its stdout, its CPU seconds (user + system).

    Peak RSS comes from /usr/bin/time (as in the anchor harness): a child forked straight from
    this large process would inherit its high-water mark.
    """
    prefault(pf_mib)
    tf = work / ".rss"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([TIME, "-f", "%M", "-o", str(tf)] + cmd, capture_output=True, timeout=TIMEOUT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr.decode()[-2000:]}")
    os.sync()
    return wall, int(tf.read_text().split()[-1]) / 1024, proc.stdout.decode(), cpu


def same_file(a: Path, b: Path) -> bool:
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(IO_CHUNK), fb.read(IO_CHUNK)
            if x != y:
                return False
            if not x:
                return True


def load_make_cases(anchors: Path):
    path = anchors / "make_cases.py"
    if not path.exists():
        raise SystemExit(f"anchor harness not found at {path}")
    spec = importlib.util.spec_from_file_location("anchor_make_cases", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def bench_case(key: str, name: str, mc, size_mib: int, work: Path, reps: int) -> dict:
    cdir = work / name
    cdir.mkdir()
    basis_b, new_b, _ = mc.GEN[key](mc.rng_for(20240601, key, size_mib), size_mib * MiB)
    basis, new = cdir / "basis", cdir / "new"
    basis.write_bytes(basis_b)
    new.write_bytes(new_b)
    nsz = len(new_b)
    del basis_b, new_b
    pf = min(2 * nsz // MiB + 128, 1024)
    me = [sys.executable, str(Path(__file__).resolve()), "--step"]  # + step, prefault MiB, paths
    rows = {"case": name, "new_size": nsz, "sipsync": [], "rdiff": []}
    for rep in range(reps):
        s = {}
        w, rss, out, _ = run(me + ["sig", str(pf), str(basis), str(cdir / "sig")], pf, work)
        r = json.loads(out)
        s.update(sig_t=r["t"], sig_rss=rss, base_rss=r["base_rss"], block=r["block"])
        w, rss, out, _ = run(me + ["delta", str(pf), str(cdir / "sig"), str(new), str(cdir / "delta")], pf, work)
        r = json.loads(out)
        s.update(delta_t=r["t"], delta_rss=rss, delta_size=(cdir / "delta").stat().st_size,
                 sig_size=(cdir / "sig").stat().st_size, literal=r["literal"])
        w, rss, out, _ = run(me + ["patch", str(pf), str(basis), str(cdir / "delta"), str(cdir / "out")], pf, work)
        r = json.loads(out)
        s.update(patch_t=r["t"], patch_cpu=r["cpu"], commit_t=r["commit"], patch_rss=rss, ok=same_file(cdir / "out", new),
                 base_rss=min(s["base_rss"], r["base_rss"]))
        os.unlink(cdir / "out")
        rows["sipsync"].append(s)

        d = {}
        w, rss, _, _ = run(["rdiff", "-f", "signature", str(basis), str(cdir / "rsig")], pf, work)
        with open(cdir / "rsig", "rb") as f:
            d["block"] = struct.unpack(">4sII", f.read(12))[1]
        d.update(sig_t=w, sig_rss=rss, sig_size=(cdir / "rsig").stat().st_size)
        w, rss, _, _ = run(["rdiff", "-f", "delta", str(cdir / "rsig"), str(new), str(cdir / "rdelta")], pf, work)
        d.update(delta_t=w, delta_rss=rss, delta_size=(cdir / "rdelta").stat().st_size)
        w, rss, _, cpu = run(["rdiff", "-f", "patch", str(basis), str(cdir / "rdelta"), str(cdir / "rout")], pf, work)
        d.update(patch_t=w, patch_cpu=cpu, patch_rss=rss, ok=same_file(cdir / "rout", new))
        os.unlink(cdir / "rout")
        rows["rdiff"].append(d)
        print(f"  {name} rep {rep}: sipsync delta {s['delta_t']:.2f}s, rdiff delta {d['delta_t']:.2f}s",
              file=sys.stderr, flush=True)
    shutil.rmtree(cdir)
    return rows


def cold_start() -> float:
    code = ("import time; t = time.perf_counter(); import sys; sys.path.insert(0, %r); "
            "from protocols.rsync import Signature, delta_of, signature_of; "
            "delta_of(Signature.from_wire(signature_of(bytes(4096))), bytes(5000)); "
            "print(time.perf_counter() - t)" % str(REPO))
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True, timeout=TIMEOUT).stdout)


def render(results: list[dict], args, cold: float) -> str:
    med = lambda rs, k: statistics.median(r[k] for r in rs)
    out = [f"Command: `python bench/delta_bench.py --size-mib {args.size_mib} --cases {args.cases} "
           f"--reps {args.reps}`; medians of {args.reps}; MiB/s of the new file's size; "
           f"ratio = sipsync / rdiff (delta size: sipsync / rdiff, lower is better); "
           f"RSS = peak of the step's process (sipsync: Python+numpy+numba idle "
           f"~{statistics.median(r['base_rss'] for x in results for r in x['sipsync']):.0f} MiB included). "
           f"Cold start (interpreter, imports, numba cache load): {cold:.2f} s.", "",
           "Patch time includes fsync + rename (last column: the fsync/rename share; rdiff does not fsync). "
           "Patch CPU: user + system ms, ratio rdiff / sipsync (above 1: sipsync needs less).", "",
           "| case | block | sig MiB/s (ratio) | delta MiB/s (ratio) | patch MiB/s (ratio) | patch CPU ms (ratio) | "
           "delta bytes sipsync / rdiff (ratio) | sig bytes sipsync / rdiff | peak RSS MiB sipsync sig/delta/patch | "
           "peak RSS MiB rdiff sig/delta/patch | == new | patch fsync+rename s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in results:
        s, d, n = x["sipsync"], x["rdiff"], x["new_size"] / MiB
        cells = []
        for step in ("sig", "delta", "patch"):
            a, b = n / med(s, f"{step}_t"), n / med(d, f"{step}_t")
            cells.append(f"{a:.0f} / {b:.0f} ({a / b:.2f})")
        a, b = med(s, "patch_cpu") * 1000, med(d, "patch_cpu") * 1000
        cells.append(f"{a:.0f} / {b:.0f} ({b / max(a, 1e-9):.2f})")
        ds, dr = s[0]["delta_size"], d[0]["delta_size"]
        rsig = f"{d[0]['sig_size']:,}"
        out.append(f"| {x['case']} | {s[0]['block']} / {d[0]['block']} | {' | '.join(cells)} | "
                   f"{ds:,} / {dr:,} ({ds / max(dr, 1):.3f}) | {s[0]['sig_size']:,} / {rsig} | "
                   + "/".join(f"{max(r[f'{k}_rss'] for r in s):.0f}" for k in ("sig", "delta", "patch"))
                   + f" (idle {min(r['base_rss'] for r in s):.0f})" + " | "
                   + "/".join(f"{max(r[f'{k}_rss'] for r in d):.0f}" for k in ("sig", "delta", "patch")) + " | "
                   + ("yes" if all(r["ok"] for r in s + d) else "**NO**") + f" | {med(s, 'commit_t'):.2f} |")
    return "\n".join(out)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--step":
        child_step(sys.argv[2], int(sys.argv[3]), sys.argv[4:])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--cases", default="a,b,c,d,e,f", help="keys of make_cases.py (a..f)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--tmp", default=None, help="where to generate the cases (default: system temp)")
    ap.add_argument("--anchors", type=Path, default=ANCHORS,
                    help="the delta anchor harness (make_cases.py) [default: ../shared/anchors/delta "
                         "beside the repository]")
    args = ap.parse_args()
    if not shutil.which("rdiff"):
        raise SystemExit("rdiff not found (Debian package `rdiff`)")
    mc = load_make_cases(args.anchors)
    results = []
    t0 = time.time()
    cold = cold_start()
    with tempfile.TemporaryDirectory(prefix="sipsync-delta-bench-", dir=args.tmp) as tmp:
        for key in args.cases.split(","):
            name = f"{mc.CASES[key]}_{args.size_mib}M"
            print(f"{name} ...", file=sys.stderr, flush=True)
            results.append(bench_case(key, name, mc, args.size_mib, Path(tmp), args.reps))
    print(render(results, args, cold))
    print(f"\n(total {time.time() - t0:.0f} s, load average at end {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
