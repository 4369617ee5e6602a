"""The plan between two folders follows the direction and never loses a file."""

from protocols.rsync.manifest import FileEntry, Manifest
from protocols.rsync.plan import Action, Direction, Side, make_plan


def entry(path, content, mtime=1):
    return FileEntry(path, len(content), mtime * 10**9, 0o644, content.ljust(16, b".")[:16])


def manifest(*entries):
    return Manifest({e.path: e for e in entries})


def actions(plan):
    return {item.path: item.action for item in plan.items}


def test_push_sends_new_and_changed_files_as_delta_when_the_remote_has_a_basis():
    local = manifest(entry("new", b"n"), entry("changed", b"v2"), entry("same", b"s"))
    remote = manifest(entry("changed", b"v1"), entry("same", b"s"))
    plan = make_plan(local, remote, Direction.PUSH)
    assert actions(plan) == {"new": Action.SEND, "changed": Action.SEND}
    assert {i.path: i.has_basis for i in plan.items} == {"new": False, "changed": True}
    assert plan.unchanged == ("same",)


def test_push_deletes_only_what_was_deleted_locally_since_the_last_sync():
    base = manifest(entry("gone", b"g"), entry("edited-there", b"e1"))
    local = manifest()
    remote = manifest(entry("gone", b"g"), entry("edited-there", b"e2"), entry("theirs", b"t"))
    assert actions(make_plan(local, remote, Direction.PUSH, base)) == {"gone": Action.DELETE_REMOTE}


def test_pull_mirrors_push():
    local = manifest(entry("old", b"o"))
    remote = manifest(entry("fresh", b"f"))
    plan = make_plan(local, remote, Direction.PULL, manifest(entry("old", b"o")))
    assert actions(plan) == {"fresh": Action.RECEIVE, "old": Action.DELETE_LOCAL}


def test_two_way_tells_deleted_here_from_new_there_by_the_last_synced_manifest():
    base = manifest(entry("deleted-here", b"d"), entry("deleted-there", b"x"))
    local = manifest(entry("deleted-there", b"x"), entry("new-here", b"h"))
    remote = manifest(entry("deleted-here", b"d"), entry("new-there", b"t"))
    assert actions(make_plan(local, remote, Direction.TWO_WAY, base)) == {
        "deleted-here": Action.DELETE_REMOTE, "deleted-there": Action.DELETE_LOCAL,
        "new-here": Action.SEND, "new-there": Action.RECEIVE}


def test_two_way_edit_on_both_sides_is_a_conflict_won_by_the_newer_with_a_copy_of_the_other():
    base = manifest(entry("doc.txt", b"v0"))
    local = manifest(entry("doc.txt", b"mine", mtime=1_700_000_000))
    remote = manifest(entry("doc.txt", b"theirs", mtime=1_700_000_500))
    (item,) = make_plan(local, remote, Direction.TWO_WAY, base, local_name="laptop").items
    assert item.action is Action.CONFLICT and item.winner is Side.REMOTE
    assert item.conflict_copy == "doc.sync-conflict-20231114-221320-laptop.txt"


def test_two_way_edit_beats_a_delete_on_the_other_side():
    base = manifest(entry("f", b"v0"))
    plan = make_plan(manifest(), manifest(entry("f", b"v1")), Direction.TWO_WAY, base)
    assert actions(plan) == {"f": Action.RECEIVE}


def test_two_way_without_history_treats_differing_files_as_conflicts_not_overwrites():
    plan = make_plan(manifest(entry("f", b"a", 5)), manifest(entry("f", b"b", 3)), Direction.TWO_WAY)
    (item,) = plan.items
    assert item.action is Action.CONFLICT and item.winner is Side.LOCAL
