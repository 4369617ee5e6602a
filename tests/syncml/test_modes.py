"""Each sync mode and conflict policy on small hand-written cases, with the exact resulting stores."""

import pytest

from protocols.syncml import ConflictPolicy, Resolution, SessionState, Side, SyncCallee, SyncCaller, SyncMode
from tests.syncml.harness import Clock, card, names, sync
from tests.syncml.memory_store import MemoryStore


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def a(clock):
    return MemoryStore(clock=clock)


@pytest.fixture
def b(clock):
    return MemoryStore(clock=clock)


@pytest.fixture
def synced(a, b):
    """A and B after a first sync, both holding Ann, Bob and Cy."""
    for name in ("Ann", "Bob", "Cy"):
        a.add(card(name, uid=name.lower()))
    outcome = sync(a, b)
    assert outcome.wire.completed and outcome.caller.mode is SyncMode.SLOW
    return a, b


def test_a_first_sync_is_a_slow_sync_that_merges_both_stores(a, b):
    a.add(card("Ann", uid="ann"))
    b.add(card("Bob", uid="bob"))
    outcome = sync(a, b)
    assert outcome.wire.completed and outcome.callee.mode is SyncMode.SLOW
    assert names(a) == names(b) == {"ann": "Ann", "bob": "Bob"}


def test_a_two_way_sync_carries_adds_edits_and_deletes_both_ways(synced):
    a, b = synced
    a.add(card("Dee", uid="dee"))
    a.replace("ann", card("Annie", uid="ann"))
    b.delete("bob")
    b.add(card("Eve", uid="eve"))
    outcome = sync(a, b)
    assert outcome.caller.mode is SyncMode.TWO_WAY and outcome.wire.completed
    expected = {"ann": "Annie", "cy": "Cy", "dee": "Dee", "eve": "Eve"}
    assert names(a) == names(b) == expected
    assert outcome.callee.report.items_applied == 2 and outcome.caller.report.items_applied == 2


def test_a_two_way_sync_with_nothing_changed_moves_no_item(synced):
    a, b = synced
    outcome = sync(a, b)
    assert outcome.caller.report.items_sent == outcome.callee.report.items_sent == 0
    assert outcome.wire.messages == 6


def test_the_same_change_made_on_both_sides_is_not_a_conflict(synced):
    a, b = synced
    a.replace("ann", card("Annie", uid="ann"))
    b.replace("ann", card("Annie", uid="ann"))
    a.delete("bob")
    b.delete("bob")
    outcome = sync(a, b)
    assert outcome.callee.report.conflicts == ()
    assert names(a) == names(b) == {"ann": "Annie", "cy": "Cy"}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (ConflictPolicy.NEWEST_WINS, {"ann": "Ann by B"}),  # B edited last
        (ConflictPolicy.SOURCE_WINS, {"ann": "Ann by A"}),
        (ConflictPolicy.TARGET_WINS, {"ann": "Ann by B"}),
    ],
)
def test_an_edit_on_both_sides_is_resolved_by_the_policy(synced, policy, expected):
    a, b = synced
    a.replace("ann", card("Ann by A", uid="ann"))
    b.replace("ann", card("Ann by B", uid="ann"))
    outcome = sync(a, b, policy=policy)
    (conflict,) = outcome.callee.report.conflicts
    assert conflict.item_id == "ann" and conflict.policy is policy
    assert names(a) == names(b) == {**expected, "bob": "Bob", "cy": "Cy"}
    assert [entry.conflict for entry in b.conflicts()] == [conflict]


def test_newest_wins_takes_the_callers_edit_when_it_is_the_later_one(synced):
    a, b = synced
    b.replace("ann", card("Ann by B", uid="ann"))
    a.replace("ann", card("Ann by A", uid="ann"))
    outcome = sync(a, b)
    assert outcome.callee.report.conflicts[0].winner is Side.CALLER
    assert names(a)["ann"] == names(b)["ann"] == "Ann by A"


