"""The session registry: every INVITE dialog as a sync session, from proceeding to history."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from protocols.sip.endpoint import Endpoint


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


class SessionRegistry:
    """Active sessions by Call-ID; every change is reported to `changed` for the store."""

    def __init__(self, *, ack_timeout: float = 32.0, bye_timeout: float = 32.0,
                 max_duration: float = 24 * 3600.0) -> None:
        self.active: dict[str, Session] = {}
        self.changed: list[SessionRecord] = []
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

    def involving(self, user: str, device: str) -> list[Session]:
        return [s for s in self.active.values() if s.involves(user, device)]

    def take_changes(self) -> list[SessionRecord]:
        changes, self.changed = self.changed, []
        return changes
