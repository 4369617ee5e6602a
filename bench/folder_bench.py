"""Folder sync benchmark: sipsync's daemons against `rsync -a --delete` and Syncthing, same run.

Anchors: an rsync daemon on loopback (`<repo>/../shared/anchors/folder/rsync_daemon.sh`), pushed to
with `rsync -a --delete --stats` and with `-z` too; and, where `syncthing` is on PATH (Debian's
1.19, `apt-get install syncthing`), two Syncthing instances on loopback run by
`bench/syncthing_pair.py` (skipped with a printed line otherwise, or with --skip-syncthing). Not a
test.

    python bench/folder_bench.py [--files 4700] [--reps 3] [--cases first,update,noop,big]
                                 [--big-mib 50,200] [--skip-syncthing]

The tree is generated (seeded) in the shape of a real source tree: a few thousand text files of
1 KB-1 MB (most of a few KB) in nested folders, 3 symlinks and an empty folder; "new" edits the
lines of ~20 % of the files, adds and deletes a few. Cases: first sync into an empty folder;
update old -> new; nothing changed; two big files (random bytes, as compressed tarballs are)
updated with scattered edits. sipsync runs as two `sipsync-peer daemon` processes and the
`sipsync-server`; each sync is one `sipsync-peer invite --json` (its wall time includes that
command's own start-up, shown apart as "cli"). CPU is every process involved (client, daemons or
rsync daemon and its children). Bytes: what crossed the data channel (frame headers and
payloads, TLS overhead not counted) / rsync's "Total bytes sent + received". Medians of --reps.

Syncthing: each sample is a folder of its own, shared afresh at both instances with the file
watcher and periodic rescans off; it is brought to the case's "before" untimed, then the tree is
changed and the sync timed from a scan asked through REST (so the watcher's delay, 10 s by
default, does not count) until both instances are idle with nothing needed and the destination
is the same as the source. CPU is both instances' (the REST looks included); bytes are what a
and b exchanged by Syncthing's own count (/rest/system/connections, TLS not counted), with its
default compression ("metadata": indexes, not file data). Syncthing runs at normal priority, as
the others do (its default lowers its own).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.syncthing_pair import SyncthingPair  # noqa: E402
# beside the repository (a worktree may sit one level deeper)
ANCHORS = next((up / "shared" / "anchors" / "folder" for up in REPO.parents
                if (up / "shared" / "anchors" / "folder").is_dir()),
               REPO.parent / "shared" / "anchors" / "folder")
TICK = os.sysconf("SC_CLK_TCK")
WORDS = ("int char static return if else for while struct void const unsigned size_t buffer "
         "length count index value error result config state the of to and a in is it that "
         "node list next prev head tail data key hash table lock init free alloc read write "
         "open close file path name flags mode offset block frame stream parse token").split()


# ------------------------------------------------------------------ the tree
def text_file(rng: random.Random, size: int) -> bytes:
    lines, total = [], 0
    while total < size:
        indent = "    " * rng.randrange(0, 4)
        line = indent + " ".join(rng.choice(WORDS) for _ in range(rng.randrange(2, 12)))
        line += rng.choice((";", " {", "", " }", ");")) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines).encode()


def edit_text(rng: random.Random, data: bytes) -> bytes:
    lines = data.split(b"\n")
    for _ in range(rng.randrange(1, 6)):
        at = rng.randrange(len(lines))
        what = rng.random()
        if what < 0.4:
            lines[at:at] = [text_file(rng, rng.randrange(20, 400)).rstrip(b"\n")]
        elif what < 0.7 and len(lines) > 2:
            del lines[at:at + rng.randrange(1, 5)]
        else:
            lines[at] = text_file(rng, 60).rstrip(b"\n")
    return b"\n".join(lines)


def file_size(rng: random.Random) -> int:
    return int(min(1 << 20, max(1024, rng.lognormvariate(8.6, 1.1))))


def make_trees(root: Path, count: int, seed: int) -> tuple[Path, Path]:
    """old/ and new/: the same tree before and after ~20 % of its files changed."""
    rng = random.Random(seed)
    old, new = root / "old", root / "new"
    names = []
    # about 15 files a folder, folders nested up to 4 deep, as in a project's source tree
    folders = [""]
    for i in range(max(1, count // 15)):
        parent = rng.choice([f for f in folders if f.count("/") < 4])
        folders.append(f"{parent}/{rng.choice(WORDS)}{i}".lstrip("/"))
    folders.remove("")
    for i in range(count):
        folder = rng.choice(folders)
        names.append(f"{folder}/{rng.choice(WORDS)}_{i}.{rng.choice(('c', 'h', 'py', 'txt'))}")
    for name in names:
        data = text_file(rng, file_size(rng))
        for top in (old, new):
            path = top / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        if rng.random() < 0.05:
            os.chmod(old / name, 0o755), os.chmod(new / name, 0o755)
    for name in rng.sample(names, count // 5):
        (new / name).write_bytes(edit_text(rng, (new / name).read_bytes()))
    for name in rng.sample(names, 12):
        (new / name).unlink(missing_ok=True)
    for i in range(15):
        path = new / f"added/new_{i}.c"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text_file(rng, file_size(rng)))
    for top in (old, new):
        (top / "empty" / "folder").mkdir(parents=True, exist_ok=True)
        for i, target in enumerate(rng.sample(names[:50], 3)):
            if (top / target).exists():
                link = top / f"link_{i}"
                link.symlink_to(target)
    # The same mtimes in both trees for unchanged files (as two checkouts compared by rsync).
    stamp = 1_700_000_000
    for top in (old, new):
        for path in sorted(top.rglob("*")):
            if path.is_file() and not path.is_symlink():
                os.utime(path, (stamp, stamp))
    for name in names:
        if (new / name).exists() and (new / name).read_bytes() != (old / name).read_bytes():
            os.utime(new / name, (stamp + 86_400, stamp + 86_400))
    return old, new


def make_big(root: Path, sizes_mib: list[int], seed: int) -> tuple[Path, Path]:
    import numpy as np

    gen = np.random.default_rng(seed)
    old, new = root / "big-old", root / "big-new"
    old.mkdir(), new.mkdir()
    for i, mib in enumerate(sizes_mib):
        data = bytearray(gen.bytes(mib << 20))
        (old / f"release-{i}.tar.gz").write_bytes(data)
        for _ in range(8):  # scattered edits, a few insertions
            at = int(gen.integers(0, len(data) - 70_000))
            data[at:at + 65_536] = gen.bytes(65_536 + int(gen.integers(0, 4096)))
        (new / f"release-{i}.tar.gz").write_bytes(data)
    return old, new


def replace_tree(src: Path, dst: Path, *keep: str) -> None:
    """dst becomes a copy of src (times, modes, links), quickly and outside any tool measured;
    the top-level entries named in `keep` stay as they are."""
    subprocess.run(["rsync", "-a", "--delete", *(f"--exclude=/{name}" for name in keep),
                    f"{src}/", f"{dst}/"], check=True)


def wipe(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


# ------------------------------------------------------------------ measuring
def proc_cpu(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def user_system(pid: int) -> tuple[float, float]:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


@dataclass
class Sample:
    wall: float
    cpu: float
    wire: int
    cli: float = 0.0  # sipsync: seconds of the invite command that are not the session
    # sipsync: user and system seconds of the sending and the receiving daemon. On a file system
    # that makes creating files dear (ext4 without a journal, right after many deletions), the
    # receiver's system time swings from run to run; user time is what the code controls.
    split: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)


def reaped(pid: int) -> None:
    """Until `pid` has waited for its children (an rsync daemon forks one per connection, whose
    CPU shows in the daemon's cutime only once reaped)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            if not f.read().strip():
                return
        time.sleep(0.01)


def timed(command: list[str], pids: list[int], **kw) -> tuple[subprocess.CompletedProcess, float, float]:
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = proc_cpu(pids)
    t0 = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, **kw)
    wall = time.perf_counter() - t0
    for pid in pids:
        reaped(pid)
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (proc_cpu(pids) - before + after_children.ru_utime - before_children.ru_utime
           + after_children.ru_stime - before_children.ru_stime)
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed: {result.stdout}{result.stderr}")
    return result, wall, cpu


