"""The callee's per-item decisions as a table: every offer against every local state in every sync
mode, then the conflict policies, then the items only the callee has, then a whole plan."""

import itertools

import pytest

from protocols.syncml import ConflictPolicy, SyncMode
from protocols.syncml.decisions import Decision, decide, decide_unoffered, plan
from protocols.syncml.messages import MapItem
from protocols.syncml.offers import Offer
from protocols.syncml.records import ChangeKind, ItemMeta, content_hash

THEIRS, OURS = b"the caller's version", b"the callee's version"
EARLIER, LATER = 10.0, 20.0


def offer(kind, *, deleted=False, names_our_id=False, content=THEIRS, modified=LATER, source="x"):
    hash_ = "" if deleted else content_hash(content)
    ref = None if kind is None else (2, 1)
    return Offer(source, hash_, modified, deleted, "text/vcard", kind, None if deleted else content, ref, names_our_id)


def meta(*, deleted=False, content=OURS, modified=EARLIER, item_id="x"):
    hash_ = "" if deleted else content_hash(content)
    return ItemMeta(item_id, "text/vcard", 3, modified, deleted, hash_, 7, 2, None)


# What the caller offers for the item
OFFERS = {
    "new": offer(ChangeKind.ADD),  # an Add, or a Replace without our id (ids are UIDs)
    "edit": offer(ChangeKind.REPLACE, names_our_id=True),  # a Replace naming our id
    "delete": offer(ChangeKind.DELETE, deleted=True),
    "listed": offer(None),  # an inventory entry of a live item (slow, refresh, one-way from callee)
    "listed-deleted": offer(None, deleted=True),  # an inventory entry of a tombstone
}

# The callee's item, and whether the callee changed it since the anchor
LOCALS = {
    "absent": (None, False),
    "kept": (meta(), False),
    "kept-deleted": (meta(deleted=True), False),
    "edited": (meta(), True),
    "deleted": (meta(deleted=True), True),
    "same": (meta(content=THEIRS), True),  # changed here to what the caller offers
}

MODES = (SyncMode.TWO_WAY, SyncMode.SLOW, SyncMode.ONE_WAY_FROM_CALLER, SyncMode.ONE_WAY_FROM_CALLEE,
         SyncMode.REFRESH_FROM_CALLER, SyncMode.REFRESH_FROM_CALLEE)  # fmt: skip


def described(decision: Decision) -> str:
    """A decision in a few words: what is done, how a conflict went, and the Status code."""
    words = [flag.replace("_", "-") for flag in ("take", "send", "drop", "drop_remote", "touch")
             if getattr(decision, flag)]  # fmt: skip
    if decision.copy_of is not None:
        words.append(f"copy-{decision.copy_of.value}")
    if decision.conflict is not None:
        words.append(decision.conflict.resolution.value)
    return " ".join([*words, str(decision.code)])


TAKE_NEW, TAKE, NOTHING, UNKNOWN = "take 201", "take 200", "200", "404"
WON = "take caller-wins 208"  # the caller's edit is the newer
DEFER_TO_CALLER = "deferred 409"  # one-way from the caller: the caller offers it again next time
DEFER_HERE = "touch deferred 200"  # one-way from the callee: we offer ours again next time
SEND, DROP_REMOTE = "send 200", "drop-remote 200"

