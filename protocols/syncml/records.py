"""What a record store holds and what a sync changes: item metadata, records, changes, anchors."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum


class ChangeKind(Enum):
    """The three SyncML item commands, spelled as their XML elements."""

    ADD = "Add"
    REPLACE = "Replace"
    DELETE = "Delete"


def content_hash(content: bytes | None) -> str:
    """Hash that both sides compute the same way; a tombstone hashes to the empty string."""
    if content is None:
        return ""
    return hashlib.blake2b(content, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class ItemMeta:
    """An item's state without its content: what change detection and comparison need."""

    id: str
    content_type: str
    version: int  # bumped on every write; 0 means "absent" in an expected-version check
    modified: float  # unix seconds of the edit that produced this version (kept across devices)
    deleted: bool  # a tombstone
    hash: str
    seq: int  # change-log position of the last write
    created_seq: int  # change-log position of the first write (tells Add from Replace)
    origin: str | None  # remote device whose sync wrote the last change; None for a local edit

    @property
    def live(self) -> bool:
        return not self.deleted


@dataclass(frozen=True, slots=True)
class Record:
    """An item with its content (None for a tombstone)."""

    meta: ItemMeta
    content: bytes | None

    @property
    def id(self) -> str:
        return self.meta.id


@dataclass(frozen=True, slots=True)
class Change:
    """A write to apply: new content for an item, or its deletion (content None)."""

    item_id: str
    content: bytes | None
    content_type: str
    modified: float

    @property
    def is_delete(self) -> bool:
        return self.content is None


def content_type_for(offered: str, current: ItemMeta | None) -> str:
    """The content type a write from a sync gives an item: the one offered, or, when the offer
    leaves it out (as a Delete may), the one the item has here; empty when neither says."""
    return offered or (current.content_type if current else "")


@dataclass(frozen=True, slots=True)
class Anchor:
    """Where the last completed sync with one remote device left off, as in SyncML's Last/Next.

    The token is shared by both sides; `last_seq` is this side's change-log position at that sync.
    `prev` is kept so a sync whose final acknowledgement was lost can be repeated from it.
    """

    last: str = ""
    last_seq: int = 0
    prev: str = ""
    prev_seq: int = 0
    next: str = ""  # token of a sync under way, stored when it starts