class SipsyncPair:
    def __init__(self, work: Path) -> None:
        from tests.e2e.conftest import Deployment

        self.deployment = Deployment(work / "sipsync")
        self.deployment.user("bench", "bench-pw")
        self.deployment.start_server("--log-level", "WARNING")
        self.laptop = self.deployment.device("bench", "bench-pw", "laptop")
        self.phone = self.deployment.device("bench", "bench-pw", "phone")
        self.src = self.laptop.dataset("tree", work / "sipsync-src")
        self.dst = self.phone.dataset("tree", work / "sipsync-dst")
        for folder in (self.src, self.dst):
            folder.mkdir(parents=True, exist_ok=True)
        self.laptop.start(), self.phone.start()
        deadline = time.monotonic() + 30
        while len(self.deployment.online()) < 2:
            if time.monotonic() > deadline:
                raise SystemExit("the sipsync daemons did not come online")
            time.sleep(0.2)
        self.pids = [self.laptop.process.pid, self.phone.process.pid,
                     self.deployment.server.process.pid]

    def forget(self) -> None:
        """No history between the two devices: the next sync is a first one."""
        for device in (self.laptop, self.phone):
            shutil.rmtree(device.data_dir / "state", ignore_errors=True)

    def sync(self) -> Sample:
        command = [sys.executable, "-m", "peer.cli", "--data-dir", str(self.laptop.data_dir),
                   "invite", "bench/phone", "--dataset", "tree", "--direction", "mirror", "--json"]
        daemons = self.pids[:2]
        before = [user_system(pid) for pid in daemons]
        result, wall, cpu = timed(command, self.pids, cwd=REPO)
        after = [user_system(pid) for pid in daemons]
        outcome = json.loads(result.stdout)
        if not outcome.get("ok"):
            raise SystemExit(f"sipsync failed: {outcome}")
        split = tuple(a[i] - b[i] for a, b in zip(after, before) for i in (0, 1))
        return Sample(wall, cpu, outcome["bytes"], wall - outcome["seconds"], split)

    def close(self) -> None:
        self.deployment.close()