def test_keep_both_keeps_the_losing_edit_as_a_new_item_on_both_sides(synced):
    a, b = synced
    a.replace("ann", card("Ann by A", uid="ann"))
    b.replace("ann", card("Ann by B", uid="ann"))
    outcome = sync(a, b, policy=ConflictPolicy.KEEP_BOTH)
    (conflict,) = outcome.callee.report.conflicts
    assert conflict.resolution is Resolution.CALLEE_WINS and conflict.copy_id
    expected = {"ann": "Ann by B", conflict.copy_id: "Ann by A", "bob": "Bob", "cy": "Cy"}
    assert names(a) == names(b) == expected


def test_keep_both_prefers_an_edit_to_a_delete(synced):
    a, b = synced
    b.replace("bob", card("Robert", uid="bob"))
    a.delete("bob")  # later, so newest-wins would delete
    outcome = sync(a, b, policy=ConflictPolicy.KEEP_BOTH)
    assert outcome.callee.report.conflicts[0].copy_id is None
    assert names(a) == names(b) == {"ann": "Ann", "bob": "Robert", "cy": "Cy"}


def test_newest_wins_lets_a_later_delete_win_over_an_edit(synced):
    a, b = synced
    b.replace("bob", card("Robert", uid="bob"))
    a.delete("bob")
    sync(a, b)
    assert names(a) == names(b) == {"ann": "Ann", "cy": "Cy"}


def test_a_slow_sync_compares_everything_and_resolves_differences_by_the_policy(synced):
    a, b = synced
    a.replace("ann", card("Ann by A", uid="ann"))
    b.replace("cy", card("Cy by B", uid="cy"))
    b.add(card("Eve", uid="eve"))
    outcome = sync(a, b, SyncMode.SLOW)
    assert outcome.callee.mode is SyncMode.SLOW
    assert names(a) == names(b) == {"ann": "Ann by A", "bob": "Bob", "cy": "Cy by B", "eve": "Eve"}
    # without anchors every difference counts as changed on both sides
    assert {c.item_id for c in outcome.callee.report.conflicts} == {"ann", "cy"}


def test_a_slow_sync_sends_hashes_then_only_the_items_that_differ(synced):
    a, b = synced
    for number in range(200):
        a.add(card(f"Person {number}", uid=f"p{number}"))
    sync(a, b)
    a.replace("ann", card("Annie", uid="ann"))
    outcome = sync(a, b, SyncMode.SLOW)
    assert outcome.caller.report.items_sent == 1 and outcome.callee.report.items_sent == 0
    assert outcome.wire.bytes < 203 * 150


def test_when_the_callee_lost_its_anchors_the_sync_falls_back_to_slow(synced, clock):
    a, b = synced
    a.replace("ann", card("Annie", uid="ann"))
    fresh = MemoryStore(clock=clock)
    fresh.add(card("Zed", uid="zed"))
    outcome = sync(a, fresh)
    assert outcome.callee.mode is SyncMode.SLOW and outcome.wire.completed
    assert names(a) == names(fresh) == {"ann": "Annie", "bob": "Bob", "cy": "Cy", "zed": "Zed"}


def test_a_slow_sync_maps_the_same_card_stored_under_two_ids_instead_of_copying_it(a, b):
    a.add(card("No Uid"))  # imported on both devices: two generated ids
    b.add(card("No Uid"))
    outcome = sync(a, b)
    assert len(names(a)) == len(names(b)) == 1
    (a_id,), (b_id,) = names(a), names(b)
    assert a.id_map("B") == {a_id: b_id} and b.id_map("A") == {b_id: a_id}
    a.replace(a_id, card("Edited on A"))
    sync(a, b)
    assert names(b) == {b_id: "Edited on A"}
    b.delete(b_id)
    sync(a, b)
    assert names(a) == {} and outcome.wire.completed


