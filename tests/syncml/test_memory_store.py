"""The in-memory store the engine's tests use answers every call the engine makes as the peer's
SQLite store does: the same operations on both give the same results, errors and state."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peer.record_store import RecordStore
from protocols.syncml import Anchor, Change, Conflict, ConflictPolicy, Resolution, StaleVersion
from protocols.syncml.conflicts import Version
from tests.syncml.harness import Clock, card
from tests.syncml.memory_store import MemoryStore

IDS = ["a", "b", "c"]
PEERS = ["P", "Q"]

ids = st.sampled_from(IDS)
peers = st.sampled_from(PEERS)
operations = st.one_of(
    st.tuples(st.just("add"), ids, st.integers(0, 3)),
    st.tuples(st.just("replace"), ids, st.integers(0, 3)),
    st.tuples(st.just("delete"), ids),
    # mostly a write expecting the version the item is at, sometimes a stale one
    st.tuples(st.just("apply"), ids, st.one_of(st.none(), st.integers(0, 3)),
              st.one_of(st.just("current"), st.just("current"), st.integers(0, 3)),
              st.one_of(st.none(), peers), st.booleans()),
    st.tuples(st.just("touch"), ids),
    st.tuples(st.just("map_id"), peers, ids, st.sampled_from(["r1", "r2"])),
    st.tuples(st.just("save_anchor"), peers, st.integers(0, 9)),
    st.tuples(st.just("record_conflict"), peers, ids),
)


def run(store, operation):
    """One operation; its result, or the kind of error it raised."""
    name, *args = operation
    try:
        if name in ("add", "replace", "delete"):
            # Local edits the stores refuse in different words; the engine never makes them.
            item_id = args[0]
            live = store.meta(item_id) is not None and store.meta(item_id).live
            if live == (name == "add"):
                return "refused"
            if name == "add":
                return store.add(card(f"{item_id} {args[1]}", uid=item_id))
            if name == "replace":
                return store.replace(item_id, card(f"{item_id} {args[1]}", uid=item_id))
            return store.delete(item_id)
        if name == "apply":
            item_id, n, expected, origin, empty_type = args
            if expected == "current":
                current = store.meta(item_id)
                expected = current.version if current else 0
            content = None if n is None else card(f"{item_id} synced {n}", uid=item_id)
            change = Change(item_id, content, "" if empty_type else "text/vcard", 5.0 + expected)
            return store.apply(change, expected_version=expected, origin=origin)
        if name == "touch":
            return store.touch(*args)
        if name == "map_id":
            return store.map_id(*args)
        if name == "save_anchor":
            peer, n = args
            return store.save_anchor(peer, Anchor(last=f"t{n}", last_seq=n, prev=f"t{n - 1}", prev_seq=n - 1))
        peer, item_id = args
        version = Version("h", 1.0, False)
        return store.record_conflict(peer, Conflict(item_id, ConflictPolicy.KEEP_BOTH, Resolution.CALLEE_WINS,
                                                    version, version, "copy"))
    except StaleVersion as error:
        return ("stale", error.item_id, error.expected, error.actual)


def state(store):
    return (
        store.current_seq(),
        list(store.scan()),
        [list(store.scan(after_seq=2, not_from=peer)) for peer in PEERS],
        store.get_many(IDS),
        [store.get(item_id) for item_id in IDS],
        store.items(include_deleted=True),
        [(store.anchor(peer), store.id_map(peer)) for peer in PEERS],
        [(entry.at, entry.peer, entry.conflict) for entry in store.conflicts()],
    )


@pytest.fixture
def stores():
    with RecordStore(":memory:", clock=Clock()) as sqlite:
        yield sqlite, MemoryStore(clock=Clock())


@settings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(operations, st.sampled_from(["alone", "batch", "failed batch"])), max_size=25))
def test_the_same_operations_give_the_same_results_and_state_in_both_stores(steps):
    with RecordStore(":memory:", clock=Clock()) as sqlite:
        memory = MemoryStore(clock=Clock())
        for operation, how in steps:
            results = []
            for store in (sqlite, memory):
                if how == "alone":
                    results.append(run(store, operation))
                    continue
                try:
                    with store.batch(), store.batch():  # nested batches join the outer one
                        results.append(run(store, operation))
                        if how == "failed batch":
                            raise RuntimeError("the sync failed")
                except RuntimeError:
                    pass
            assert results[0] == results[1], operation
            assert state(sqlite) == state(memory), (operation, how)


def test_a_failed_batch_leaves_nothing_behind_in_either_store(stores):
    for store in stores:
        store.add(card("Ann", uid="ann"))
        before = state(store)
        with pytest.raises(RuntimeError), store.batch():
            store.apply(Change("bob", card("Bob", uid="bob"), "text/vcard", 1.0), expected_version=0, origin="P")
            store.touch("ann")
            store.map_id("P", "bob", "their-bob")
            store.save_anchor("P", Anchor(last="t1"))
            raise RuntimeError("the sync failed")
        assert state(store) == before
