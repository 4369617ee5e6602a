"""Folder manifests describe regular files and do not rehash unchanged ones."""

import os

import pytest

from protocols.rsync.manifest import EntryKind, HashCache, Manifest, file_digest, scan


def test_scan_lists_regular_files_with_size_mode_and_hash(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello")
    (root / "sub" / "b.bin").write_bytes(b"\0" * 10)
    os.chmod(root / "a.txt", 0o600)
    m = scan(root)
    assert list(m) == ["a.txt", "sub", "sub/b.bin"]
    a = m.get("a.txt")
    assert (a.size, a.mode, a.digest) == (5, 0o600, file_digest(root / "a.txt"))


def test_special_files_are_skipped_and_reported_with_the_reason(tmp_path):
    (tmp_path / "real").write_bytes(b"x")
    os.mkfifo(tmp_path / "pipe")
    m = scan(tmp_path)
    assert list(m) == ["real"]
    assert [s.path for s in m.skipped] == ["pipe"] and "pipe" in m.skipped[0].reason


def test_a_symlink_is_listed_as_a_link_with_its_target_never_followed(tmp_path):
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to("real")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "up").symlink_to("../real")
    m = scan(tmp_path)
    assert (m.get("link").kind, m.get("link").target) == (EntryKind.LINK, "real")
    assert m.get("sub/up").target == "../real" and m.skipped == ()


@pytest.mark.parametrize("target", ["/etc/passwd", "../outside", "sub/../../outside"])
def test_a_symlink_leading_out_of_the_dataset_is_skipped_unless_allowed(tmp_path, target):
    (tmp_path / "sub").mkdir()
    (tmp_path / "link").symlink_to(target)
    m = scan(tmp_path)
    assert "link" not in m.entries
    assert [s.path for s in m.skipped] == ["link"] and "leads out of the dataset" in m.skipped[0].reason
    assert scan(tmp_path, allow_external_links=True).get("link").target == target


def test_empty_folders_are_listed_with_their_mode(tmp_path):
    (tmp_path / "empty").mkdir(mode=0o750)
    os.chmod(tmp_path / "empty", 0o750)
    e = scan(tmp_path).get("empty")
    assert (e.kind, e.mode) == (EntryKind.DIR, 0o750)


def test_ignored_paths_and_the_engine_s_own_files_are_not_listed(tmp_path):
    (tmp_path / ".sipsyncignore").write_text("build/\n*.o\n!keep.o\n")
    for name in ("build/a.bin", "src/a.o", "src/keep.o", "src/a.c", ".sipsync-versions/x",
                 "notes.txt.swp", ".sipsync-partial-0123"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert list(scan(tmp_path)) == [".sipsyncignore", "src", "src/a.c", "src/keep.o"]


def test_a_name_that_is_not_utf8_survives_the_manifest_round_trip(tmp_path):
    name = os.fsdecode(b"caf\xe9.txt")
    (tmp_path / name).write_bytes(b"x")
    m = scan(tmp_path)
    assert list(Manifest.from_json(m.to_json()).entries) == [name]


def test_unchanged_files_are_not_rehashed_on_the_next_scan(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for i in range(3):
        (root / f"f{i}").write_bytes(b"data %d" % i)
    scan(root, HashCache(tmp_path / "state" / "hashes.json"))
    (root / "f1").write_bytes(b"changed, and longer")
    cache = HashCache(tmp_path / "state" / "hashes.json")
    m = scan(root, cache)
    assert (cache.hits, cache.misses) == (2, 1)
    assert m.get("f1").digest == file_digest(root / "f1")


def test_manifest_survives_a_json_round_trip(tmp_path):
    (tmp_path / "a").write_bytes(b"abc")
    m = scan(tmp_path)
    assert Manifest.from_json(m.to_json()).entries == m.entries


def test_a_scan_given_the_last_state_reuses_its_unchanged_entries_and_redescribes_the_rest(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "same.txt").write_bytes(b"same")
    (root / "edited.txt").write_bytes(b"before")
    (root / "chmodded.txt").write_bytes(b"mode")
    cache = HashCache(tmp_path / "state" / "hashes.json")
    last = Manifest.from_json(scan(root, cache).to_json())  # as a daemon loads it
    (root / "edited.txt").write_bytes(b"after!")
    os.utime(root / "edited.txt", ns=(1, 1))
    os.chmod(root / "chmodded.txt", 0o600)
    now = scan(root, cache, known=last.entries)
    for path in ("sub", "sub/same.txt"):
        assert now.entries[path] is last.entries[path]
    for path in ("edited.txt", "chmodded.txt"):
        assert now.entries[path] is not last.entries[path]
    assert now.entries["edited.txt"].digest == file_digest(root / "edited.txt")
    assert now.entries["chmodded.txt"].mode == 0o600
    assert now == scan(root, HashCache())