def test_one_way_from_caller_sends_only_the_callers_changes(synced):
    a, b = synced
    a.replace("ann", card("Annie", uid="ann"))
    b.replace("bob", card("Robert", uid="bob"))
    outcome = sync(a, b, SyncMode.ONE_WAY_FROM_CALLER)
    assert outcome.callee.mode is SyncMode.ONE_WAY_FROM_CALLER
    assert names(a) == {"ann": "Annie", "bob": "Bob", "cy": "Cy"}
    assert names(b) == {"ann": "Annie", "bob": "Robert", "cy": "Cy"}
    sync(a, b)  # the callee's change waited for a two-way sync
    assert names(a) == names(b) == {"ann": "Annie", "bob": "Robert", "cy": "Cy"}


def test_one_way_from_callee_sends_only_the_callees_changes(synced):
    a, b = synced
    a.replace("ann", card("Annie", uid="ann"))
    b.replace("bob", card("Robert", uid="bob"))
    sync(a, b, SyncMode.ONE_WAY_FROM_CALLEE)
    assert names(a) == {"ann": "Annie", "bob": "Robert", "cy": "Cy"}
    assert names(b) == {"ann": "Ann", "bob": "Robert", "cy": "Cy"}
    sync(a, b)
    assert names(a) == names(b) == {"ann": "Annie", "bob": "Robert", "cy": "Cy"}


@pytest.mark.parametrize("mode", [SyncMode.ONE_WAY_FROM_CALLER, SyncMode.ONE_WAY_FROM_CALLEE])
def test_a_conflict_in_a_one_way_sync_waits_for_a_two_way_sync(synced, mode):
    a, b = synced
    a.replace("ann", card("Ann by A", uid="ann"))
    b.replace("ann", card("Ann by B", uid="ann"))
    outcome = sync(a, b, mode, ConflictPolicy.SOURCE_WINS)
    assert outcome.callee.report.conflicts[0].resolution is Resolution.DEFERRED
    assert (names(a)["ann"], names(b)["ann"]) == ("Ann by A", "Ann by B")
    outcome = sync(a, b, policy=ConflictPolicy.SOURCE_WINS)
    assert outcome.callee.report.conflicts[0].resolution is Resolution.CALLER_WINS
    assert names(a)["ann"] == names(b)["ann"] == "Ann by A"


def test_refresh_from_caller_makes_the_callee_a_copy_of_the_caller(synced):
    a, b = synced
    a.replace("ann", card("Annie", uid="ann"))
    a.delete("cy")
    b.replace("bob", card("Robert", uid="bob"))
    b.add(card("Eve", uid="eve"))
    outcome = sync(a, b, SyncMode.REFRESH_FROM_CALLER)
    assert outcome.callee.report.conflicts == ()
    assert names(a) == names(b) == {"ann": "Annie", "bob": "Bob"}


def test_refresh_from_callee_makes_the_caller_a_copy_of_the_callee(synced):
    a, b = synced
    a.replace("ann", card("Annie", uid="ann"))
    a.add(card("Dee", uid="dee"))
    b.delete("cy")
    b.add(card("Eve", uid="eve"))
    sync(a, b, SyncMode.REFRESH_FROM_CALLEE)
    assert names(a) == names(b) == {"ann": "Ann", "bob": "Bob", "eve": "Eve"}
    outcome = sync(a, b)
    assert outcome.caller.report.items_sent == 0


def test_refresh_into_an_empty_store_fills_it(a, b):
    for name in ("Ann", "Bob"):
        b.add(card(name, uid=name.lower()))
    sync(a, b, SyncMode.REFRESH_FROM_CALLEE)
    assert names(a) == {"ann": "Ann", "bob": "Bob"}


