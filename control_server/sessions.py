"""The session registry: every INVITE dialog as a sync session, from proceeding to history."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

from protocols.sip.endpoint import Endpoint


# What the history says of a session the server was running when it stopped; its devices may
# still tell how it really ended (a late final progress report and BYE), for LATE_REPORT_WINDOW.
INTERRUPTED_REASON = "control server restarted"
LATE_REPORT_WINDOW = 3600.0


class SessionState(Enum):
    PROCEEDING = "proceeding"
    ESTABLISHED = "established"
    ENDED = "ended"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A session as the store and the admin see it."""

    call_id: str
    caller: str
    callee: str
    data_type: str | None
    protocol: str | None
    dataset: str | None
    state: str
    status: int | None
    reason: str
    started_at: float
    established_at: float | None
    ended_at: float | None
    progress: dict = field(default_factory=dict)
    started_by: str = ""  # "daemon": a live sync started it by itself

    @property
    def duration(self) -> float | None:
        if self.ended_at is None:
            return None
        return self.ended_at - (self.established_at or self.started_at)


@dataclass(eq=False)
class Session:
    """A live session: what the proxy needs to route in-dialog requests, and what admins see."""

    call_id: str
    caller: tuple[str, str]
    callee: tuple[str, str]
    caller_tag: str
    caller_endpoint: Endpoint
    started_at: float
    callee_endpoint: Endpoint | None = None
    callee_tag: str = ""
    data_type: str | None = None
    protocol: str | None = None
    dataset: str | None = None
    state: SessionState = SessionState.PROCEEDING
    status: int | None = None
    reason: str = ""
    established_at: float | None = None
    acked_at: float | None = None
    bye_at: float | None = None
    bye_reason: str = ""
    ended_at: float | None = None
    progress: dict = field(default_factory=dict)
    started_by: str = ""

    def involves(self, user: str, device: str) -> bool:
        return (user, device) in (self.caller, self.callee)

    def record(self) -> SessionRecord:
        return SessionRecord(
            call_id=self.call_id,
            caller="/".join(self.caller),
            callee="/".join(self.callee),
            data_type=self.data_type,
            protocol=self.protocol,
            dataset=self.dataset,
            state=self.state.value,
            status=self.status,
            reason=self.reason,
            started_at=self.started_at,
            established_at=self.established_at,
            ended_at=self.ended_at,
            progress=dict(self.progress),
            started_by=self.started_by,
        )


@dataclass(eq=False)
class _Interrupted:
    """A session a restart cut off, as the history now holds it."""

    record: SessionRecord
    restarted_at: float
    progress_cseq: int = 0  # the CSeq of the INFO whose progress the record holds


class SessionRegistry:
    """Active sessions by Call-ID; every change is reported to `changed` for the store."""

    def __init__(self, *, ack_timeout: float = 32.0, bye_timeout: float = 32.0,
                 max_duration: float = 24 * 3600.0) -> None:
        self.active: dict[str, Session] = {}
        self.changed: list[SessionRecord] = []
        # Sessions a restart cut off, as the history holds them, with when the restart was.
        self.interrupted: dict[str, _Interrupted] = {}
        self.ack_timeout = ack_timeout
        self.bye_timeout = bye_timeout
        self.max_duration = max_duration

    def start(self, session: Session) -> None:
        self.active[session.call_id] = session
        self.changed.append(session.record())

    def get(self, call_id: str) -> Session | None:
        return self.active.get(call_id)

    def established(self, session: Session, callee: tuple[str, str], callee_tag: str,
                    endpoint: Endpoint, now: float) -> None:
        session.callee, session.callee_tag, session.callee_endpoint = callee, callee_tag, endpoint
        session.state = SessionState.ESTABLISHED
        session.status = 200
        session.established_at = now
        self.changed.append(session.record())

    def update(self, session: Session) -> None:
        self.changed.append(session.record())

    def finish(self, session: Session, now: float, *, status: int | None = None,
               reason: str = "", failed: bool = False) -> None:
        """Move a session to history, as ended (normal BYE) or failed (with status and reason)."""
        if self.active.pop(session.call_id, None) is None:
            return
        session.state = SessionState.FAILED if failed else SessionState.ENDED
        if status is not None:
            session.status = status
        session.reason = reason or session.reason
        session.ended_at = now
        self.changed.append(session.record())

    def orphans(self, now: float) -> list[tuple[Session, str]]:
        """Sessions nobody will end: no ACK, an unanswered BYE, or older than the limit."""
        found = []
        for session in self.active.values():
            if session.state is SessionState.ESTABLISHED:
                assert session.established_at is not None
                if session.acked_at is None and now - session.established_at > self.ack_timeout:
                    found.append((session, "no ACK for the 200 OK"))
                elif session.bye_at is not None and now - session.bye_at > self.bye_timeout:
                    found.append((session, "BYE was never answered"))
                elif now - session.established_at > self.max_duration:
                    found.append((session, "no BYE within the longest session allowed"))
        return found

    def interrupted_by_restart(self, records: list[SessionRecord], now: float) -> None:
        """Sessions the previous run left open, now filed as failed: what their devices report
        late (`late_report`) may still correct them."""
        self.interrupted.update((record.call_id, _Interrupted(record, now)) for record in records)

    def interrupted_session(self, call_id: str, now: float) -> SessionRecord | None:
        entry = self.interrupted.get(call_id)
        if entry is None:
            return None
        if now - entry.restarted_at > LATE_REPORT_WINDOW:
            del self.interrupted[call_id]
            return None
        return entry.record

    def late_report(self, call_id: str, cseq: int, now: float, *, progress: dict | None = None,
                    ended: bool = False, failure: str = "") -> None:
        """Correct the history of a session a restart cut off, from what its devices say: its last
        progress, and its BYE (with the reason of a failure). Reports come in any order (the
        caller re-sends, UDP retransmits): the progress of the highest CSeq is the one kept."""
        entry = self.interrupted[call_id]
        record = entry.record
        if progress is not None and cseq > entry.progress_cseq:
            record = dataclasses.replace(record, progress=progress)
            entry.progress_cseq = cseq
        if ended and record.reason == INTERRUPTED_REASON:
            record = dataclasses.replace(
                record, state=(SessionState.FAILED if failure else SessionState.ENDED).value,
                reason=failure or "ended by BYE (reported after the control server restarted)",
                ended_at=now)
        # Kept for the rest of the window: a report may still come after the BYE, and counts.
        if record is not entry.record:
            entry.record = record
            self.changed.append(record)

    def involving(self, user: str, device: str) -> list[Session]:
        return [s for s in self.active.values() if s.involves(user, device)]

    def take_changes(self) -> list[SessionRecord]:
        changes, self.changed = self.changed, []
        return changes