class RsyncDaemon:
    def __init__(self, work: Path, port: int) -> None:
        self.dir = work / "rsyncd"
        self.port = port
        subprocess.run([str(ANCHORS / "rsync_daemon.sh"), "start", str(self.dir), str(port)],
                       check=True, capture_output=True)
        self.dst = self.dir / "dst"
        self.pids = [int((self.dir / "rsyncd.pid").read_text())]

    def sync(self, src: Path, *flags: str) -> Sample:
        command = ["rsync", "-a", "--delete", "--stats", *flags, f"{src}/",
                   f"rsync://127.0.0.1:{self.port}/dst/"]
        result, wall, cpu = timed(command, self.pids)
        stats = {line.split(":")[0]: line.split(":")[1] for line in result.stdout.splitlines()
                 if line.startswith("Total bytes")}
        wire = sum(int(stats[k].split()[0].replace(",", "")) for k in
                   ("Total bytes sent", "Total bytes received"))
        return Sample(wall, cpu, wire)

    def close(self) -> None:
        subprocess.run([str(ANCHORS / "rsync_daemon.sh"), "stop", str(self.dir)],
                       capture_output=True)


# ------------------------------------------------------------------ the cases
def run_case(case: str, trees: dict, tools: dict, reps: int) -> dict[str, list[Sample]]:
    before, after = trees[case]
    out: dict[str, list[Sample]] = {name: [] for name in tools}
    for _ in range(reps):
        for name, tool in tools.items():
            if name == "syncthing":
                out[name].append(syncthing_sample(tool, case, before, after))
                continue
            if name == "sipsync":
                src, dst = tool.src, tool.dst
            else:
                src, dst = trees["rsync-src"], tool.dst
            if case == "first":
                wipe(dst), replace_tree(after, src)
                if name == "sipsync":
                    tool.forget()
            else:
                replace_tree(before, src)
                if name == "sipsync":
                    tool.forget()
                    wipe(dst)
                    tool.sync()
                else:
                    tool.sync(src)
                if case != "noop":
                    replace_tree(after, src)
            flags = ("-z",) if name == "rsync -z" else ()
            sample = tool.sync() if name == "sipsync" else tool.sync(src, *flags)
            out[name].append(sample)
            # the anchor's daemon runs without chroot, so it munges symlink targets (rsync's
            # "munge symlinks" default there): its links are left out of its comparison
            check_same(src, dst, *(("-x", "link_*") if name.startswith("rsync") else ()))
    return out


