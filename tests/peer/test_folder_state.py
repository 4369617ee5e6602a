"""A daemon parses a dataset's hash cache once and reuses it while the file is unchanged."""

import json

from peer.folder_state import HASH_CACHE, load_hash_cache
from protocols.rsync import manifest


def write_cache(state_dir, rows):
    (state_dir / HASH_CACHE).write_text(json.dumps(rows))


def test_an_unchanged_hash_cache_is_not_read_again(tmp_path, monkeypatch):
    write_cache(tmp_path, {"a.txt": [3, 10, 7, "00" * 16]})
    first = load_hash_cache(tmp_path)
    parsed = []
    real_loads = manifest.json.loads
    monkeypatch.setattr(manifest.json, "loads", lambda text: parsed.append(text) or real_loads(text))
    again = load_hash_cache(tmp_path)
    assert parsed == []
    assert again.rows == first.rows == {"a.txt": [3, 10, 7, "00" * 16]}


def test_each_session_changes_only_its_own_copy_of_the_rows(tmp_path):
    write_cache(tmp_path, {"a.txt": [3, 10, 7, "00" * 16]})
    first = load_hash_cache(tmp_path)
    first.retain(set())
    assert load_hash_cache(tmp_path).rows == {"a.txt": [3, 10, 7, "00" * 16]}


def test_a_hash_cache_rewritten_on_disk_is_read_again(tmp_path):
    write_cache(tmp_path, {"a.txt": [3, 10, 7, "00" * 16]})
    load_hash_cache(tmp_path)
    write_cache(tmp_path, {"b.txt": [4, 11, 8, "11" * 16], "c.txt": [5, 12, 9, "22" * 16]})
    assert set(load_hash_cache(tmp_path).rows) == {"b.txt", "c.txt"}


def test_no_hash_cache_yet_gives_an_empty_one(tmp_path):
    assert load_hash_cache(tmp_path).rows == {}
