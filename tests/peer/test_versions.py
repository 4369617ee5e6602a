"""Versions: what a sync replaced or deleted is kept, listed newest first, restored without losing
anything, and thinned by the trash-can or staggered policy (a fake clock drives the time)."""

import errno
import os
import time

import pytest

from peer.versions import (
    DAY, VERSIONS_DIR, TAG_FORMAT, VersionError, VersionKind, VersionPolicy, VersionStore,
)
from protocols.rsync.errors import UnsafePath

T0 = 1_764_600_000.0  # a fixed "now" of the fake clock (late 2025)


def tag(when: float) -> str:
    return time.strftime(TAG_FORMAT, time.localtime(when))


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "photos"
    (root / "trip").mkdir(parents=True)
    return root


def write(path, data: bytes, mtime: float | None = None, mode: int | None = None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mode is not None:
        os.chmod(path, mode)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_a_kept_file_is_a_hard_link_under_its_own_path_with_a_time_tag(dataset):
    write(dataset / "trip" / "beach.jpg", b"waves")
    kept = VersionStore(dataset).keep("trip/beach.jpg", now=T0)
    assert kept == dataset / VERSIONS_DIR / "trip" / f"beach~{tag(T0)}.jpg"
    assert kept.read_bytes() == b"waves"
    assert os.stat(kept).st_ino == os.stat(dataset / "trip" / "beach.jpg").st_ino


def test_names_without_an_extension_and_dotfiles_keep_their_whole_name(dataset):
    write(dataset / "README", b"r")
    write(dataset / ".profile", b"p")
    write(dataset / "a.tar.gz", b"z")
    store = VersionStore(dataset)
    names = [store.keep(n, now=T0).name for n in ("README", ".profile", "a.tar.gz")]
    assert names == [f"README~{tag(T0)}", f".profile~{tag(T0)}", f"a.tar~{tag(T0)}.gz"]
    assert sorted(v.relative for v in store.list()) == [".profile", "README", "a.tar.gz"]


def test_where_hard_links_fail_the_version_is_a_copy(dataset, monkeypatch):
    write(dataset / "doc.txt", b"text", mtime=T0 - 500, mode=0o640)

    def no_links(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")
    monkeypatch.setattr(os, "link", no_links)
    kept = VersionStore(dataset).keep("doc.txt", now=T0)
    st, live = os.stat(kept), os.stat(dataset / "doc.txt")
    assert kept.read_bytes() == b"text" and st.st_ino != live.st_ino
    assert st.st_mtime == T0 - 500 and st.st_mode & 0o777 == 0o640
    assert [p.name for p in kept.parent.iterdir()] == [kept.name], "no temporary file left"


def test_nothing_is_kept_when_there_is_no_regular_file(dataset):
    store = VersionStore(dataset)
    (dataset / "elsewhere").symlink_to(dataset / "trip")
    assert store.keep("missing.txt", now=T0) is None
    assert store.keep("trip", now=T0) is None
    assert store.keep("elsewhere", now=T0) is None
    assert store.list() == []


def test_two_versions_of_the_same_second_both_stay_newest_first(dataset):
    store = VersionStore(dataset)
    write(dataset / "n.txt", b"one")
    first = store.keep("n.txt", now=T0)
    (dataset / "n.txt").unlink()
    write(dataset / "n.txt", b"two")
    second = store.keep("n.txt", now=T0)
    assert first != second and second.name == f"n~{tag(T0)}-2.txt"
    assert [v.path.read_bytes() for v in store.list("n.txt")] == [b"two", b"one"]


def test_list_gives_one_files_versions_or_all_newest_first(dataset):
    store = VersionStore(dataset)
    for i, when in enumerate((T0 - 300, T0 - 100, T0 - 200)):
        write(dataset / "trip" / "a.jpg", b"a%d" % i)
        store.keep("trip/a.jpg", now=when)
        (dataset / "trip" / "a.jpg").unlink()
    write(dataset / "b.txt", b"b")
    store.keep("b.txt", now=T0 - 50)
    assert [v.kept_at for v in store.list("trip/a.jpg")] == [T0 - 100, T0 - 200, T0 - 300]
    assert [v.relative for v in store.list()] == ["b.txt"] + ["trip/a.jpg"] * 3
    assert store.list("nothing/here.txt") == []
    assert store.list()[0].size == 1


def test_restore_puts_back_the_newest_version_with_mode_and_mtime_and_keeps_the_current_file(dataset):
    store = VersionStore(dataset, clock=lambda: T0)
    write(dataset / "doc.txt", b"old words", mtime=T0 - 9000, mode=0o600)
    store.keep("doc.txt", now=T0 - 60)
    (dataset / "doc.txt").unlink()
    write(dataset / "doc.txt", b"what the sync brought")
    restored = store.restore("doc.txt")
    assert restored.read_bytes() == b"old words"
    st = os.stat(restored)
    assert st.st_mtime == T0 - 9000 and st.st_mode & 0o777 == 0o600
    assert [v.path.read_bytes() for v in store.list("doc.txt")] == [b"what the sync brought", b"old words"]
    assert not [p for p in dataset.iterdir() if p.name.startswith(".sipsync-restore-")]


def test_restore_at_a_time_takes_the_version_kept_at_or_before_it(dataset):
    store = VersionStore(dataset, clock=lambda: T0)
    for i, when in enumerate((T0 - 3000, T0 - 2000, T0 - 1000)):
        write(dataset / "f.txt", b"v%d" % i)
        store.keep("f.txt", now=when)
        (dataset / "f.txt").unlink()
    assert store.restore("f.txt", at=T0 - 1500).read_bytes() == b"v1"
    assert store.restore("f.txt", at=T0 - 2000).read_bytes() == b"v1"
    with pytest.raises(VersionError, match="no version of 'f.txt' kept at or before"):
        store.restore("f.txt", at=T0 - 4000)
    with pytest.raises(VersionError):
        store.restore("never-kept.txt")


def test_a_deleted_file_comes_back_with_its_folder(dataset):
    store = VersionStore(dataset)
    write(dataset / "deep" / "er" / "x.bin", b"x")
    store.keep("deep/er/x.bin", now=T0)
    (dataset / "deep" / "er" / "x.bin").unlink()
    os.removedirs(dataset / "deep" / "er")
    assert store.restore("deep/er/x.bin").read_bytes() == b"x"


def test_a_restored_file_is_a_copy_so_editing_it_leaves_the_version_alone(dataset):
    store = VersionStore(dataset)
    write(dataset / "f.txt", b"kept")
    version = store.keep("f.txt", now=T0)
    (dataset / "f.txt").unlink()
    restored = store.restore("f.txt")
    with open(restored, "ab") as f:
        f.write(b" and edited")
    assert version.read_bytes() == b"kept"


def test_trash_can_removes_versions_older_than_its_days_and_empty_folders(dataset):
    store = VersionStore(dataset, VersionPolicy(VersionKind.TRASHCAN, days=30))
    for name, age in (("trip/old.jpg", 31 * DAY), ("trip/new.jpg", 29 * DAY), ("gone/x", 40 * DAY)):
        write(dataset / name, b"x")
        store.keep(name, now=T0 - age)
    assert store.clean(now=T0) == 2
    assert [v.relative for v in store.list()] == ["trip/new.jpg"]
    assert not (dataset / VERSIONS_DIR / "gone").exists()
    assert store.clean(now=T0) == 0


def test_staggered_keeps_one_version_per_step_and_none_past_the_maximum_age(dataset):
    store = VersionStore(dataset, VersionPolicy(VersionKind.STAGGERED, days=60))
    ages = [10, 20, 40,  # first hour: one per 30 s
            2 * 3600, 2 * 3600 + 600, 5 * 3600,  # first day: one per hour
            3 * DAY, 3 * DAY + 3600, 10 * DAY,  # first 30 days: one per day
            40 * DAY, 42 * DAY, 50 * DAY,  # then one per week
            61 * DAY]  # past the maximum age
    write(dataset / "log.txt", b"l")
    for age in ages:
        store.keep("log.txt", now=T0 - age)
    removed = store.clean(now=T0)
    left = sorted(T0 - v.kept_at for v in store.list("log.txt"))
    # From the oldest on, a version stays when it is a step newer than the last one that stayed.
    assert left == [10, 40, 2 * 3600 + 600, 5 * 3600, 3 * DAY + 3600, 10 * DAY, 42 * DAY, 50 * DAY]
    assert removed == len(ages) - len(left)


def test_policies_have_default_days_and_refuse_nonsense():
    assert VersionPolicy().kind is VersionKind.TRASHCAN and VersionPolicy().max_age == 30 * DAY
    assert VersionPolicy("staggered").max_age == 365 * DAY
    assert VersionPolicy("trashcan", days=2).max_age == 2 * DAY
    with pytest.raises(ValueError):
        VersionPolicy("trashcan", days=0)
    with pytest.raises(ValueError):
        VersionPolicy("sometimes")


@pytest.mark.parametrize("hostile", ["/etc/passwd", "../outside.txt", "trip/../../outside.txt",
                                     "", "trip//a", "./a", f"{VERSIONS_DIR}/trip/a~x.jpg"])
def test_hostile_relative_paths_are_refused(dataset, hostile):
    store = VersionStore(dataset)
    for call in (lambda: store.keep(hostile, now=T0), lambda: store.restore(hostile),
                 lambda: store.list(hostile)):
        with pytest.raises(UnsafePath):
            call()


def test_nothing_is_kept_or_restored_through_a_symlink_out_of_the_dataset(dataset, tmp_path):
    outside = tmp_path / "outside"
    write(outside / "secret.txt", b"not yours")
    (dataset / "link").symlink_to(outside)
    store = VersionStore(dataset)
    with pytest.raises(UnsafePath):
        store.keep("link/secret.txt", now=T0)
    with pytest.raises(UnsafePath):
        store.restore("link/secret.txt")
    assert (outside / "secret.txt").read_bytes() == b"not yours"


def test_a_version_folder_that_is_a_symlink_is_not_written_through(dataset, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (dataset / VERSIONS_DIR).symlink_to(elsewhere)
    write(dataset / "f.txt", b"f")
    store = VersionStore(dataset)
    with pytest.raises(UnsafePath):
        store.keep("f.txt", now=T0)
    assert list(elsewhere.iterdir()) == [] and store.list() == []


def test_one_store_checks_each_folder_once_for_many_files_kept_in_it(dataset, monkeypatch):
    for i in range(3):
        write(dataset / "trip" / f"{i}.jpg", b"p")
    store = VersionStore(dataset)
    checked = []
    real_lstat = os.lstat
    monkeypatch.setattr(os, "lstat", lambda path, *a, **kw: checked.append(str(path)) or real_lstat(path, *a, **kw))
    for i in range(3):
        store.keep(f"trip/{i}.jpg", now=T0)
    folders = [p for p in checked if not p.endswith(".jpg")]
    assert sorted(folders) == sorted({str(dataset / "trip"), str(dataset / VERSIONS_DIR),
                                      str(dataset / VERSIONS_DIR / "trip")})


def test_a_version_folder_removed_by_cleaning_is_made_again_by_the_same_store(dataset):
    write(dataset / "trip" / "a.jpg", b"old")
    store = VersionStore(dataset, VersionPolicy(VersionKind.TRASHCAN, days=1), clock=lambda: T0)
    store.keep("trip/a.jpg", now=T0 - 2 * DAY)
    assert store.clean(now=T0) == 1
    assert not (dataset / VERSIONS_DIR / "trip").exists()
    kept = store.keep("trip/a.jpg", now=T0)
    assert kept is not None and kept.read_bytes() == b"old"
