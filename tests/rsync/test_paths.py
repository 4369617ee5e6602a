"""Paths from a peer are checked on the receiving side before anything is written."""

import os

import pytest

from protocols.rsync import UnrepresentableName, UnsafePath
from protocols.rsync.paths import check_relative, resolve_inside


@pytest.mark.parametrize("bad", ["/etc/passwd", "../up", "a/../../b", "a//b", "./a", "", "a/\0b", "a/"])
def test_absolute_climbing_or_empty_paths_are_refused(bad):
    with pytest.raises(UnsafePath):
        check_relative(bad)


def test_a_plain_nested_path_resolves_under_the_root(tmp_path):
    assert resolve_inside(tmp_path, "docs/notes/a.txt") == tmp_path / "docs" / "notes" / "a.txt"


def test_a_symlinked_folder_cannot_lead_outside_the_root(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(UnsafePath):
        resolve_inside(root, "link/evil.txt")


def test_a_symlink_as_the_target_file_is_refused(tmp_path):
    (tmp_path / "f").symlink_to("/etc/hostname")
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, "f")


def test_a_fifo_as_the_target_is_refused(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(UnsafePath):
        resolve_inside(tmp_path, "pipe")


def test_a_name_longer_than_the_file_system_allows_is_reported_not_shortened(tmp_path):
    with pytest.raises(UnrepresentableName):
        resolve_inside(tmp_path, "x" * 300 + ".txt")
