"""Folder manifests describe regular files and do not rehash unchanged ones."""

import os

from protocols.rsync.manifest import HashCache, Manifest, file_digest, scan


def test_scan_lists_regular_files_with_size_mode_and_hash(tmp_path):
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"hello")
    (root / "sub" / "b.bin").write_bytes(b"\0" * 10)
    os.chmod(root / "a.txt", 0o600)
    m = scan(root)
    assert list(m) == ["a.txt", "sub/b.bin"]
    a = m.get("a.txt")
    assert (a.size, a.mode, a.digest) == (5, 0o600, file_digest(root / "a.txt"))


def test_symlinks_and_special_files_are_skipped_and_reported(tmp_path):
    (tmp_path / "real").write_bytes(b"x")
    (tmp_path / "link").symlink_to("real")
    os.mkfifo(tmp_path / "pipe")
    m = scan(tmp_path)
    assert list(m) == ["real"] and m.skipped == ("link", "pipe")


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
