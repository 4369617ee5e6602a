"""What the callee does with each item, decided before anything is written: the caller's offer ×
the callee's own state × the sync mode × the conflict policy → write the caller's version, send
ours, delete, keep both, and the Status the offer gets. Pure: no store, no clock."""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from protocols.syncml.conflicts import Conflict, ConflictPolicy, Resolution, Side, Version, deferred, resolve
from protocols.syncml.messages import MapItem
from protocols.syncml.modes import SyncMode
from protocols.syncml.offers import Offer
from protocols.syncml.records import ChangeKind, ItemMeta
from protocols.syncml.status_codes import ADDED, CALLEE_WON, CALLER_WON, CONCURRENT_EDIT, DUPLICATED, NOT_FOUND, OK


class Decision(NamedTuple):
    """What the callee does with one item."""

    # A NamedTuple rather than a frozen dataclass, as Offer: one is made per item of a slow sync.

    expected: ItemMeta | None  # the callee's state the decision rests on; a write checks it still holds
    take: bool = False  # write the caller's version here
    send: bool = False  # send our version to the caller
    drop: bool = False  # delete here (refresh from caller)
    drop_remote: bool = False  # tell the caller to delete an item we never had (refresh from callee)
    copy_of: Side | None = None  # keep-both: which side's version becomes the copy
    conflict: Conflict | None = None
    touch: bool = False  # keep our change for a later sync
    code: int = OK  # the Status the offer gets if the write goes as planned

    @property
    def needs_content(self) -> bool:
        """The caller's content is needed: an inventory entry alone is not enough."""
        return self.take or self.copy_of is Side.CALLER


@dataclass(frozen=True, slots=True)
class Plan:
    decisions: dict[str, Decision]  # by the callee's id: offers first, in order, then our own items
    maps: tuple[MapItem, ...]  # slow sync: our item (source) is the caller's (target), nothing to copy
    matched: frozenset[str]  # the offers those maps settle: they get no decision


def decide(
    offer: Offer, ours: ItemMeta | None, changed_here: bool, mode: SyncMode, policy: ConflictPolicy
) -> Decision:
    """One offered item. `ours` is the callee's item (None if it never had it); `changed_here`,
    whether the callee changed it since the anchor (not by a sync with this caller). A full
    comparison (slow, refresh) has no anchor: every item the callee holds counts as changed."""
    mine = ours if changed_here or mode.full else None
    same = ours is not None and (
        (offer.deleted and ours.deleted) or (not offer.deleted and ours.live and offer.hash == ours.hash)
    )
    if same:
        return Decision(ours)  # the same change on both sides, or a repeated sync: nothing to do
    if mode is SyncMode.REFRESH_FROM_CALLER:
        return _taking(ours, OK) if not offer.deleted or (ours is not None and ours.live) else Decision(ours)
    if mode is SyncMode.REFRESH_FROM_CALLEE:
        if ours is not None and (ours.live or not offer.deleted):
            return Decision(ours, send=True)
        return Decision(ours, drop_remote=not offer.deleted)
    if mine is None:
        if ours is None and not mode.full and (offer.names_our_id or offer.kind is ChangeKind.DELETE):
            return Decision(ours, code=NOT_FOUND)  # a Replace of an item we lack is an Add, as in SyncML
        if ours is None and offer.deleted:
            return Decision(ours)  # deleted on the caller, never known here
        return _taking(ours, OK) if mode.callee_writes else Decision(ours)
    if mode.one_way:
        conflict = deferred(policy, mine.id, offer.version, _version(mine))
        if mode is SyncMode.ONE_WAY_FROM_CALLER:
            return Decision(ours, conflict=conflict, code=CONCURRENT_EDIT)  # the caller offers it again
        return Decision(ours, conflict=conflict, touch=True)  # and so do we
    conflict = resolve(policy, mine.id, offer.version, _version(mine))
    caller_wins = conflict.resolution is Resolution.CALLER_WINS
    if conflict.copy_id is not None:
        copy_of = Side.CALLEE if caller_wins else Side.CALLER
        return Decision(ours, take=caller_wins, send=not caller_wins, copy_of=copy_of, conflict=conflict,
                        code=DUPLICATED)
    if caller_wins:
        return Decision(ours, take=True, conflict=conflict, code=CALLER_WON)
    return Decision(ours, send=True, conflict=conflict, code=CALLEE_WON)


def decide_unoffered(ours: ItemMeta, mode: SyncMode) -> Decision:
    """An item of the callee's that the caller did not offer: changed here since the anchor, or, in
    a full comparison, any item the callee holds."""
    if mode.full:
        if not ours.live:
            return Decision(ours)
        if mode is SyncMode.REFRESH_FROM_CALLER:
            return Decision(ours, drop=True)
        return Decision(ours, send=True)
    return Decision(ours, send=mode.caller_writes)


def plan(
    offers: Mapping[str, Offer],
    changed: Mapping[str, ItemMeta],
    unchanged: Mapping[str, ItemMeta | None],
    mode: SyncMode,
    policy: ConflictPolicy,
    mapped: Container[str],
) -> Plan:
    """Every item's decision. `changed` holds the callee's items changed since the anchor (all of
    them in a full comparison), in change-log order; `unchanged`, the callee's state of each other
    offered item (None where it has none); `mapped`, the callee's ids the caller knows by another."""
    decisions: dict[str, Decision] = {}
    for local_id, offer in offers.items():
        if local_id in changed:
            decisions[local_id] = decide(offer, changed[local_id], True, mode, policy)
        else:
            decisions[local_id] = decide(offer, None if mode.full else unchanged.get(local_id), False, mode, policy)
    for local_id, ours in changed.items():
        if local_id not in offers:
            decisions[local_id] = decide_unoffered(ours, mode)
    maps: list[MapItem] = []
    matched: set[str] = set()
    if mode is SyncMode.SLOW:
        for ours_id, theirs_id in same_items(offers, changed, mapped):
            del decisions[ours_id], decisions[theirs_id]
            maps.append(MapItem(ours_id, offers[theirs_id].source))
            matched.add(theirs_id)
    return Plan(decisions, tuple(maps), frozenset(matched))


def same_items(
    offers: Mapping[str, Offer], ours: Mapping[str, ItemMeta], mapped: Container[str]
) -> list[tuple[str, str]]:
    """Slow sync: an item only the caller has and one only we have, with the same content, are the
    same item under two ids (say a card imported on both devices without UID): (ours, theirs) pairs
    to map, not copy."""
    theirs_by_hash = {
        offer.hash: local_id
        for local_id, offer in offers.items()
        if offer.ref is None and not offer.deleted and local_id not in ours
    }
    pairs = []
    for local_id, meta in ours.items():
        if local_id in offers or not meta.live or meta.id in mapped:
            continue
        other = theirs_by_hash.pop(meta.hash, None)
        if other is not None:
            pairs.append((local_id, other))
    return pairs


def _taking(ours: ItemMeta | None, code: int) -> Decision:
    # Written where we never had the item, the caller's version is an add.
    return Decision(ours, take=True, code=ADDED if ours is None and code == OK else code)


def _version(meta: ItemMeta) -> Version:
    return Version(meta.hash, meta.modified, meta.deleted)
