"""The words a session descriptor is made of, as plain enums: what a command line offers as
choices without loading the descriptor's checks (regular expressions, addresses)."""

from __future__ import annotations

from enum import StrEnum

# The record protocol's modes are the words of the descriptor too.
from protocols.syncml.modes import SyncMode

__all__ = ["DataType", "Direction", "Role", "SyncMode", "SyncProtocol"]


class Role(StrEnum):
    OFFER = "offer"
    ANSWER = "answer"


class DataType(StrEnum):
    FILES = "files"
    CONTACTS = "contacts"
    CALENDAR = "calendar"
    NOTES = "notes"
    SMS = "sms"


class SyncProtocol(StrEnum):
    SYNCML = "syncml"
    RSYNC = "rsync"


class Direction(StrEnum):
    TWO_WAY = "two-way"
    PUSH = "push"
    PULL = "pull"
    MIRROR = "mirror"  # caller to callee, and the callee's copy becomes exact (rsync -a --delete)
