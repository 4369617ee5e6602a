"""The progress report a peer sends in an in-dialog INFO while a session transfers data."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from .errors import InvalidValue
from .fields import SESSION_ID, check_count, check_member, check_pattern, check_reason


MAX_COUNTERS = 16
_COUNTER_NAME = re.compile(r"[a-z][A-Za-z0-9]{0,31}")


class Phase(StrEnum):
    CONNECTING = "connecting"
    SIGNATURE = "signature"
    DELTA = "delta"
    APPLYING = "applying"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ProgressReport:
    """Where a session stands; a total is None until known, and `error` is set exactly when failed."""

    session_id: str
    phase: Phase
    bytes_done: int = 0
    bytes_total: int | None = None
    records_done: int = 0
    records_total: int | None = None
    error: str | None = None
    # What a protocol also counts, as (name, value) pairs: ("bytesLiteral", 1024), ...
    counters: tuple[tuple[str, int], ...] = ()

    def __post_init__(self) -> None:
        check_pattern("sessionId", self.session_id, SESSION_ID, "a session id")
        phase = check_member("phase", self.phase, Phase)
        _check_done_of_total("bytes", self.bytes_done, self.bytes_total)
        _check_done_of_total("records", self.records_done, self.records_total)
        if phase is Phase.FAILED:
            check_reason("error", self.error)
        elif self.error is not None:
            raise InvalidValue("error", f"only a failed session has an error, not one in phase {phase}")
        object.__setattr__(self, "phase", phase)
        object.__setattr__(self, "counters", _check_counters(self.counters))


def _check_counters(counters: object) -> tuple[tuple[str, int], ...]:
    pairs = tuple(tuple(pair) for pair in counters)  # type: ignore[union-attr]
    if len(pairs) > MAX_COUNTERS:
        raise InvalidValue("counter", f"at most {MAX_COUNTERS} counters, not {len(pairs)}")
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise InvalidValue("counter", "a counter name appears twice")
    for name, value in pairs:
        if not isinstance(name, str) or not _COUNTER_NAME.fullmatch(name):
            raise InvalidValue("counter", f"{name!r} is not a counter name (like bytesLiteral)")
        check_count("counter", value)
    return pairs  # type: ignore[return-value]


def _check_done_of_total(what: str, done: object, total: object) -> None:
    done = check_count(f"{what}Done", done)
    if total is not None and done > check_count(f"{what}Total", total):
        raise InvalidValue(f"{what}Done", f"{done} is more than the total of {total}")
