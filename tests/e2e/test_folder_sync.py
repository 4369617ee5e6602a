"""End to end: folder sync (rsync) between two peer daemons through a real control server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..waiting import wait_until
from .test_peers import fill, tree, two_devices

REPO = Path(__file__).resolve().parents[2]


def online(deployment, laptop, phone):
    laptop.start(), phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both devices online")


def sync(laptop, *args: str) -> dict:
    result = laptop.invite("alice/phone", "--dataset", "photos", "--json", *args)
    outcome = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout + result.stderr + laptop.logs()
    return outcome


def test_a_push_carries_new_files_edits_a_rename_and_deletions(deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    fill(source, {"a.txt": b"alpha", "trip/day1.jpg": os.urandom(200_000),
                  "trip/day2.jpg": os.urandom(300_000), "old.txt": b"old"})
    fill(target, {"mine.txt": b"only on the phone"})
    online(deployment, laptop, phone)
    first = sync(laptop)
    assert first["files"] == 4
    assert first["detail"] == "4 new; 0 unchanged, 1 left alone on one side"
    assert tree(target) == {**tree(source), "mine.txt": b"only on the phone"}

    (source / "trip/day2.jpg").rename(source / "trip/renamed.jpg")
    (source / "old.txt").unlink()
    fill(source, {"a.txt": b"alpha, edited"})
    second = sync(laptop)
    assert second["detail"] == ("1 changed (delta), 1 new, 2 deleted; 1 unchanged, "
                                "1 left alone on one side")
    # The renamed file was rebuilt from the old one on the phone: its 300 kB did not cross.
    assert second["bytes"] < 50_000
    # What the phone had on its own is its own: a push deletes only what the laptop deleted.
    assert tree(target) == {**tree(source), "mine.txt": b"only on the phone"}

    latest = wait_until(lambda: [s for s in deployment.history() if s["progress"]["bytes"]
                                 == second["bytes"]], what="the second session in history")[0]
    assert latest["state"] == "ended" and latest["progress"]["phase"] == "done"


def test_a_second_sync_after_a_small_edit_sends_far_fewer_bytes_than_the_file(deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    video = os.urandom(3_000_000)
    fill(source, {"video.bin": video})
    online(deployment, laptop, phone)
    first = sync(laptop)
    assert first["bytes"] > 3_000_000

    fill(source, {"video.bin": video[:1_500_000] + b"a small edit" + video[1_500_000:]})
    second = sync(laptop)
    assert tree(target) == tree(source)
    assert second["files"] == 1 and second["detail"] == "1 changed (delta); 0 unchanged"
    assert second["bytes"] < 100_000  # a signature and a delta, not 3 MB


def test_a_pull_brings_the_callee_changes_and_deletions_to_the_caller(deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    fill(target, {"notes/todo.txt": b"buy milk", "notes/old.txt": b"done"})
    online(deployment, laptop, phone)
    assert sync(laptop, "--direction", "pull")["files"] == 2
    assert tree(source) == tree(target)

    (target / "notes/old.txt").unlink()
    fill(target, {"notes/todo.txt": b"buy milk and bread"})
    outcome = sync(laptop, "--direction", "pull")
    assert outcome["detail"] == "1 changed (delta), 1 deleted; 0 unchanged"
    assert tree(source) == {"notes/todo.txt": b"buy milk and bread"}


def test_two_way_merges_both_sides_and_a_conflict_keeps_both_versions(deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    fill(source, {"report.txt": b"draft", "from-laptop.txt": b"L"})
    fill(target, {"from-phone.txt": b"P"})
    online(deployment, laptop, phone)
    sync(laptop, "--direction", "two-way")
    assert tree(source) == tree(target) == {"report.txt": b"draft", "from-laptop.txt": b"L",
                                            "from-phone.txt": b"P"}

    fill(source, {"report.txt": b"the laptop's edit"})
    fill(target, {"report.txt": b"the phone's edit, made later"})
    os.utime(source / "report.txt", (1_700_000_000, 1_700_000_000))
    os.utime(target / "report.txt", (1_700_000_060, 1_700_000_060))
    (target / "from-laptop.txt").unlink()
    outcome = sync(laptop, "--direction", "two-way")
    copy = "report.sync-conflict-20231114-221320-laptop.txt"
    assert outcome["detail"] == f"1 deleted, 1 conflict kept as {copy}; 1 unchanged"
    # The newer edit wins on both devices; the older one is kept beside it, nothing is lost.
    assert tree(source) == tree(target) == {"report.txt": b"the phone's edit, made later",
                                            copy: b"the laptop's edit", "from-phone.txt": b"P"}


def test_a_manifest_path_that_climbs_out_of_the_dataset_is_refused(deployment, tmp_path):
    laptop, phone, source, target = two_devices(deployment, tmp_path)
    fill(target, {"keep.txt": b"untouched"})
    # The laptop's daemon runs a lying folder sync: its manifest names ../escape.txt.
    laptop.log = open(laptop.log_path, "a")
    laptop.process = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.hostile_peer", "--data-dir", str(laptop.data_dir),
         "daemon"], stdout=laptop.log, stderr=subprocess.STDOUT, cwd=REPO)
    wait_until(lambda: (laptop.data_dir / "control.sock").exists(), what="the hostile daemon")
    phone.start()
    wait_until(lambda: len(deployment.online()) == 2, what="both devices online")

    result = laptop.invite("alice/phone", "--dataset", "photos")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused an unsafe path from alice/laptop" in result.stdout
    assert "'../escape.txt'" in result.stdout
    failed = wait_until(lambda: [s for s in deployment.history() if s["state"] == "failed"],
                        what="the refusal in history")
    assert "refused an unsafe path from alice/laptop" in failed[0]["reason"]
    assert not (target.parent / "escape.txt").exists()
    assert tree(target) == {"keep.txt": b"untouched"}
