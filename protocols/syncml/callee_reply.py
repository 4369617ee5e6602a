"""The callee's answer to the caller's changes: a Status per item command, the id maps of a slow
sync, and the callee's own changes, each as Add, Replace or Delete as the caller will see it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from protocols.syncml.decisions import Decision
from protocols.syncml.engine import item_command
from protocols.syncml.messages import Item, ItemCommand, Status
from protocols.syncml.modes import SyncMode
from protocols.syncml.offers import Offer
from protocols.syncml.records import ChangeKind, ItemMeta, Record


def offer_statuses(offers: Mapping[str, Offer], decisions: Mapping[str, Decision]) -> list[Status]:
    """The Status of each item command the caller sent, with the code its decision came to."""
    return [
        Status(0, offer.ref[0], offer.ref[1], offer.kind.value, decisions[local_id].code, offer.source)
        for local_id, offer in offers.items()
        if offer.ref is not None and offer.kind is not None
    ]


def records_to_send(decisions: Mapping[str, Decision], copies: Collection[str]) -> list[str]:
    """The ids whose records `changes_for_caller` needs."""
    return [*(local_id for local_id, decision in decisions.items() if decision.send), *copies]


def changes_for_caller(
    decisions: Mapping[str, Decision],
    offers: Mapping[str, Offer],
    records: Mapping[str, Record],
    copies: Collection[str],
    mode: SyncMode,
    anchor_seq: int,
    to_remote: Mapping[str, str],
    now: Callable[[], float],
) -> list[ItemCommand]:
    """Our versions the caller is to take, the keep-both copies, and the deletes of a refresh."""
    commands: list[ItemCommand] = []
    for local_id, decision in decisions.items():
        record = records.get(local_id) if decision.send else None
        if record is None:
            continue
        kind = _kind(record.meta, offers.get(local_id), mode, anchor_seq)
        if kind is not None:
            commands.append(item_command(record, kind, to_remote.get(local_id, "")))
    commands.extend(
        item_command(records[copy_id], ChangeKind.ADD, to_remote.get(copy_id, ""))
        for copy_id in copies
        if copy_id in records
    )
    for local_id, decision in decisions.items():
        if decision.drop_remote:
            target = offers[local_id].source
            commands.append(ItemCommand(0, ChangeKind.DELETE, Item(local_id, target, "", now())))
    return commands


def _kind(meta: ItemMeta, offer: Offer | None, mode: SyncMode, anchor_seq: int) -> ChangeKind | None:
    """How the caller is told of our item; None when it need not be."""
    if meta.deleted:
        if offer is None and mode.full:
            return None  # the caller listed all it holds: what it did not list, it has no copy of
        return ChangeKind.DELETE
    if offer is not None and not offer.deleted:
        return ChangeKind.REPLACE
    if offer is None and not mode.full and meta.created_seq <= anchor_seq:
        return ChangeKind.REPLACE  # the caller had it at the anchor
    return ChangeKind.ADD
