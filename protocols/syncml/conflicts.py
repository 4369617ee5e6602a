"""Conflict policies: which version of an item changed on both sides survives, and the record of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import Enum


class Side(Enum):
    """The caller starts the sync (SyncML client, the source); the callee answers (server, target)."""

    CALLER = "caller"
    CALLEE = "callee"


class ConflictPolicy(Enum):
    NEWEST_WINS = "newest-wins"
    SOURCE_WINS = "source-wins"  # the caller's version
    TARGET_WINS = "target-wins"  # the callee's version
    KEEP_BOTH = "keep-both"  # newest wins, the other version is kept as a new item


class Resolution(Enum):
    CALLER_WINS = "caller-wins"
    CALLEE_WINS = "callee-wins"
    DEFERRED = "deferred"  # one-way sync: both versions stay until a two-way sync


@dataclass(frozen=True, slots=True)
class Version:
    """One side's version of a conflicting item, as far as the policy needs to see it."""

    hash: str
    modified: float
    deleted: bool


@dataclass(frozen=True, slots=True)
class Conflict:
    """A conflict and how it was resolved; stored by both sides and reported."""

    item_id: str
    policy: ConflictPolicy
    resolution: Resolution
    caller: Version
    callee: Version
    copy_id: str | None = None  # keep-both: the new item holding the losing version

    @property
    def winner(self) -> Side | None:
        return {Resolution.CALLER_WINS: Side.CALLER, Resolution.CALLEE_WINS: Side.CALLEE}.get(
            self.resolution
        )


_COPY_NAMESPACE = uuid.UUID("6f1c1f0e-9b7a-4c52-8d0e-5a9c0b1e2d33")


def copy_id_for(item_id: str, loser_hash: str) -> str:
    """Deterministic, so a repeated sync makes the same copy instead of a second one."""
    return str(uuid.uuid5(_COPY_NAMESPACE, f"{item_id}\x00{loser_hash}"))


def resolve(policy: ConflictPolicy, item_id: str, caller: Version, callee: Version) -> Conflict:
    """Decide a conflict. Ties on modification time go to the callee so both sides agree."""
    if policy is ConflictPolicy.SOURCE_WINS:
        winner = Side.CALLER
    elif policy is ConflictPolicy.TARGET_WINS:
        winner = Side.CALLEE
    elif policy is ConflictPolicy.KEEP_BOTH and caller.deleted != callee.deleted:
        # an edit against a delete: keeping the edit is what loses nothing
        winner = Side.CALLEE if caller.deleted else Side.CALLER
    else:
        winner = Side.CALLER if caller.modified > callee.modified else Side.CALLEE
    copy_id = None
    if policy is ConflictPolicy.KEEP_BOTH:
        loser = callee if winner is Side.CALLER else caller
        if not loser.deleted:
            copy_id = copy_id_for(item_id, loser.hash)
    resolution = Resolution.CALLER_WINS if winner is Side.CALLER else Resolution.CALLEE_WINS
    return Conflict(item_id, policy, resolution, caller, callee, copy_id)


def deferred(policy: ConflictPolicy, item_id: str, caller: Version, callee: Version) -> Conflict:
    return Conflict(item_id, policy, Resolution.DEFERRED, caller, callee)
