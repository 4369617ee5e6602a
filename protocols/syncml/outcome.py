"""How a sync ends and what it did: its state, why it failed, the items one side refused, and the
report each side gives of a finished sync."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from protocols.syncml.conflicts import Conflict, Side
from protocols.syncml.modes import SyncMode


class SessionState(Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SyncError(Exception):
    """Why a sync failed; nothing of the failed package was written and anchors did not move."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ItemError:
    """An item command refused by one side, with the Status code it got."""

    item_id: str
    code: int
    refused_by: Side
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SyncReport:
    role: Side
    mode: SyncMode | None
    items_sent: int
    items_applied: int
    conflicts: tuple[Conflict, ...]
    item_errors: tuple[ItemError, ...]
    messages_sent: int
    bytes_sent: int
    messages_received: int
    bytes_received: int
    items_received: int = 0  # item commands (Add, Replace, Delete) that came from the peer
