"""`sipsync-peer versions DATASET list|restore` and a dataset's versioning setting, from the
command line; and the daemon's cleaning round."""

import asyncio
import datetime
import json
import threading
import time

import pytest
from click.testing import CliRunner

from peer import config as peer_config
from peer.cli import main
from peer.versions import VERSIONS_DIR, VersionKind, VersionPolicy, VersionStore, clean_forever

T0 = time.time() - 3600  # an hour ago: versions kept "then" by a pretend sync


@pytest.fixture
def peer(tmp_path):
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, ["--data-dir", str(tmp_path / "data"), *args])

    assert run("init", "--server", "127.0.0.1:5060", "--user", "alice", "--device", "laptop",
               "--password", "pw").exit_code == 0
    assert run("dataset", "add", "photos", "--type", "files", "--path",
               str(tmp_path / "photos")).exit_code == 0
    return run


@pytest.fixture
def kept(tmp_path):
    """Two versions of trip/a.txt (kept ten and five minutes after T0) and the file now."""
    root = tmp_path / "photos"
    store = VersionStore(root)
    (root / "trip").mkdir(parents=True, exist_ok=True)
    for i, when in enumerate((T0 + 600, T0 + 300)):
        (root / "trip" / "a.txt").write_bytes(b"version %d" % i)
        store.keep("trip/a.txt", now=when)
        (root / "trip" / "a.txt").unlink()
    (root / "trip" / "a.txt").write_bytes(b"what the last sync brought")
    return root


def local(seconds: float) -> str:
    return datetime.datetime.fromtimestamp(seconds).isoformat(sep=" ", timespec="seconds")


def test_a_folder_keeps_a_30_day_trash_can_unless_told_otherwise(peer, tmp_path):
    config = peer_config.load(tmp_path / "data")
    assert config.datasets["photos"].versions == VersionPolicy(VersionKind.TRASHCAN)
    result = peer("dataset", "add", "music", "--type", "files", "--path", str(tmp_path / "music"),
                  "--versioning", "staggered", "--versions-days", "90")
    assert result.exit_code == 0, result.output
    peer("dataset", "add", "tmp", "--type", "files", "--path", str(tmp_path / "tmp"),
         "--versioning", "off")
    datasets = peer_config.load(tmp_path / "data").datasets
    assert datasets["music"].versions == VersionPolicy(VersionKind.STAGGERED, 90)
    assert datasets["tmp"].versions is None
    assert 'versioning = "staggered"' in (tmp_path / "data" / "peer.toml").read_text()


def test_versioning_options_that_make_no_sense_are_usage_errors(peer, tmp_path):
    result = peer("dataset", "add", "people", "--type", "contacts", "--path", str(tmp_path / "p"),
                  "--versioning", "trashcan")
    assert result.exit_code == 2 and "for files datasets" in result.output
    result = peer("dataset", "add", "x", "--type", "files", "--path", str(tmp_path / "x"),
                  "--versioning", "off", "--versions-days", "3")
    assert result.exit_code == 2
    assert peer("dataset", "add", "y", "--type", "files", "--path", str(tmp_path / "y"),
                "--versions-days", "0").exit_code == 2


def test_list_shows_the_versions_newest_first(peer, kept):
    result = peer("versions", "photos", "list")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"{local(T0 + 600)}  9 B  trip/a.txt",
                                          f"{local(T0 + 300)}  9 B  trip/a.txt"]
    rows = json.loads(peer("versions", "photos", "list", "trip/a.txt", "--json").output)
    assert [r["kept_at"] for r in rows] == [int(T0 + 600), int(T0 + 300)]
    assert rows[0]["version"].startswith(f"{VERSIONS_DIR}/trip/a~") and rows[0]["size"] == 9
    assert peer("versions", "photos", "list", "other.txt").output.strip() == "no versions of other.txt"


def test_restore_puts_a_version_back_and_keeps_the_file_it_replaces(peer, kept):
    result = peer("versions", "photos", "restore", "trip/a.txt")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"restored trip/a.txt as kept at {local(T0 + 600)}"
    assert (kept / "trip" / "a.txt").read_bytes() == b"version 0"
    rows = json.loads(peer("versions", "photos", "list", "trip/a.txt", "--json").output)
    assert len(rows) == 3, "the file the restore replaced is a version now"


def test_restore_at_takes_iso_8601_or_epoch_seconds(peer, kept):
    at = datetime.datetime.fromtimestamp(T0 + 400).isoformat(timespec="seconds")
    assert peer("versions", "photos", "restore", "trip/a.txt", "--at", at).exit_code == 0
    assert (kept / "trip" / "a.txt").read_bytes() == b"version 1"
    assert peer("versions", "photos", "restore", "trip/a.txt", "--at", str(T0 + 700)).exit_code == 0
    assert (kept / "trip" / "a.txt").read_bytes() == b"version 0"


def test_restore_failures_and_bad_arguments_have_their_exit_codes(peer, kept, tmp_path):
    result = peer("versions", "photos", "restore", "trip/a.txt", "--at", str(T0))
    assert result.exit_code == 1 and "no version of 'trip/a.txt' kept at or before" in result.output
    assert peer("versions", "photos", "restore", "trip/a.txt", "--at", "yesterday").exit_code == 2
    assert peer("versions", "photos", "restore", "../../etc/passwd").exit_code == 2
    assert peer("versions", "photos", "list", "/etc").exit_code == 2
    assert peer("versions", "nothing", "list").exit_code == 1
    peer("dataset", "add", "people", "--type", "contacts", "--path", str(tmp_path / "people"))
    assert peer("versions", "people", "list").exit_code == 1


async def test_the_daemon_cleans_versions_at_start_by_each_datasets_policy(tmp_path):
    root = tmp_path / "photos"
    root.mkdir()
    (root / "old.txt").write_bytes(b"old")
    cleaned = threading.Event()

    class Watched(VersionStore):
        def clean(self, now=None):
            try:
                return super().clean(now)
            finally:
                cleaned.set()

    store = Watched(root, VersionPolicy(VersionKind.TRASHCAN, days=1))
    store.keep("old.txt", now=time.time() - 2 * 86400)
    task = asyncio.create_task(clean_forever(lambda: [store], every=3600))
    try:
        assert await asyncio.to_thread(cleaned.wait, 10), "no cleaning round within 10 s"
    finally:
        task.cancel()
    assert store.list() == []
