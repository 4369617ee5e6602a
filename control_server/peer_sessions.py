"""The sessions other nodes run, as their `SessionUpdate`s on the feed tell them: what a view of
the whole server (the supervisor's, or one server of a cluster) lists beside its own, and what
it ends when their node is gone. Sans-I/O."""

from __future__ import annotations

from dataclasses import replace

from .sessions import SessionRecord


class PeerSessions:
    def __init__(self) -> None:
        self._records: dict[str, SessionRecord] = {}
        self._node: dict[str, str] = {}

    def update(self, record: SessionRecord, node: str) -> None:
        if record.ended_at is None:
            self._records[record.call_id] = record
            self._node[record.call_id] = node
        else:
            self._records.pop(record.call_id, None)
            self._node.pop(record.call_id, None)

    def replace_all(self, rows: list[tuple[SessionRecord, str]]) -> None:
        """What the store says the others run, over what the feed told (it missed some)."""
        self._records = {record.call_id: record for record, _ in rows}
        self._node = {record.call_id: node for record, node in rows}

    def node_gone(self, node: str, now: float, reason: str) -> list[SessionRecord]:
        """The sessions `node` ran, ended as failed with `reason`; they leave the view."""
        ended = []
        for call_id in [c for c, n in self._node.items() if n == node]:
            del self._node[call_id]
            ended.append(replace(self._records.pop(call_id), state="failed", ended_at=now,
                                 reason=reason))
        return ended

    def active(self) -> list[SessionRecord]:
        return list(self._records.values())

    def __len__(self) -> int:
        return len(self._records)