def syncthing_sample(pair: SyncthingPair, case: str, before: Path | None, after: Path) -> Sample:
    """One sample in a folder shared afresh (so a first sync is a first one and nothing is
    wiped behind Syncthing's back), brought to `before` untimed, then timed to `after`."""
    folder = pair.share()
    try:
        if before is not None:
            replace_tree(before, folder.src, ".stfolder")
            pair.sync(folder, lambda: same(folder.src, folder.dst))
        if case != "noop":
            replace_tree(after, folder.src, ".stfolder")
        transfer = pair.sync(folder, lambda: same(folder.src, folder.dst))
    finally:
        pair.unshare(folder)
        for path in (folder.src, folder.dst):
            shutil.rmtree(path, ignore_errors=True)
    return Sample(transfer.wall, transfer.cpu, transfer.wire)


def compare(src: Path, dst: Path, *exclude: str) -> subprocess.CompletedProcess:
    return subprocess.run(["diff", "-r", "--no-dereference", "-x", ".stfolder", "-x",
                           ".sipsync-versions", *exclude, str(src), str(dst)],
                          capture_output=True, text=True)


def same(src: Path, dst: Path) -> bool:
    return compare(src, dst).returncode == 0


def check_same(src: Path, dst: Path, *exclude: str) -> None:
    result = compare(src, dst, *exclude)
    if result.returncode != 0:
        raise SystemExit(f"{dst} differs from {src}:\n{result.stdout[:2000]}")


def median(samples: list[Sample], field: str) -> float:
    return statistics.median(getattr(s, field) for s in samples)


def wall_cpu(samples: list[Sample] | None) -> str:
    return f"{median(samples, 'wall'):.2f} / {median(samples, 'cpu'):.2f}" if samples else "-"


