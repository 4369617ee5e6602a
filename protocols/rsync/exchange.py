"""One side of a folder sync: from both manifests, what this side asks for, serves and deletes.

Both sides run `prepare()` on the same two manifests and the same base, each from its own point
of view, so they agree on every entry without sending a plan. Sans-I/O: the peer daemon carries
out the result (peer/folder_sync.py through `transfer.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ExchangeError, UnsafePath, WireFormatError
from .hashes import DIGEST_LEN
from .manifest import EntryKind, FileEntry, Manifest, Skipped, state_digest
from .messages import FileRequest
from .paths import check_path_text
from .plan import Action, Direction, Plan, Side, make_plan
from enum import Enum


class Arrival(Enum):
    CHANGED = "changed"  # a delta against the old version
    NEW = "new"  # nothing to start from: all literal
    MOVED = "moved"  # new here, but a file with the same content is here under another name
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Incoming:
    """A file whose bytes this side receives: the peer's `path`, landing at `target` (the path
    itself, or the conflict copy when this side won), rebuilt against the local `basis`."""

    path: str
    target: str
    entry: FileEntry  # the peer's: size, mode, mtime and the hash the result must have
    basis: str | None
    arrival: Arrival


@dataclass(frozen=True)
class Exchange:
    plan: Plan
    local: Manifest
    remote: Manifest
    incoming: tuple[Incoming, ...]  # requested in this order, answered in the same order
    serves: frozenset[str]  # local paths the peer may ask for
    keep_copies: tuple[tuple[str, str], ...]  # (path, conflict copy): this side lost, keep its version
    deletions: tuple[str, ...]  # local paths to remove once everything has arrived
    applies: tuple[FileEntry, ...] = ()  # the peer's folders, links and metadata-only changes
    base: Manifest | None = None  # with `changed`: only those paths differ from it on either side
    changed: frozenset[str] | None = None

    @property
    def bytes_to_move(self) -> int:
        """Sizes of every file that crosses, both ways (the progress total)."""
        sent = sum(self.local.entries[p].size for p in self.serves)
        return sent + sum(item.entry.size for item in self.incoming)

    @property
    def changes_here(self) -> bool:
        """This side's folder changes in this sync: something arrives, is kept as a conflict
        copy, applied from the manifest or deleted (otherwise there is nothing to make durable)."""
        return bool(self.incoming or self.deletions or self.applies or self.keep_copies)

    @property
    def sent_in_manifest(self) -> int:
        """Links and metadata-only changes this side sends: the peer applies them from the
        manifest, no bytes follow (folders are not counted)."""
        return sum(1 for item in self.plan.items if item.action is Action.SEND
                   and not (item.moves_bytes and self.local.entries[item.path].kind is EntryKind.FILE)
                   and self.local.entries[item.path].kind is not EntryKind.DIR)

    @property
    def skipped(self) -> tuple[Skipped, ...]:
        """What the scans on both sides left out, with the reason."""
        return self.local.skipped + self.remote.skipped

    def source_of(self, path: str) -> str:
        """Where this side reads what it sends for `path`. A conflict this side lost keeps its
        version under the copy's name (a hard link made before the transfer), and the winner's
        version may replace `path` while the peer still waits for ours."""
        for kept, copy in self.keep_copies:
            if kept == path:
                return copy
        return path

    def check_request(self, request: FileRequest) -> FileEntry:
        """The local entry the peer may have, or `ExchangeError`: it asks only for what the plan
        has this side send, from an offset inside the file."""
        if request.path not in self.serves:
            raise ExchangeError(f"the peer asked for {request.path!r}, which this side does not "
                                "send in this sync")
        entry = self.local.entries[request.path]
        if request.resume_offset > entry.size:
            raise ExchangeError(f"the peer resumes {request.path!r} at {request.resume_offset}, "
                                f"past its {entry.size} bytes")
        return entry

    def synced(self) -> Manifest:
        """The state both sides hold once every step is done: the base of the next sync."""
        local, remote = self.local.entries, self.remote.entries
        if self.changed is not None and self.base is not None:
            if not self.changed:
                return self.base  # nothing changed anywhere: the same state (its digest known)
            agreed = {p: e for p, e in self.base.entries.items() if p not in self.changed}
            unchanged = [p for p in self.plan.unchanged if p in self.changed]
        else:
            agreed, unchanged = {}, self.plan.unchanged
        for path in unchanged:
            lo, re = local.get(path), remote.get(path)
            if lo is not None and re is not None and (lo is re or lo.same(re)):
                agreed[path] = lo
        for item in self.plan.items:
            lo, re = self.local.get(item.path), self.remote.get(item.path)
            if item.action is Action.SEND:
                agreed[item.path] = lo
            elif item.action is Action.RECEIVE:
                agreed[item.path] = re
            elif item.action is Action.CONFLICT:
                win, lose = (lo, re) if item.winner is Side.LOCAL else (re, lo)
                agreed[item.path] = win
                agreed[item.conflict_copy] = FileEntry(item.conflict_copy, lose.size,
                                                       lose.mtime_ns, lose.mode, lose.digest)
        return Manifest(dict(sorted(agreed.items())))

    def summary(self) -> str:
        """One line for the user: '2 changed (delta), 1 new, 1 deleted, 1 conflict kept as ...'.
        Folders are not counted: they follow the files (and are kept, modes and times)."""
        counts: dict[str, int] = {}
        copies: list[str] = []
        entries = {**self.remote.entries, **self.local.entries}
        for item in self.plan.items:
            if entries[item.path].kind is EntryKind.DIR:
                continue
            if item.action in (Action.SEND, Action.RECEIVE):
                key = "metadata only" if item.meta_only else \
                    "changed (delta)" if item.has_basis else "new"
            elif item.action in (Action.DELETE_LOCAL, Action.DELETE_REMOTE):
                key = "deleted"
            else:
                copies.append(item.conflict_copy)
                continue
            counts[key] = counts.get(key, 0) + 1
        parts = [f"{counts[key]} {key}" for key in ("changed (delta)", "new", "metadata only",
                                                     "deleted") if key in counts]
        if copies:
            parts.append(f"{len(copies)} conflict{'s' if len(copies) > 1 else ''} kept as "
                         + ", ".join(copies))
        files = [p for p in self.plan.unchanged if entries[p].kind is not EntryKind.DIR]
        same = sum(1 for path in files if path in self.local.entries and path in self.remote.entries)
        unchanged = f"{same} unchanged"
        if len(files) > same:  # one side's own files a push or pull does not touch
            unchanged += f", {len(files) - same} left alone on one side"
        return ", ".join(parts) + f"; {unchanged}" if parts else f"in sync already, {unchanged}"


def check_remote(remote: Manifest) -> None:
    """Every path and field of the peer's manifest, before anything is planned from it."""
    for path, entry in remote.entries.items():
        check_path_text(path)
        if path != entry.path:
            raise UnsafePath(f"manifest entry {entry.path!r} filed under {path!r}")
        if entry.kind is EntryKind.FILE and (entry.size < 0 or len(entry.digest) != DIGEST_LEN):
            raise WireFormatError(f"manifest entry {path!r} has a bad size or hash")
        if entry.kind is not EntryKind.FILE and (entry.size or entry.digest):
            raise WireFormatError(f"manifest entry {path!r}: a folder or link with a size or hash")
        if entry.kind is EntryKind.LINK and (not entry.target or "\0" in entry.target):
            raise WireFormatError(f"manifest entry {path!r}: a link without a usable target")


