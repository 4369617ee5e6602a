"""End to end: a real tree of thousands of files between two daemons, copied as `rsync -a` would."""

from __future__ import annotations

import importlib.util
import os
import random
from pathlib import Path

from .test_folder_sync import online, sync
from .test_peers import fill, two_devices

SMALL_FILES = 5_000


def snapshot(root: Path) -> dict:
    """Every entry with what `rsync -a` keeps: bytes, mode, mtime (ns), link target, folders."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".sipsync-versions"]
        for name in dirs + files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            st = os.lstat(path)
            if path.is_symlink():
                out[rel] = ("link", os.readlink(path), st.st_mtime_ns)
            elif path.is_dir():
                out[rel] = ("dir", st.st_mode & 0o7777, st.st_mtime_ns)
            else:
                out[rel] = ("file", path.read_bytes(), st.st_mode & 0o7777, st.st_mtime_ns)
    return out


def generate(root: Path, rng: random.Random) -> list[str]:
    """5,000 small text files in nested folders, three big ones, links, empty folders, modes."""
    names = []
    for i in range(SMALL_FILES):
        name = f"src/m{i % 40}/s{i % 7}/f{i}.c"
        names.append(name)
        fill(root, {name: b"int v%d = %d;\n" % (i, rng.randrange(10**6)) * rng.randrange(1, 60)})
    fill(root, {f"assets/big{i}.bin": rng.randbytes((2 + i) << 20) for i in range(3)})
    (root / "empty" / "nested").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "docs" / "main.c").symlink_to("../src/m0/s0/f0.c")
    (root / "latest").symlink_to("assets")
    os.chmod(root / "src" / "m3", 0o750)
    os.chmod(root / names[5], 0o755)
    os.utime(root / names[6], ns=(1_234_567_890_123_456_789,) * 2)
    return names


def test_a_tree_of_thousands_of_files_is_copied_faithfully_then_updated_then_mirrored(
        deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    rng = random.Random(2024)
    names = generate(source, rng)
    (source / ".sipsyncignore").write_text("build/\n*.o\n")
    fill(source, {"build/out.bin": b"never sent", "src/m1/x.o": b"object"})
    online(deployment, laptop, phone)

    first = sync(laptop)
    assert first["files"] == SMALL_FILES + 3 + 2 + 1  # files, big files, links, the ignore file
    assert first["skipped"] == []
    got = snapshot(target)
    want = {k: v for k, v in snapshot(source).items() if not k.startswith("build")
            and not k.endswith(".o")}
    assert got == want

    # An update: a fifth of the files edited, one big file patched, a mode-only and an
    # mtime-only change, a new file and a deletion.
    for name in rng.sample(names[10:], SMALL_FILES // 5):
        fill(source, {name: (source / name).read_bytes() + b"/* edited */\n"})
    big = bytearray((source / "assets/big2.bin").read_bytes())
    big[1 << 20:(1 << 20) + 100] = rng.randbytes(100)
    fill(source, {"assets/big2.bin": bytes(big), "src/new.c": b"int fresh;\n"})
    os.chmod(source / names[7], 0o700)
    os.utime(source / names[8], ns=(1_111_111_111_000_000_001,) * 2)
    (source / names[9]).unlink()
    second = sync(laptop)
    assert second["detail"].startswith(f"{SMALL_FILES // 5 + 1} changed (delta), 1 new, "
                                       "2 metadata only, 1 deleted;")
    assert snapshot(target) == {k: v for k, v in snapshot(source).items()
                                if not k.startswith("build") and not k.endswith(".o")}

    # Metadata alone costs no content bytes.
    os.chmod(source / names[20], 0o711)
    os.utime(source / names[21], ns=(1_000_000_000_000_000_007,) * 2)
    third = sync(laptop)
    assert third["detail"].startswith("2 metadata only;") and third["files"] == 2
    assert third["bytes"] < 20_000
    assert snapshot(target)[names[20]][2] == 0o711

    # The phone gets files of its own, and an ignored one: a mirror removes the first, keeps
    # the second, and the phone's ignore rules hold on its side too.
    fill(target, {"stale.txt": b"phone only", "src/m2/old.c": b"old", "build/keep.bin": b"mine"})
    mirrored = sync(laptop, "--direction", "mirror")
    assert "2 deleted" in mirrored["detail"]
    assert not (target / "stale.txt").exists() and not (target / "src/m2/old.c").exists()
    assert (target / "build/keep.bin").read_bytes() == b"mine"
    if importlib.util.find_spec("peer.versions") is not None:
        kept = [p.name for p in (target / ".sipsync-versions").rglob("*") if p.is_file()]
        assert any("stale" in name for name in kept), kept
    no_op = sync(laptop)
    assert no_op["detail"] == f"in sync already, {SMALL_FILES + 3 + 2 + 1} unchanged"
    assert no_op["bytes"] < 2_000
