"""The servers of a cluster in the store they share: each one's row with its heartbeat, and the
one transaction that ends a gone server's work (its open sessions, its subscriptions, the
bindings over connections it held) and announces it.

Every time here is the store's clock, read in the statement that uses it (see
`control_server.liveness`). Taking a server for gone is a conditional UPDATE of its row that any
server may run: the row of one incarnation turns gone once, so whichever server's UPDATE changes
it is the one that ends the work and announces it, and the others' find nothing to do."""

from __future__ import annotations

from dataclasses import dataclass

from ..liveness import Member, silence_limit
from ..sessions import SessionRecord
from .database import StorePart
from .state import _SESSION_COLUMNS, _session_record

# The store's clock in Unix seconds, on each engine.
_CLOCK = {
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())::double precision",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
_MEMBER_COLUMNS = "node, incarnation, alive_at, timeout, gone_at"

# A notification to send inside the transaction, so that it is heard only if the change
# commits, and in the order of commits: (channel, payload).
Announcement = tuple[str, str]


@dataclass(frozen=True)
class GoneServersWork:
    """What a gone server left open, as the server that ended it found it."""

    sessions: list[SessionRecord]  # ended now, failed with the reason
    subscriptions: list[tuple[str, str]]  # (id, state) of those not expired, dropped now


class MembershipStore(StorePart):
    @property
    def _clock(self) -> str:
        return _CLOCK[self.database.engine]

    def now(self) -> float:
        return float(self.db.execute(f"SELECT {self._clock}").fetchone()[0])

    def member(self, node: str) -> Member | None:
        row = self.db.execute(f"SELECT {_MEMBER_COLUMNS} FROM servers WHERE node = ?",
                              (node,)).fetchone()
        return None if row is None else Member(*row)

    def members(self) -> tuple[float, list[Member]]:
        """The store's time now, and every server's row."""
        now = self.now()
        rows = self.db.execute(f"SELECT {_MEMBER_COLUMNS} FROM servers ORDER BY node")
        return now, [Member(*row) for row in rows]

    def join(self, node: str, incarnation: int, timeout: float,
             previous_gone: Announcement | None = None) -> Member | None:
        """Take `node`'s place as `incarnation`; returns the row it replaces. When that row was
        of an incarnation nobody took for gone (it was killed, and is back before the others
        noticed), `previous_gone` is announced in the same transaction: the others drop what
        they showed of it, before they hear anything of the new one."""
        clock = self._clock
        with self.db:
            # The UPDATE first, as a lock on the row: a server taking the old incarnation for
            # gone at this moment either finished (and the row says so) or finds a new one.
            self.db.execute("UPDATE servers SET node = node WHERE node = ?", (node,))
            previous = self.member(node)
            self.db.execute(
                f"INSERT INTO servers (node, incarnation, started_at, alive_at, timeout, gone_at) "
                f"VALUES (?, ?, {clock}, {clock}, ?, NULL) ON CONFLICT (node) DO UPDATE SET "
                "incarnation = excluded.incarnation, started_at = excluded.started_at, "
                "alive_at = excluded.alive_at, timeout = excluded.timeout, gone_at = NULL",
                (node, incarnation, timeout))
            if previous is not None and previous.gone_at is None and previous_gone is not None:
                self.database.announce(*previous_gone)
        return previous

    def heartbeat(self, node: str, incarnation: int) -> bool:
        """Say `incarnation` of `node` is alive; False when its row says otherwise (taken for
        gone, or another server under the same name)."""
        with self.db:
            changed = self.db.execute(
                f"UPDATE servers SET alive_at = {self._clock} "
                "WHERE node = ? AND incarnation = ? AND gone_at IS NULL", (node, incarnation))
        return changed.rowcount == 1

    def declare_gone(self, member: Member, now: float, reason: str,
                     announcement: Announcement | None = None) -> GoneServersWork | None:
        """End the work of a server found silent at `now` (the store's time of the reading):
        its open sessions fail with `reason`, its subscriptions and the bindings over
        connections it held are dropped, and `announcement` goes out, all in one transaction.
        Returns what it ended, or None when there was nothing to do: another server did it
        already, the server came back (a heartbeat since the reading), or it restarted."""
        with self.db:
            taken = self.db.execute(
                "UPDATE servers SET gone_at = ? WHERE node = ? AND incarnation = ? "
                "AND gone_at IS NULL AND alive_at < ?",
                (now, member.node, member.incarnation, silence_limit(member, now)))
            if taken.rowcount != 1:
                return None
            return self._end_work(member.node, now, reason, announcement)

    def leave(self, node: str, incarnation: int, reason: str,
              announcement: Announcement | None = None) -> GoneServersWork | None:
        """A server stopping cleanly takes itself for gone now, as the others would after its
        timeout, so they act at once. None if it was taken for gone already."""
        with self.db:
            now = self.now()
            left = self.db.execute(
                "UPDATE servers SET gone_at = ? WHERE node = ? AND incarnation = ? "
                "AND gone_at IS NULL", (now, node, incarnation))
            if left.rowcount != 1:
                return None
            return self._end_work(node, now, reason, announcement)

    def _end_work(self, node: str, now: float, reason: str,
                  announcement: Announcement | None) -> GoneServersWork:
        """Within the transaction that turned `node` gone: what it left open ends."""
        self.db.execute(
            "UPDATE sessions SET state = 'failed', reason = ?, ended_at = ? "
            "WHERE ended_at IS NULL AND node = ?", (reason, now, node))
        ended = [_session_record(row) for row in self.db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE node = ? AND ended_at = ? "
            "AND reason = ?", (node, now, reason))]
        subscriptions = [(row[0], row[1]) for row in self.db.execute(
            "SELECT id, state FROM subscriptions WHERE node = ? AND expires_at > ? "
            "ORDER BY id", (node, now))]
        self.db.execute("DELETE FROM subscriptions WHERE node = ?", (node,))
        # A device over UDP stays reachable through any server; one over a connection to
        # the gone server lost it with the server.
        self.db.execute("DELETE FROM bindings WHERE node = ? AND transport <> 'udp'", (node,))
        if announcement is not None:
            self.database.announce(*announcement)
        return GoneServersWork(ended, subscriptions)
