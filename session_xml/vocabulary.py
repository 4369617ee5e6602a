"""The words a session descriptor is made of, as plain enums: what a command line offers as
choices without loading the descriptor's checks (regular expressions, addresses)."""

from __future__ import annotations

from enum import StrEnum


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


class SyncMode(StrEnum):
    TWO_WAY = "two-way"
    SLOW = "slow"
    ONE_WAY_FROM_CALLER = "one-way-from-caller"
    ONE_WAY_FROM_CALLEE = "one-way-from-callee"
    REFRESH_FROM_CALLER = "refresh-from-caller"
    REFRESH_FROM_CALLEE = "refresh-from-callee"