def test_a_large_sync_is_split_across_several_messages(synced):
    a, b = synced
    for number in range(50):
        a.add(card(f"Person {number}", uid=f"p{number}"))
    outcome = sync(a, b, max_items_per_message=8)
    assert outcome.wire.completed and outcome.caller.report.messages_sent >= 7
    assert names(a) == names(b)


def test_a_local_edit_made_during_the_sync_is_kept_and_sent_by_the_next_sync(synced):
    a, b = synced
    b.replace("ann", card("Ann by B", uid="ann"))
    caller, callee, wire = _start(a, b)
    # A's person edits Ann while B's answer is on its way
    a.replace("ann", card("Ann edited during sync", uid="ann"))
    _finish(caller, callee)
    assert caller.state is SessionState.DONE and callee.state is SessionState.DONE
    assert names(a)["ann"] == "Ann edited during sync" and names(b)["ann"] == "Ann by B"
    outcome = sync(a, b, policy=ConflictPolicy.KEEP_BOTH)
    copy_id = outcome.callee.report.conflicts[0].copy_id
    assert names(a) == names(b) == {"ann": "Ann edited during sync", copy_id: "Ann by B", "bob": "Bob", "cy": "Cy"}


def test_a_callee_edit_made_during_the_sync_is_not_overwritten(synced):
    a, b = synced
    a.replace("ann", card("Ann by A", uid="ann"))
    a.add(card("Dee", uid="dee"))
    caller = _caller(a, SyncMode.SLOW)
    callee = _callee(b)
    _deliver(caller, callee)  # Alert
    _deliver(callee, caller)  # Alert answer
    _deliver(caller, callee)  # inventory: the callee asks for Ann and Dee
    b.replace("ann", card("Ann edited on B during sync", uid="ann"))
    _finish(caller, callee)
    assert callee.state is SessionState.DONE
    assert names(b) == {"ann": "Ann edited on B during sync", "bob": "Bob", "cy": "Cy", "dee": "Dee"}
    outcome = sync(a, b, policy=ConflictPolicy.KEEP_BOTH)
    copy_id = outcome.callee.report.conflicts[0].copy_id
    assert names(a) == names(b) == {
        "ann": "Ann edited on B during sync", copy_id: "Ann by A", "bob": "Bob", "cy": "Cy", "dee": "Dee",
    }


def test_a_sync_broken_at_any_message_is_repeated_without_duplicates_or_losses(clock):
    for cut in range(12):
        a, b = MemoryStore(clock=clock), MemoryStore(clock=clock)
        a.add(card("Ann", uid="ann"))
        a.add(card("Bob", uid="bob"))
        sync(a, b)
        a.replace("ann", card("Ann by A", uid="ann"))
        b.replace("ann", card("Ann by B", uid="ann"))
        a.add(card("Dee"))
        b.delete("bob")
        broken = sync(a, b, policy=ConflictPolicy.KEEP_BOTH, cut_after=cut)
        again = sync(a, b, policy=ConflictPolicy.KEEP_BOTH)
        assert again.wire.completed, cut
        final = sorted(names(a).values())
        assert final == ["Ann by A", "Ann by B", "Dee"], (cut, broken.wire)
        assert names(a) == names(b)
        assert sync(a, b).callee.report.items_applied == 0


def test_a_lost_final_acknowledgement_repeats_the_sync_from_the_anchor_before(synced):
    a, b = synced
    a.replace("ann", card("Annie", uid="ann"))
    caller, callee, _ = _start(a, b)
    _finish(caller, callee, drop_last=True)
    assert callee.state is SessionState.DONE and caller.state is SessionState.RUNNING
    b.replace("bob", card("Robert", uid="bob"))
    outcome = sync(a, b)
    assert outcome.callee.mode is SyncMode.TWO_WAY  # not a slow sync
    assert names(a) == names(b) == {"ann": "Annie", "bob": "Robert", "cy": "Cy"}