def report(case: str, results: dict[str, list[Sample]], files: int,
           split: list[str] | None = None) -> None:
    """One row of the table; with `split`, a row of the daemons' user and system time too."""
    ours = results["sipsync"]
    rs, rz, st = results.get("rsync"), results.get("rsync -z"), results.get("syncthing")
    wall, cpu, wire = median(ours, "wall"), median(ours, "cpu"), median(ours, "wire")
    cli = median(ours, "cli")
    row = [case, f"{wall:.2f} ({wall - cli:.2f} + cli {cli:.2f}) / {cpu:.2f}",
           f"{cpu / files * 1e6:.0f}", wall_cpu(rs), wall_cpu(rz), wall_cpu(st)]
    st_wire = f"{median(st, 'wire'):,.0f}" if st else "-"
    row.append(f"{wire:,.0f} / {median(rs, 'wire'):,.0f} / {median(rz, 'wire'):,.0f} / {st_wire}")
    row.append(f"{wall / median(rs, 'wall'):.2f} / {(wall - cli) / median(rs, 'wall'):.2f}")
    if st:
        st_wall = median(st, "wall")
        row.append(f"{wall / st_wall:.2f} / {(wall - cli) / st_wall:.2f}")
    else:
        row.append("-")
    # Syncthing's no-op sends nothing at all: no ratio to a zero
    st_bytes = f"{wire / median(st, 'wire'):.2f}" if st and median(st, "wire") else "-"
    row.append(f"{wire / median(rz, 'wire'):.2f} / {st_bytes}")
    print("| " + " | ".join(row) + " |", flush=True)
    if split is not None:
        figures = [statistics.median(s.split[i] for s in ours) for i in range(4)]
        split.append(f"| {case} | " + " | ".join(f"{v:.2f}" for v in figures) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=4700)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cases", default="first,update,noop,big")
    parser.add_argument("--big-mib", default="50,200")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--port", type=int, default=8462)
    parser.add_argument("--syncthing", action="store_true",
                        help="(the default now, wherever syncthing is installed)")
    parser.add_argument("--skip-syncthing", action="store_true",
                        help="leave the Syncthing pair out even where syncthing is installed")
    args = parser.parse_args()
    cases = args.cases.split(",")
    work = Path(tempfile.mkdtemp(prefix="sipsync-folder-bench-"))
    tools: dict = {}
    try:
        old, new = make_trees(work / "trees", args.files, args.seed)
        trees = {"first": (None, old), "update": (old, new), "noop": (new, new),
                 "rsync-src": work / "rsync-src"}
        if "big" in cases:
            trees["big"] = make_big(work / "trees", [int(v) for v in args.big_mib.split(",")],
                                    args.seed)
        count = sum(1 for p in old.rglob("*") if not p.is_dir())
        size = sum(p.stat().st_size for p in old.rglob("*") if p.is_file() and not p.is_symlink())
        # The commands start from compiled modules, as after an install: an environment that
        # writes no bytecode (PYTHONDONTWRITEBYTECODE) would compile them on every invite.
        for package in ("control_server", "peer", "protocols", "session_xml"):
            compileall.compile_dir(REPO / package, quiet=1)
        tools["sipsync"] = SipsyncPair(work)
        tools["rsync"] = RsyncDaemon(work, args.port)
        tools["rsync -z"] = tools["rsync"]
        anchors = [subprocess.run(["rsync", "--version"], capture_output=True,
                                  text=True).stdout.splitlines()[0]]
        if args.skip_syncthing:
            print("Syncthing left out (--skip-syncthing)")
        elif shutil.which("syncthing") is None:
            print("syncthing is not on PATH: no Syncthing column this run "
                  "(apt-get install syncthing)")
        else:
            tools["syncthing"] = SyncthingPair(work / "syncthing")
            anchors.append(f"syncthing {tools['syncthing'].version()}")
        print(f"tree: {count:,} entries, {size / 1e6:.1f} MB (seed {args.seed}); "
              f"{'; '.join(anchors)}; medians of {args.reps}; load {os.getloadavg()[0]:.1f}")
        print("\n| case | sipsync wall (session + cli) / CPU s | CPU µs/file | rsync -a wall / CPU "
              "| rsync -az wall / CPU | Syncthing wall / CPU "
              "| bytes sipsync / rsync / rsync -z / Syncthing "
              "| wall ratio to rsync (all / session) | wall ratio to Syncthing (all / session) "
              "| bytes ratio to rsync -z / Syncthing |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        split_rows: list[str] = []
        for case in cases:
            results = run_case(case, trees, tools, args.reps)
            files = count if case != "big" else len(list(trees["big"][1].iterdir()))
            report(case, results, files, split_rows)
        print("\nsipsync daemons, user / system seconds (medians):\n\n| case | sender user | "
              "sender system | receiver user | receiver system |\n|---|---|---|---|---|")
        print("\n".join(split_rows))
        print(f"\nload at the end {os.getloadavg()[0]:.1f}")
    finally:
        closed = set()
        for tool in tools.values():
            if id(tool) not in closed:
                closed.add(id(tool))
                tool.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
