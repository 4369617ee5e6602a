"""A record store in memory for the engine's tests: the SyncStore interface, with the change log,
tombstones and all-or-nothing batches of the peer's SQLite store, and the few local edits the
tests make (add, replace, delete). test_memory_store.py holds it to the SQLite store's behaviour."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from protocols.syncml import Anchor, Change, Conflict, ItemMeta, Record, StaleVersion
from protocols.syncml.records import content_hash

_CONTENT_TYPES = {b"BEGIN:VCARD": "text/vcard", b"BEGIN:VCALENDAR": "text/calendar"}


@dataclass(frozen=True, slots=True)
class RecordedConflict:
    at: float
    peer: str
    conflict: Conflict


@dataclass(slots=True)
class _State:
    items: dict[str, Record]
    seq: int
    anchors: dict[str, Anchor]
    id_maps: dict[str, dict[str, str]]
    conflicts: list[RecordedConflict]

    def copy(self) -> _State:
        return _State(
            dict(self.items), self.seq, dict(self.anchors),
            {peer: dict(ids) for peer, ids in self.id_maps.items()}, list(self.conflicts),
        )  # fmt: skip


class MemoryStore:
    """One dataset's items in dicts. Reads of the clock match the SQLite store's, one per write
    and one more for a local edit's modification time, so a shared test clock ticks the same."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._state = _State({}, 0, {}, {}, [])
        self._depth = 0
        self._before_batch: _State | None = None

    @contextmanager
    def batch(self) -> Iterator[None]:
        """All the writes inside, or none of them when it raises; nested batches join the outer one."""
        if self._depth == 0:
            self._before_batch = self._state.copy()
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                assert self._before_batch is not None
                self._state = self._before_batch
            raise
        self._depth -= 1

    # --- reading -------------------------------------------------------------------------------

    def current_seq(self) -> int:
        return self._state.seq

    def meta(self, item_id: str) -> ItemMeta | None:
        record = self._state.items.get(item_id)
        return record.meta if record else None

    def get(self, item_id: str) -> Record | None:
        return self._state.items.get(item_id)

    def get_many(self, item_ids: Iterable[str]) -> dict[str, Record]:
        items = self._state.items
        return {item_id: items[item_id] for item_id in item_ids if item_id in items}

    def scan(self, *, after_seq: int | None = None, not_from: str | None = None) -> Iterator[ItemMeta]:
        metas = sorted((record.meta for record in self._state.items.values()), key=lambda meta: meta.seq)
        return iter([
            meta for meta in metas
            if (after_seq is None or meta.seq > after_seq) and (not_from is None or meta.origin != not_from)
        ])  # fmt: skip

    def items(self, *, include_deleted: bool = False) -> list[Record]:
        records = sorted(self._state.items.values(), key=lambda record: record.meta.seq)
        return [record for record in records if include_deleted or record.meta.live]

    # --- writing -------------------------------------------------------------------------------

    def apply(self, change: Change, *, expected_version: int, origin: str | None) -> ItemMeta:
        return self._write(change, expected_version, origin)

    def touch(self, item_id: str) -> None:
        record = self._state.items.get(item_id)
        if record is None:
            return
        seq = self._next_seq()
        self._state.items[item_id] = Record(dataclasses.replace(record.meta, seq=seq, origin=None), record.content)

    def mark_held(self, item_id: str, *, version: int, peer: str) -> None:
        record = self._state.items.get(item_id)
        if record is not None and record.meta.version == version:
            self._state.items[item_id] = Record(dataclasses.replace(record.meta, origin=peer), record.content)

    def add(self, content: bytes, content_type: str | None = None, *, item_id: str | None = None) -> ItemMeta:
        content_type = content_type or _sniff(content)
        item_id = item_id or _uid(content) or str(uuid.uuid4())
        current = self.meta(item_id)
        if current is not None and current.live:
            raise ValueError(f"an item {item_id!r} exists already")
        return self._write(Change(item_id, content, content_type, self._clock()), None, None)

    def replace(self, item_id: str, content: bytes) -> ItemMeta:
        current = self._live(item_id)
        return self._write(Change(item_id, content, current.content_type, self._clock()), None, None)

    def delete(self, item_id: str) -> ItemMeta:
        current = self._live(item_id)
        return self._write(Change(item_id, None, current.content_type, self._clock()), None, None)

    def _live(self, item_id: str) -> ItemMeta:
        current = self.meta(item_id)
        if current is None or current.deleted:
            raise KeyError(f"no item {item_id!r}")
        return current

    def _write(self, change: Change, expected_version: int | None, origin: str | None) -> ItemMeta:
        current = self.meta(change.item_id)
        version = current.version if current else 0
        if expected_version is not None and version != expected_version:
            raise StaleVersion(change.item_id, expected_version, version)
        seq = self._next_seq()
        meta = ItemMeta(
            change.item_id,
            change.content_type or (current.content_type if current else ""),
            version + 1,
            change.modified,
            change.is_delete,
            content_hash(change.content),
            seq,
            current.created_seq if current and current.live else seq,
            origin,
        )
        self._state.items[change.item_id] = Record(meta, change.content)
        return meta

    def _next_seq(self) -> int:
        self._clock()  # the SQLite store stamps each change-log entry with the time
        self._state.seq += 1
        return self._state.seq

    # --- anchors, id map, conflicts ------------------------------------------------------------

    def anchor(self, peer: str) -> Anchor:
        return self._state.anchors.get(peer, Anchor())

    def save_anchor(self, peer: str, anchor: Anchor) -> None:
        self._state.anchors[peer] = anchor

    def id_map(self, peer: str) -> dict[str, str]:
        return dict(self._state.id_maps.get(peer, {}))

    def map_id(self, peer: str, local_id: str, remote_id: str) -> None:
        ids = self._state.id_maps.setdefault(peer, {})
        for other in [local for local, remote in ids.items() if remote == remote_id]:
            del ids[other]
        ids[local_id] = remote_id

    def record_conflict(self, peer: str, conflict: Conflict) -> None:
        self._state.conflicts.append(RecordedConflict(self._clock(), peer, conflict))

    def conflicts(self, peer: str | None = None) -> list[RecordedConflict]:
        return [entry for entry in self._state.conflicts if peer is None or entry.peer == peer]


def _sniff(content: bytes) -> str:
    for start, content_type in _CONTENT_TYPES.items():
        if content.startswith(start):
            return content_type
    raise ValueError("the content type is not given and not recognisable")


def _uid(content: bytes) -> str | None:
    # The tests' cards are simple: one unfolded UID line.
    for line in content.split(b"\r\n"):
        if line.startswith(b"UID:"):
            return line[4:].decode()
    return None