def manifest_digest(manifest: Manifest | None) -> str:
    """Names a synced state ("" for none); both sides compare it before planning from it."""
    return state_digest(manifest)


def prepare(local: Manifest, remote: Manifest, direction: Direction, base: Manifest | None, *,
            local_name: str, remote_name: str, changed: set[str] | None = None) -> Exchange:
    """This side's part of the sync. `direction` is from this side's point of view (the callee
    takes the opposite of the caller's); `base` is the last-synced state both sides named.
    `changed` (see `make_plan`) names the paths where either side differs from `base`; the
    remote entries outside it are `base`'s own, checked when that state was agreed."""
    check_remote(remote if changed is None else
                 Manifest({p: remote.entries[p] for p in changed if p in remote.entries}))
    plan = make_plan(local, remote, direction, base, local_name=local_name,
                     remote_name=remote_name, changed=changed)
    by_digest: dict[bytes, str] = {}
    for path, entry in local.entries.items():
        if entry.kind is EntryKind.FILE:
            by_digest.setdefault(entry.digest, path)
    incoming: list[Incoming] = []
    serves: set[str] = set()
    keep: list[tuple[str, str]] = []
    deletions: list[str] = []
    applies: list[FileEntry] = []
    for item in plan.items:
        re, lo = remote.get(item.path), local.get(item.path)
        if item.action is Action.SEND:
            if item.moves_bytes and lo.kind is EntryKind.FILE:
                serves.add(item.path)
        elif item.action is Action.DELETE_LOCAL:
            deletions.append(item.path)
        elif item.action is Action.RECEIVE:
            if re.kind is not EntryKind.FILE or item.meta_only:
                applies.append(re)
            elif item.has_basis:
                incoming.append(Incoming(item.path, item.path, re, item.path, Arrival.CHANGED))
            elif re.digest in by_digest:  # a rename shows as delete + new: start from the old name
                incoming.append(Incoming(item.path, item.path, re, by_digest[re.digest], Arrival.MOVED))
            else:
                incoming.append(Incoming(item.path, item.path, re, None, Arrival.NEW))
        elif item.action is Action.CONFLICT:
            serves.add(item.path)  # both versions cross: each side keeps the other's
            if item.winner is Side.LOCAL:
                incoming.append(Incoming(item.path, item.conflict_copy, re, item.path, Arrival.CONFLICT))
            else:
                keep.append((item.path, item.conflict_copy))
                incoming.append(Incoming(item.path, item.path, re, item.path, Arrival.CONFLICT))
    return Exchange(plan, local, remote, tuple(incoming), frozenset(serves), tuple(keep),
                    tuple(deletions), tuple(applies), base,
                    frozenset(changed) if changed is not None else None)
