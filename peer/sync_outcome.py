"""The outcome of one sync run as the calling device sees it (with the exit code a script
reads), and the progress reports it makes on the way."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from session_xml import Phase, ProgressReport

# Exit codes of `sipsync-peer invite`, part of the command-line contract.
EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_UNREACHABLE = 4


@dataclass(frozen=True)
class SessionOutcome:
    ok: bool
    exit_code: int
    reason: str
    status: int = 0  # the SIP status the INVITE ended with (200 once established)
    call_id: str = ""
    bytes: int = 0
    files: int = 0
    records: int = 0
    detail: str = ""
    seconds: float = 0.0
    counts_records: bool = False  # a record dataset counts records moved, a folder its files
    skipped: tuple[str, ...] = ()  # what a folder sync did not carry, each "path (reason)"

    def line(self) -> str:
        """The one line a script reads."""
        if self.ok:
            moved = f"{self.records} record(s)" if self.counts_records else f"{self.files} file(s)"
            line = (f"done: {moved}, {self.bytes} bytes in {self.seconds:.2f} s "
                    f"(session {self.call_id})")
            if self.skipped:
                shown = "; ".join(self.skipped[:3])
                more = f"; and {len(self.skipped) - 3} more" if len(self.skipped) > 3 else ""
                line += f"; {len(self.skipped)} skipped: {shown}{more}"
            return line
        if self.exit_code == EXIT_REFUSED:
            return f"refused: {self.status} {self.reason}"
        return f"failed: {self.reason}"

    def as_dict(self) -> dict:
        return {"ok": self.ok, "exit_code": self.exit_code, "reason": self.reason,
                "status": self.status, "call_id": self.call_id, "bytes": self.bytes,
                "files": self.files, "records": self.records, "detail": self.detail,
                "seconds": round(self.seconds, 3), "skipped": list(self.skipped)}


ProgressCallback = Callable[[ProgressReport], None]


def report(session_id: str, phase: Phase, done: int = 0, total: int | None = None,
           error: str | None = None) -> ProgressReport:
    return ProgressReport(session_id=session_id, phase=phase, bytes_done=done,
                          bytes_total=total if total is None or total >= done else done,
                          error=error)
