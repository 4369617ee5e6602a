"""The plan between two manifests: what to send, receive, delete or keep as a conflict copy.

A pure function of both manifests, the direction, and the manifest both sides agreed on at the
last sync (stored by each side per peer), which tells "deleted here" from "new there". An entry
whose content is the same on both sides but whose mode or mtime differs travels as metadata only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum
from pathlib import PurePosixPath

from .manifest import EntryKind, FileEntry, Manifest


class Direction(Enum):
    PUSH = "push"
    PULL = "pull"
    TWO_WAY = "two-way"
    MIRROR = "mirror"  # this side is the source and the other becomes its exact copy
    MIRRORED = "mirrored"  # this side becomes the exact copy of the other

    @property
    def opposite(self) -> "Direction":
        """The same sync seen from the other side."""
        return _OPPOSITE[self]


_OPPOSITE = {Direction.PUSH: Direction.PULL, Direction.PULL: Direction.PUSH,
             Direction.TWO_WAY: Direction.TWO_WAY, Direction.MIRROR: Direction.MIRRORED,
             Direction.MIRRORED: Direction.MIRROR}


class Action(Enum):
    SEND = "send"  # local entry to the remote side (a delta when the remote has a basis)
    RECEIVE = "receive"  # remote entry to the local side
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
    meta_only: bool = False  # same content on both sides: only mode and mtime travel

    @property
    def moves_bytes(self) -> bool:
        return self.action is Action.CONFLICT or (
            self.action in (Action.SEND, Action.RECEIVE) and not self.meta_only)


@dataclass(frozen=True)
class Plan:
    items: tuple[PlanItem, ...]
    unchanged: tuple[str, ...]

    def by_action(self, action: Action) -> list[PlanItem]:
        return [item for item in self.items if item.action is action]


def _same(a: FileEntry | None, b: FileEntry | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.same(b)


def _is_file(e: FileEntry | None) -> bool:
    return e is not None and e.kind is EntryKind.FILE


def conflict_name(path: str, side_name: str, mtime_ns: int) -> str:
    """`report.sync-conflict-20240601-120000-laptop.txt` beside `report.txt`."""
    p = PurePosixPath(path)
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(mtime_ns / 1e9))
    return str(p.with_name(f"{p.stem}.sync-conflict-{stamp}-{side_name}{p.suffix}"))


def make_plan(local: Manifest, remote: Manifest, direction: Direction,
              last_synced: Manifest | None = None, *, local_name: str = "local",
              remote_name: str = "remote", changed: set[str] | None = None) -> Plan:
    """Push and pull make the target follow the source, deleting only what the source deleted
    since `last_synced` (and the target did not change since); mirror deletes whatever the
    source does not have. Two-way merges both sides; a file whose content changed on both is a
    conflict won by the newer mtime; nothing is lost.

    `changed`, when given, names every path where either side differs from `last_synced`:
    only those are planned (the rest is the same on both sides), so a sync where little
    changed costs little."""
    base = last_synced or Manifest()
    items: list[PlanItem] = []
    unchanged: list[str] = []
    if changed is None:
        paths = sorted(set(local) | set(remote))
    else:
        unchanged = [p for p in base if p not in changed and p in local.entries]
        paths = sorted(changed)
    for path in paths:
        lo, re, ba = local.get(path), remote.get(path), base.get(path)
        if _same(lo, re):
            unchanged.append(path)
            continue
        if direction is Direction.PUSH:
            item = _one_way(path, lo, re, ba, Action.SEND, Action.DELETE_REMOTE, mirror=False)
        elif direction is Direction.PULL:
            item = _one_way(path, re, lo, ba, Action.RECEIVE, Action.DELETE_LOCAL, mirror=False)
        elif direction is Direction.MIRROR:
            item = _one_way(path, lo, re, ba, Action.SEND, Action.DELETE_REMOTE, mirror=True)
        elif direction is Direction.MIRRORED:
            item = _one_way(path, re, lo, ba, Action.RECEIVE, Action.DELETE_LOCAL, mirror=True)
        else:
            item = _two_way(path, lo, re, ba, local_name, remote_name)
        if item is None:
            unchanged.append(path)
        else:
            items.append(item)
    return Plan(tuple(items), tuple(sorted(unchanged)) if changed is not None else tuple(unchanged))


def _transfer(path: str, action: Action, src: FileEntry, dst: FileEntry | None) -> PlanItem:
    return PlanItem(path, action, has_basis=_is_file(src) and _is_file(dst),
                    meta_only=dst is not None and src.same_content(dst))


def _one_way(path, src, dst, base, send: Action, delete: Action, *, mirror: bool) -> PlanItem | None:
    if src is not None:
        return _transfer(path, send, src, dst)
    # the source has no such entry: a mirror deletes it; push and pull delete only what the
    # source deleted, never the target's own work
    if mirror or (base is not None and _same(base, dst)):
        return PlanItem(path, delete)
    return None


def _two_way(path, lo, re, base, local_name, remote_name) -> PlanItem | None:
    local_changed, remote_changed = not _same(lo, base), not _same(re, base)
    if local_changed and not remote_changed:
        return PlanItem(path, Action.DELETE_REMOTE) if lo is None else _transfer(path, Action.SEND, lo, re)
    if remote_changed and not local_changed:
        return PlanItem(path, Action.DELETE_LOCAL) if re is None else _transfer(path, Action.RECEIVE, re, lo)
    # changed on both sides: an edit beats a delete, two edits of a file's bytes are a conflict
    if lo is None:
        return _transfer(path, Action.RECEIVE, re, lo)
    if re is None:
        return _transfer(path, Action.SEND, lo, re)
    local_wins = (lo.mtime_ns, lo.mode, lo.digest, lo.target) > (re.mtime_ns, re.mode, re.digest, re.target)
    if not (_is_file(lo) and _is_file(re)) or lo.same_content(re):
        # a metadata change, or a folder or link: the newer one is taken whole (a file it
        # replaces goes to the versions folder on that side)
        return _transfer(path, Action.SEND, lo, re) if local_wins else _transfer(path, Action.RECEIVE, re, lo)
    loser, loser_name = (re, remote_name) if local_wins else (lo, local_name)
    return PlanItem(path, Action.CONFLICT, has_basis=True,
                    winner=Side.LOCAL if local_wins else Side.REMOTE,
                    conflict_copy=conflict_name(path, loser_name, loser.mtime_ns))
