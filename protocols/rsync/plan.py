"""The plan between two manifests: what to send, receive, delete or keep as a conflict copy.

A pure function of both manifests, the direction, and the manifest both sides agreed on at the
last sync (stored by the caller per peer), which tells "deleted here" from "new there".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath

from .manifest import FileEntry, Manifest


class Direction(Enum):
    PUSH = "push"
    PULL = "pull"
    TWO_WAY = "two-way"


class Action(Enum):
    SEND = "send"  # local file to the remote side (a delta when the remote has a basis)
    RECEIVE = "receive"  # remote file to the local side
    DELETE_REMOTE = "delete-remote"
    DELETE_LOCAL = "delete-local"
    CONFLICT = "conflict"  # both changed: the loser is renamed to `conflict_copy`, then the winner moves


class Side(Enum):
    LOCAL = "local"
    REMOTE = "remote"


@dataclass(frozen=True)
class PlanItem:
    path: str
    action: Action
    has_basis: bool = False  # the receiving side holds an older version: send a delta
    winner: Side | None = None
    conflict_copy: str | None = None


@dataclass(frozen=True)
class Plan:
    items: tuple[PlanItem, ...]
    unchanged: tuple[str, ...]

    def by_action(self, action: Action) -> list[PlanItem]:
        return [item for item in self.items if item.action is action]


def _same(a: FileEntry | None, b: FileEntry | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.digest == b.digest


def conflict_name(path: str, side_name: str, mtime_ns: int) -> str:
    """`report.sync-conflict-20240601-120000-laptop.txt` beside `report.txt`."""
    p = PurePosixPath(path)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns / 1e9))
    return str(p.with_name(f"{p.stem}.sync-conflict-{stamp}-{side_name}{p.suffix}"))


def make_plan(local: Manifest, remote: Manifest, direction: Direction,
              last_synced: Manifest | None = None, *, local_name: str = "local",
              remote_name: str = "remote") -> Plan:
    """Push and pull make the target follow the source, deleting only files the source deleted
    since `last_synced` (and the target did not change since). Two-way merges both sides;
    a file changed on both is a conflict won by the newer mtime; nothing is lost."""
    base = last_synced or Manifest()
    items: list[PlanItem] = []
    unchanged: list[str] = []
    for path in sorted(set(local) | set(remote)):
        lo, re, ba = local.get(path), remote.get(path), base.get(path)
        if _same(lo, re):
            unchanged.append(path)
            continue
        item = {
            Direction.PUSH: _one_way(path, lo, re, ba, Action.SEND, Action.DELETE_REMOTE),
            Direction.PULL: _one_way(path, re, lo, ba, Action.RECEIVE, Action.DELETE_LOCAL),
            Direction.TWO_WAY: _two_way(path, lo, re, ba, local_name, remote_name),
        }[direction]
        if item is None:
            unchanged.append(path)
        else:
            items.append(item)
    return Plan(tuple(items), tuple(unchanged))


def _one_way(path, src, dst, base, send: Action, delete: Action) -> PlanItem | None:
    if src is not None:
        return PlanItem(path, send, has_basis=dst is not None)
    # the source has no file: delete only what the source deleted, never the target's own work
    if base is not None and _same(base, dst):
        return PlanItem(path, delete)
    return None


def _two_way(path, lo, re, base, local_name, remote_name) -> PlanItem | None:
    local_changed, remote_changed = not _same(lo, base), not _same(re, base)
    if local_changed and not remote_changed:
        return PlanItem(path, Action.DELETE_REMOTE) if lo is None else PlanItem(path, Action.SEND, has_basis=re is not None)
    if remote_changed and not local_changed:
        return PlanItem(path, Action.DELETE_LOCAL) if re is None else PlanItem(path, Action.RECEIVE, has_basis=lo is not None)
    # changed on both sides: an edit beats a delete, two edits are a conflict
    if lo is None:
        return PlanItem(path, Action.RECEIVE)
    if re is None:
        return PlanItem(path, Action.SEND)
    local_wins = (lo.mtime_ns, lo.digest) > (re.mtime_ns, re.digest)
    loser, loser_name = (re, remote_name) if local_wins else (lo, local_name)
    return PlanItem(path, Action.CONFLICT, has_basis=True,
                    winner=Side.LOCAL if local_wins else Side.REMOTE,
                    conflict_copy=conflict_name(path, loser_name, loser.mtime_ns))
