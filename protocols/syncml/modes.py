"""Sync modes, spelled as on the command line, with SyncML 1.2 alert codes on the wire."""

from __future__ import annotations

from enum import StrEnum


class SyncMode(StrEnum):
    TWO_WAY = "two-way"
    SLOW = "slow"
    ONE_WAY_FROM_CALLER = "one-way-from-caller"
    ONE_WAY_FROM_CALLEE = "one-way-from-callee"
    REFRESH_FROM_CALLER = "refresh-from-caller"
    REFRESH_FROM_CALLEE = "refresh-from-callee"

    @property
    def alert_code(self) -> int:
        return _ALERT_CODES[self]

    @classmethod
    def from_alert_code(cls, code: int) -> SyncMode:
        for mode, mode_code in _ALERT_CODES.items():
            if mode_code == code:
                return mode
        raise ValueError(f"unknown sync alert code {code}")

    @property
    def full(self) -> bool:
        """Compares whole stores rather than changes since the anchors."""
        return self in (SyncMode.SLOW, SyncMode.REFRESH_FROM_CALLER, SyncMode.REFRESH_FROM_CALLEE)

    @property
    def needs_anchors(self) -> bool:
        return not self.full

    @property
    def one_way(self) -> bool:
        return self in (SyncMode.ONE_WAY_FROM_CALLER, SyncMode.ONE_WAY_FROM_CALLEE)

    @property
    def callee_writes(self) -> bool:
        """The callee's store may take the caller's data."""
        return self not in (SyncMode.ONE_WAY_FROM_CALLEE, SyncMode.REFRESH_FROM_CALLEE)

    @property
    def caller_writes(self) -> bool:
        return self not in (SyncMode.ONE_WAY_FROM_CALLER, SyncMode.REFRESH_FROM_CALLER)

    @property
    def caller_changes_consumed(self) -> bool:
        """After this mode the caller's changes need not be offered again (its anchor moves)."""
        return self is not SyncMode.ONE_WAY_FROM_CALLEE

    @property
    def callee_changes_consumed(self) -> bool:
        return self is not SyncMode.ONE_WAY_FROM_CALLER


_ALERT_CODES = {
    SyncMode.TWO_WAY: 200,
    SyncMode.SLOW: 201,
    SyncMode.ONE_WAY_FROM_CALLER: 202,
    SyncMode.REFRESH_FROM_CALLER: 203,
    SyncMode.ONE_WAY_FROM_CALLEE: 204,
    SyncMode.REFRESH_FROM_CALLEE: 205,
}