def test_bytes_of_an_incremental_sync_follow_the_changes_not_the_store(a, b):
    for number in range(300):
        a.add(card(f"Person {number}", uid=f"p{number}"))
    sync(a, b)
    a.replace("p1", card("Changed", uid="p1"))
    small = sync(a, b).wire.bytes
    for number in range(10):
        a.replace(f"p{number}", card(f"Changed again {number}", uid=f"p{number}"))
    ten = sync(a, b).wire.bytes
    assert small < 5000 and ten - small < 10 * 600


# --- stepping a sync by hand -------------------------------------------------------------------

def _caller(store, mode=SyncMode.TWO_WAY):
    return SyncCaller(store, device="A", peer="B", dataset="contacts", mode=mode)


def _callee(store, policy=ConflictPolicy.NEWEST_WINS):
    return SyncCallee(store, device="B", dataset="contacts", policy=policy)


def _deliver(sender, receiver):
    for data in sender.data_to_send():
        receiver.receive(data)


def _start(a, b):
    """Run a two-way sync up to the callee's changes being on the wire to the caller."""
    caller, callee = _caller(a), _callee(b)
    _deliver(caller, callee)
    _deliver(callee, caller)
    _deliver(caller, callee)
    return caller, callee, None


def _finish(caller, callee, drop_last=False):
    while True:
        moved = False
        for sender, receiver in ((callee, caller), (caller, callee)):
            messages = sender.data_to_send()
            if drop_last and sender is callee and callee.state is SessionState.DONE:
                return
            for data in messages:
                receiver.receive(data)
                moved = True
        if not moved:
            return


@pytest.mark.parametrize("mode", [SyncMode.TWO_WAY, SyncMode.SLOW])
@pytest.mark.parametrize("later", ["caller", "callee"])
def test_the_sync_after_a_keep_both_conflict_sends_nothing_either_way(synced, mode, later):
    a, b = synced
    edits = [(a, "Ann by A"), (b, "Ann by B")]
    for store, name in edits if later == "callee" else reversed(edits):
        store.replace("ann", card(name, uid="ann"))
    outcome = sync(a, b, mode, ConflictPolicy.KEEP_BOTH)
    assert outcome.wire.completed and outcome.callee.report.conflicts[0].copy_id
    assert names(a) == names(b) and len(names(a)) == 4
    for follow_up in (SyncMode.TWO_WAY, SyncMode.TWO_WAY):
        again = sync(a, b, follow_up, ConflictPolicy.KEEP_BOTH)
        assert again.wire.completed
        assert again.caller.report.items_sent == again.callee.report.items_sent == 0


def test_a_keep_both_copy_edited_later_is_offered_again(synced):
    a, b = synced
    a.replace("ann", card("Ann by A", uid="ann"))
    b.replace("ann", card("Ann by B", uid="ann"))
    copy_id = sync(a, b, policy=ConflictPolicy.KEEP_BOTH).callee.report.conflicts[0].copy_id
    b.replace(copy_id, card("Ann by A, renamed on B"))
    outcome = sync(a, b)
    assert outcome.callee.report.items_sent == 1
    assert names(a)[copy_id] == "Ann by A, renamed on B"


@pytest.mark.parametrize("cut", [3, 4, 5])  # before the copy reaches A, before or after A's Status
def test_a_keep_both_copy_the_caller_never_acknowledged_is_sent_again(synced, cut):
    a, b = synced
    a.replace("ann", card("Ann by A", uid="ann"))
    b.replace("ann", card("Ann by B", uid="ann"))
    assert not sync(a, b, policy=ConflictPolicy.KEEP_BOTH, cut_after=cut).wire.completed
    again = sync(a, b, policy=ConflictPolicy.KEEP_BOTH)
    assert again.wire.completed and names(a) == names(b) and len(names(a)) == 4
    quiet = sync(a, b, policy=ConflictPolicy.KEEP_BOTH)
    assert quiet.caller.report.items_sent == quiet.callee.report.items_sent == 0
