"""The callee writes its decisions to its store: the caller's versions it takes, the deletions of
a refresh, keep-both copies, the conflicts, each write checked against the state it was decided on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from protocols.syncml.conflicts import Conflict, Side
from protocols.syncml.decisions import Decision
from protocols.syncml.offers import Offer
from protocols.syncml.records import Change, ItemMeta, content_hash, content_type_for
from protocols.syncml.status_codes import CONCURRENT_EDIT
from protocols.syncml.store import StaleVersion, SyncStore, write_if_unchanged

# What a keep-both copy holds: (content, content type, device whose version lost, that version's
# modification time, the copy's id) -> the copy's content. The record formats live with the peer,
# so the peer passes the rewrite that gives a card or event the copy's own identity.
CopyContent = Callable[[bytes, str, str, float, str], bytes]


def same_content(content: bytes, content_type: str, device: str, when: float, copy_id: str) -> bytes:
    """The engine's own default: the copy holds the losing version's bytes unchanged."""
    return content


@dataclass(frozen=True, slots=True)
class Devices:
    """Who is who in the sync, to name the device whose version a copy keeps."""

    caller: str
    callee: str

    def of(self, side: Side) -> str:
        return self.caller if side is Side.CALLER else self.callee


@dataclass(frozen=True, slots=True)
class Written:
    decisions: dict[str, Decision]  # as carried out: a write that found the item changed says so
    copies: dict[str, int]  # keep-both copies, to send to the caller as adds: id -> version
    conflicts: tuple[Conflict, ...]
    applied: int  # items written


def write_decisions(
    store: SyncStore,
    peer: str,
    decisions: Mapping[str, Decision],
    offers: Mapping[str, Offer],
    now: Callable[[], float],
    devices: Devices,
    copy_content: CopyContent = same_content,
) -> Written:
    """Carry out `decisions` (in their order) in `store`, inside the caller's batch."""
    written: dict[str, Decision] = {}
    copies: dict[str, int] = {}
    conflicts: list[Conflict] = []
    applied = 0
    for local_id, decision in decisions.items():
        offer = offers.get(local_id)
        if decision.needs_content and (offer is None or offer.kind is None):
            # the caller's item changed meanwhile and comes again next time: so must ours,
            # or our anchor would move past it and the next sync would see no conflict
            if decision.expected is not None:
                store.touch(local_id)
            written[local_id] = decision._replace(send=False)
            continue
        if decision.conflict is not None:
            conflicts.append(decision.conflict)
            store.record_conflict(peer, decision.conflict)
        if decision.copy_of is not None:
            copy, made = _make_copy(store, local_id, decision, offer, devices, copy_content)
            applied += made
            if copy is not None:
                copies[copy.id] = copy.version
        if decision.take:
            assert offer is not None
            content_type = content_type_for(offer.content_type, decision.expected)
            content = None if offer.deleted else offer.content
            change = Change(local_id, content, content_type, offer.modified)
            if write_if_unchanged(store, change, decision.expected, peer):
                applied += 1
            else:  # our item changed meanwhile: the next sync sends the new one
                decision = decision._replace(send=False, code=CONCURRENT_EDIT)
        if decision.drop and decision.expected is not None:
            change = Change(local_id, None, decision.expected.content_type, now())
            if write_if_unchanged(store, change, decision.expected, peer):
                applied += 1
            else:
                decision = decision._replace(send=False)
        if decision.touch:
            store.touch(local_id)
        written[local_id] = decision
    return Written(written, copies, tuple(conflicts), applied)


def _make_copy(store: SyncStore, local_id: str, decision: Decision, offer: Offer | None, devices: Devices,
               copy_content: CopyContent) -> tuple[ItemMeta | None, int]:
    """Keep-both: store the losing version, given its own identity by `copy_content`, as a new
    item (a local add, so it reaches the caller; once the caller has it, it is marked as held
    there). The copy, None when there is nothing to copy, and how many items were written."""
    assert decision.conflict is not None and decision.conflict.copy_id is not None
    copy_id = decision.conflict.copy_id
    if decision.copy_of is Side.CALLER:
        assert offer is not None
        content, content_type, modified = offer.content, offer.content_type, offer.modified
    else:
        record = store.get(local_id)
        if record is None or record.content is None:
            return None, 0
        content, content_type, modified = record.content, record.meta.content_type, record.meta.modified
    content = copy_content(content, content_type, devices.of(decision.copy_of), modified, copy_id)
    existing = store.meta(copy_id)
    if existing is not None and existing.live and existing.hash == content_hash(content):
        return existing, 0  # made by an earlier, interrupted attempt of this sync
    try:
        return store.apply(Change(copy_id, content, content_type, modified),
                           expected_version=existing.version if existing else 0, origin=None), 1
    except StaleVersion:
        return None, 0