# (offer, local): the decision in each mode, in the order of MODES, newest-wins policy,
# the caller's version the later one.
#                              two-way    slow      one-way from  one-way from  refresh from  refresh from
#                                                   caller        callee        caller        callee
TABLE = {
    ("new", "absent"):         (TAKE_NEW, TAKE_NEW, TAKE_NEW,     NOTHING,      TAKE_NEW,     DROP_REMOTE),
    ("new", "kept"):           (TAKE,     WON,      TAKE,         NOTHING,      TAKE,         SEND),
    ("new", "kept-deleted"):   (TAKE,     WON,      TAKE,         NOTHING,      TAKE,         SEND),
    ("new", "edited"):         (WON,      WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("new", "deleted"):        (WON,      WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("new", "same"):           (NOTHING,  NOTHING,  NOTHING,      NOTHING,      NOTHING,      NOTHING),
    ("edit", "absent"):        (UNKNOWN,  TAKE_NEW, UNKNOWN,      UNKNOWN,      TAKE_NEW,     DROP_REMOTE),
    ("edit", "kept"):          (TAKE,     WON,      TAKE,         NOTHING,      TAKE,         SEND),
    ("edit", "kept-deleted"):  (TAKE,     WON,      TAKE,         NOTHING,      TAKE,         SEND),
    ("edit", "edited"):        (WON,      WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("edit", "deleted"):       (WON,      WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("edit", "same"):          (NOTHING,  NOTHING,  NOTHING,      NOTHING,      NOTHING,      NOTHING),
    ("delete", "absent"):      (UNKNOWN,  NOTHING,  UNKNOWN,      UNKNOWN,      NOTHING,      NOTHING),
    ("delete", "kept"):        (TAKE,     WON,      TAKE,         NOTHING,      TAKE,         SEND),
    ("delete", "kept-deleted"): (NOTHING, NOTHING,  NOTHING,      NOTHING,      NOTHING,      NOTHING),
    ("delete", "edited"):      (WON,      WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("delete", "deleted"):     (NOTHING,  NOTHING,  NOTHING,      NOTHING,      NOTHING,      NOTHING),
    ("delete", "same"):        (WON,      WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("listed", "absent"):      (TAKE_NEW, TAKE_NEW, TAKE_NEW,     NOTHING,      TAKE_NEW,     DROP_REMOTE),
    ("listed", "kept"):        (TAKE,     WON,      TAKE,         NOTHING,      TAKE,         SEND),
    ("listed", "kept-deleted"): (TAKE,    WON,      TAKE,         NOTHING,      TAKE,         SEND),
    ("listed", "edited"):      (WON,      WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("listed", "deleted"):     (WON,      WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("listed", "same"):        (NOTHING,  NOTHING,  NOTHING,      NOTHING,      NOTHING,      NOTHING),
    ("listed-deleted", "absent"): (NOTHING, NOTHING, NOTHING,     NOTHING,      NOTHING,      NOTHING),
    ("listed-deleted", "kept"): (TAKE,    WON,      TAKE,         NOTHING,      TAKE,         SEND),
    ("listed-deleted", "kept-deleted"): (NOTHING, NOTHING, NOTHING, NOTHING,   NOTHING,      NOTHING),
    ("listed-deleted", "edited"): (WON,   WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
    ("listed-deleted", "deleted"): (NOTHING, NOTHING, NOTHING,    NOTHING,      NOTHING,      NOTHING),
    ("listed-deleted", "same"): (WON,     WON,      DEFER_TO_CALLER, DEFER_HERE, TAKE,        SEND),
}  # fmt: skip


def test_the_table_has_one_row_for_every_offer_against_every_local_state():
    assert set(TABLE) == set(itertools.product(OFFERS, LOCALS))
    assert all(len(row) == len(MODES) for row in TABLE.values())


@pytest.mark.parametrize(
    ("offered", "local", "mode"),
    [(offered, local, mode) for offered, local in TABLE for mode in MODES],
    ids=lambda value: value.value if isinstance(value, SyncMode) else value,
)
def test_each_offer_meets_each_local_state_in_each_mode_as_the_table_says(offered, local, mode):
    ours, changed = LOCALS[local]
    decision = decide(OFFERS[offered], ours, changed, mode, ConflictPolicy.NEWEST_WINS)
    assert described(decision) == TABLE[offered, local][MODES.index(mode)]
    assert decision.expected == ours  # a write checks the state the decision rested on


# Both sides changed the item since the anchor (two-way); who wins is the policy's, and keep-both
# keeps the loser as a copy unless the loser is a delete.
#   policy, the caller's version, the callee's version (edit or delete, and when) -> decision
POLICY_TABLE = [
    (ConflictPolicy.NEWEST_WINS, ("edit", LATER), ("edit", EARLIER), "take caller-wins 208"),
    (ConflictPolicy.NEWEST_WINS, ("edit", EARLIER), ("edit", LATER), "send callee-wins 419"),
    (ConflictPolicy.NEWEST_WINS, ("edit", LATER), ("edit", LATER), "send callee-wins 419"),  # a tie: the callee
    (ConflictPolicy.NEWEST_WINS, ("delete", LATER), ("edit", EARLIER), "take caller-wins 208"),
    (ConflictPolicy.NEWEST_WINS, ("edit", EARLIER), ("delete", LATER), "send callee-wins 419"),
    (ConflictPolicy.SOURCE_WINS, ("edit", EARLIER), ("edit", LATER), "take caller-wins 208"),
    (ConflictPolicy.SOURCE_WINS, ("delete", EARLIER), ("edit", LATER), "take caller-wins 208"),
    (ConflictPolicy.TARGET_WINS, ("edit", LATER), ("edit", EARLIER), "send callee-wins 419"),
    (ConflictPolicy.TARGET_WINS, ("edit", LATER), ("delete", EARLIER), "send callee-wins 419"),
    (ConflictPolicy.KEEP_BOTH, ("edit", LATER), ("edit", EARLIER), "take copy-callee caller-wins 209"),
    (ConflictPolicy.KEEP_BOTH, ("edit", EARLIER), ("edit", LATER), "send copy-caller callee-wins 209"),
    (ConflictPolicy.KEEP_BOTH, ("delete", LATER), ("edit", EARLIER), "send callee-wins 419"),  # the edit stays
    (ConflictPolicy.KEEP_BOTH, ("edit", EARLIER), ("delete", LATER), "take caller-wins 208"),
]


@pytest.mark.parametrize(("policy", "caller", "callee", "expected"), POLICY_TABLE)
def test_a_conflict_is_settled_by_the_policy_as_the_table_says(policy, caller, callee, expected):
    (caller_does, caller_at), (callee_does, callee_at) = caller, callee
    offered = offer(ChangeKind.REPLACE, deleted=caller_does == "delete", modified=caller_at)
    ours = meta(deleted=callee_does == "delete", modified=callee_at)
    for mode in (SyncMode.TWO_WAY, SyncMode.SLOW):
        decision = decide(offered, ours, True, mode, policy)
        assert described(decision) == expected
        assert decision.conflict.policy is policy


def test_a_keep_both_decision_needs_the_callers_content_only_when_its_version_is_the_copy():
    listed = offer(None, modified=EARLIER)
    kept_as_copy = decide(listed, meta(modified=LATER), True, SyncMode.SLOW, ConflictPolicy.KEEP_BOTH)
    taken = decide(listed, meta(modified=EARLIER - 1), True, SyncMode.SLOW, ConflictPolicy.KEEP_BOTH)
    sent = decide(listed, meta(modified=LATER), True, SyncMode.SLOW, ConflictPolicy.NEWEST_WINS)
    assert (kept_as_copy.needs_content, taken.needs_content, sent.needs_content) == (True, True, False)


# An item only the callee changed (or, in a full comparison, holds), which the caller did not offer.
#                 two-way   slow     one-way from  one-way from  refresh from   refresh from
#                                    caller        callee        caller         callee
UNOFFERED_TABLE = {
    "live":      (SEND,     SEND,    NOTHING,      SEND,         "drop 200",    SEND),
    "tombstone": (SEND,     NOTHING, NOTHING,      SEND,         NOTHING,       NOTHING),
}  # fmt: skip


@pytest.mark.parametrize("state", list(UNOFFERED_TABLE))
@pytest.mark.parametrize("mode", MODES, ids=lambda mode: mode.value)
def test_an_item_only_the_callee_has_goes_as_the_table_says(state, mode):
    decision = decide_unoffered(meta(deleted=state == "tombstone"), mode)
    assert described(decision) == UNOFFERED_TABLE[state][MODES.index(mode)]


def test_a_plan_decides_the_offers_in_order_then_the_callees_own_changes():
    offers = {"b": offer(ChangeKind.ADD, source="b"), "a": offer(ChangeKind.REPLACE, names_our_id=True, source="a")}
    changed = {"c": meta(item_id="c"), "b": meta(item_id="b")}
    result = plan(offers, changed, {"a": meta(item_id="a")}, SyncMode.TWO_WAY, ConflictPolicy.NEWEST_WINS, ())
    assert list(result.decisions) == ["b", "a", "c"]
    assert [described(d) for d in result.decisions.values()] == [WON, TAKE, SEND]
    assert result.maps == () and result.matched == frozenset()


def test_a_plan_of_a_full_comparison_counts_what_the_callee_lacks_as_absent():
    offers = {"a": offer(ChangeKind.REPLACE, names_our_id=True, source="a")}
    result = plan(offers, {}, {"a": meta(item_id="a")}, SyncMode.SLOW, ConflictPolicy.NEWEST_WINS, ())
    assert described(result.decisions["a"]) == TAKE_NEW


def test_a_slow_sync_plan_maps_the_same_content_under_two_ids_instead_of_copying_it():
    offers = {"theirs": offer(None, source="their-id"), "other": offer(None, content=b"other", source="other")}
    changed = {"ours": meta(content=THEIRS, item_id="ours")}
    result = plan(offers, changed, {}, SyncMode.SLOW, ConflictPolicy.NEWEST_WINS, ())
    assert result.maps == (MapItem("ours", "their-id"),)
    assert result.matched == {"theirs"} and list(result.decisions) == ["other"]


def test_an_item_already_mapped_or_a_two_way_sync_is_not_matched_by_content():
    offers = {"theirs": offer(None, source="their-id")}
    changed = {"ours": meta(content=THEIRS, item_id="ours")}
    mapped = plan(offers, changed, {}, SyncMode.SLOW, ConflictPolicy.NEWEST_WINS, {"ours"})
    two_way = plan(offers, changed, {"theirs": None}, SyncMode.TWO_WAY, ConflictPolicy.NEWEST_WINS, ())
    assert mapped.maps == two_way.maps == ()
    assert set(mapped.decisions) == set(two_way.decisions) == {"theirs", "ours"}
