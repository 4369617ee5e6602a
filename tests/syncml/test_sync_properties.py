"""Property: whatever edits and syncs come first (either side calling, cut at any message, with edits
made mid-sync), a final complete two-way sync leaves both stores equal; keep-both loses no edit, and
under the other policies the only edits gone are conflict losers the policy chose."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.syncml import ConflictPolicy, Resolution, SyncCallee, SyncCaller, SyncMode
from protocols.syncml.records import content_hash
from tests.syncml.harness import Clock, card, contents, sync
from tests.syncml.memory_store import MemoryStore

UIDS = ["u0", "u1", "u2", "u3"]
MODES = [SyncMode.TWO_WAY, SyncMode.SLOW, SyncMode.ONE_WAY_FROM_CALLER, SyncMode.ONE_WAY_FROM_CALLEE]

edits = st.tuples(st.just("edit"), st.sampled_from("AB"), st.sampled_from(UIDS), st.booleans())
syncs = st.tuples(
    st.just("sync"),
    st.sampled_from(MODES),
    st.one_of(st.none(), st.integers(0, 12)),  # cut the connection after this many messages
    st.one_of(st.none(), st.tuples(st.integers(0, 10), st.sampled_from("AB"), st.sampled_from(UIDS), st.booleans())),
    st.sampled_from([2, 1000]),  # items per message
    st.sampled_from(["AB", "BA"]),  # who calls whom
)


class World:
    """Two stores and what their users wrote; `superseded` holds versions a user replaced or deleted
    while looking at them, which no sync owes anyone."""

    def __init__(self) -> None:
        self.clock = Clock()
        self.stores = {"A": MemoryStore(clock=self.clock), "B": MemoryStore(clock=self.clock)}
        self.counter = itertools.count()
        self.written: set[bytes] = set()
        self.superseded: set[bytes] = set()

    def edit(self, side: str, uid: str, delete: bool) -> None:
        store = self.stores[side]
        current = store.get(uid)
        if current is not None and current.content is not None:
            self.superseded.add(current.content)
            if delete:
                store.delete(uid)
                return
            content = card(f"{uid} v{next(self.counter)} on {side}", uid=uid)
            store.replace(uid, content)
        else:
            content = card(f"{uid} v{next(self.counter)} on {side}", uid=uid)
            store.add(content)
        self.written.add(content)

    def sync(self, mode, cut_after, edit_during, max_items, roles, policy) -> None:
        first, second = roles
        caller = SyncCaller(self.stores[first], device=first, peer=second, dataset="d", mode=mode,
                            max_items_per_message=max_items)
        callee = SyncCallee(self.stores[second], device=second, dataset="d", policy=policy,
                            max_items_per_message=max_items)
        delivered = 0
        moved = True
        while moved:
            moved = False
            for sender, receiver in ((caller, callee), (callee, caller)):
                for data in sender.data_to_send():
                    if cut_after is not None and delivered >= cut_after:
                        return
                    receiver.receive(data)
                    delivered += 1
                    moved = True
                    if edit_during is not None and edit_during[0] == delivered:
                        self.edit(*edit_during[1:])


@pytest.mark.parametrize("policy", list(ConflictPolicy))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=st.lists(st.one_of(edits, syncs), max_size=18))
def test_a_final_two_way_sync_converges_and_keeps_what_the_policy_says(policy, steps):
    world = World()
    for step in steps:
        if step[0] == "edit":
            world.edit(step[1], step[2], step[3])
        else:
            world.sync(*step[1:], policy)
    a, b = world.stores["A"], world.stores["B"]

    final = sync(a, b, policy=policy)
    assert final.wire.completed, (final.caller.error, final.callee.error)
    assert contents(a) == contents(b)
    assert sync(a, b, policy=policy).callee.report.items_applied == 0  # and it stays so

    survivors = set(contents(a).values())
    assert survivors <= world.written  # nothing invented
    owed = world.written - world.superseded
    conflicts = [entry.conflict for store in (a, b) for entry in store.conflicts()]
    if policy is ConflictPolicy.KEEP_BOTH:
        assert owed <= survivors
        return
    assert set(contents(a)) <= set(UIDS)  # no copies
    losers = set()
    for conflict in conflicts:
        if conflict.resolution is Resolution.DEFERRED:
            continue
        if policy is ConflictPolicy.SOURCE_WINS:
            assert conflict.resolution is Resolution.CALLER_WINS
        elif policy is ConflictPolicy.TARGET_WINS:
            assert conflict.resolution is Resolution.CALLEE_WINS
        else:
            winner, loser = conflict.caller, conflict.callee
            if conflict.resolution is Resolution.CALLEE_WINS:
                winner, loser = loser, winner
            assert winner.modified >= loser.modified
        losers.add(conflict.callee.hash if conflict.resolution is Resolution.CALLER_WINS else conflict.caller.hash)
    lost = {content for content in owed - survivors if content_hash(content) not in losers}
    assert not lost


def test_the_world_records_a_broken_sync_as_not_done():
    world = World()
    world.edit("A", "u0", False)
    world.sync(SyncMode.TWO_WAY, 3, None, 1000, "AB", ConflictPolicy.NEWEST_WINS)
    assert world.stores["A"].anchor("B").last == ""  # anchors did not move
