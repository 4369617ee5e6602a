"""What the caller offered the callee, item by item: an inventory entry (a hash, content not sent
yet) or an item command (with its content), and the Statuses for item commands refused on arrival."""

from __future__ import annotations

from typing import NamedTuple

from protocols.syncml.conflicts import Version
from protocols.syncml.messages import Entry, ItemCommand, Status
from protocols.syncml.records import ChangeKind, content_hash
from protocols.syncml.status_codes import BAD_REQUEST, CONCURRENT_EDIT


class Offer(NamedTuple):
    """An item the caller offered, kept under the callee's id for it."""

    # A NamedTuple rather than a frozen dataclass: a slow sync makes one per item, and a tuple is
    # built several times faster, which the record-sync benchmark sees.

    source: str  # the caller's id
    hash: str
    modified: float
    deleted: bool
    content_type: str = ""
    kind: ChangeKind | None = None  # None: only an inventory entry, content not sent yet
    content: bytes | None = None
    ref: tuple[int, int] | None = None  # (MsgID, CmdID) of the item command
    names_our_id: bool = False  # the caller gave our id (Target), so it claims we hold the item

    @property
    def version(self) -> Version:
        return Version(self.hash, self.modified, self.deleted)


def offer_of_entry(entry: Entry) -> Offer:
    return Offer(entry.source, entry.hash, entry.modified, entry.deleted)


def take_item(offers: dict[str, Offer], local_id: str, msg_id: int, command: ItemCommand) -> Status | None:
    """Record an item command from message `msg_id` as the offer for `local_id`; the Status that
    refuses it at once when it cannot be taken (None when it was taken)."""
    item = command.item
    previous = offers.get(local_id)
    if previous is not None and previous.ref is not None:
        return Status(0, msg_id, command.cmd_id, command.kind.value, BAD_REQUEST, item.source, "the item appears twice")
    offer = Offer(
        item.source,
        content_hash(item.content),
        item.modified,
        command.kind is ChangeKind.DELETE,
        item.content_type,
        command.kind,
        item.content,
        (msg_id, command.cmd_id),
        bool(item.target),
    )
    if previous is not None and previous.hash != offer.hash:
        # changed on the caller between its inventory and our Get: leave it for the next sync
        return Status(0, msg_id, command.cmd_id, command.kind.value, CONCURRENT_EDIT, item.source)
    offers[local_id] = offer
    return None
