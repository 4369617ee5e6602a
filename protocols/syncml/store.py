"""The small interface the sync engine needs from a record store, so it never knows about SQLite."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Iterable, Iterator, Protocol

from protocols.syncml.conflicts import Conflict
from protocols.syncml.records import Anchor, Change, ItemMeta, Record


class StaleVersion(Exception):
    """The item changed since the version the writer based its decision on; nothing was written."""

    def __init__(self, item_id: str, expected: int, actual: int) -> None:
        super().__init__(f"item {item_id!r} is at version {actual}, expected {expected}")
        self.item_id = item_id
        self.expected = expected
        self.actual = actual


class SyncStore(Protocol):
    def current_seq(self) -> int:
        """The change-log position of the latest write."""

    def meta(self, item_id: str) -> ItemMeta | None: ...

    def get(self, item_id: str) -> Record | None: ...

    def get_many(self, item_ids: Iterable[str]) -> dict[str, Record]: ...

    def scan(self, *, after_seq: int | None = None, not_from: str | None = None) -> Iterator[ItemMeta]:
        """Items (tombstones included) whose last write is after `after_seq` (all when None),
        leaving out those last written by a sync with `not_from`, which already has them."""

    def apply(self, change: Change, *, expected_version: int, origin: str | None) -> ItemMeta:
        """Write a change from a sync with `origin` (None: a copy made here, a local add) if the
        item is still at `expected_version` (0: absent), else raise StaleVersion."""

    def touch(self, item_id: str) -> None:
        """Log the item as changed again without altering it, so the next sync offers it."""

    def mark_held(self, item_id: str, *, version: int, peer: str) -> None:
        """`peer` has acknowledged this version of the item (a keep-both copy made here): record
        it as the item's origin, as if its last write came from that peer, so no sync with it
        offers the item back. Nothing happens if the item has moved past `version`."""

    def batch(self) -> AbstractContextManager[None]:
        """Group writes into one transaction."""

    def anchor(self, peer: str) -> Anchor: ...

    def save_anchor(self, peer: str, anchor: Anchor) -> None: ...

    def id_map(self, peer: str) -> dict[str, str]:
        """Local id -> the peer's id, for the items whose ids differ."""

    def map_id(self, peer: str, local_id: str, remote_id: str) -> None: ...

    def record_conflict(self, peer: str, conflict: Conflict) -> None: ...


def write_if_unchanged(store: SyncStore, change: Change, expected: ItemMeta | None, origin: str | None) -> bool:
    """Apply `change` if the item is still as `expected` (None: absent); False if it changed since,
    and then nothing was written."""
    try:
        store.apply(change, expected_version=expected.version if expected else 0, origin=origin)
    except StaleVersion:
        return False
    return True
