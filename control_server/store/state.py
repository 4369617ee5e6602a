"""The state that changes every second: bindings of online devices and sessions (active, then
history). The server writes it behind, in one batch per flush, so that a restart loses no online
device; admins read it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from protocols.sip.endpoint import Endpoint

from ..location import Binding
from ..sessions import INTERRUPTED_REASON, SessionRecord
from .database import StorePart
from .refresh_writes import RefreshWrites
from .write_behind import PendingWrites


@dataclass(frozen=True, slots=True)
class HistoryQuery:
    """Which ended sessions to list: every filter optional; times are Unix seconds."""

    device: str | None = None  # USER/DEVICE, caller or callee
    user: str | None = None  # caller or callee belongs to this user
    outcome: str | None = None  # "ended" or "failed"
    since: float | None = None
    until: float | None = None
    limit: int = 100
    offset: int = 0


class StateStore(StorePart):
    def write_batch(
        self,
        bindings: Iterable[Binding],
        unbound: Iterable[tuple[str, str]],
        sessions: Iterable[SessionRecord],
        new_devices: Iterable[tuple[str, str, float]],
        node: str = "",
        *,
        ended_seen: Mapping[tuple[str, str], float] | None = None,
        lag: float = 0.0,
    ) -> None:
        """One transaction for everything the server `node` changed since its last flush.

        The devices a first REGISTER created, and every device's last-seen time, belong to the
        directory's table but change at the pace of registrations: they ride in this batch,
        and so does the last-seen time of each device whose binding ended (`ended_seen`).
        On a shared store a device that went offline here loses only the binding this node
        holds: where it has registered since through another server, that binding stays.

        `lag` is the server's refresh write lag (store/refresh_writes.py): each row is held
        past its expiry for the refreshes the server may leave unwritten after it."""
        bindings = list(bindings)
        held_until = RefreshWrites(lag).stored_expiry
        with self.db:
            self.db.executemany(
                'INSERT INTO devices ("user", name, created_at) VALUES (?, ?, ?) '
                "ON CONFLICT DO NOTHING",
                new_devices,
            )
            self.db.executemany(
                _UPSERT_BINDING,
                [
                    (
                        b.user, b.device, b.contact, b.source.transport, b.source.host,
                        b.source.port, b.user_agent, b.registered_at, b.last_seen,
                        b.expires_at, b.call_id, b.cseq, node or b.node, held_until(b),
                    )
                    for b in bindings
                ],
            )
            seen = [(b.last_seen, b.user, b.device) for b in bindings]
            self.db.executemany('UPDATE devices SET last_seen=? WHERE "user"=? AND name=?', seen)
            # Never back: on a shared store another server may have seen the device since.
            self.db.executemany(
                'UPDATE devices SET last_seen=? WHERE "user"=? AND name=? '
                "AND (last_seen IS NULL OR last_seen < ?)",
                [(at, user, device, at) for (user, device), at in (ended_seen or {}).items()],
            )
            mine, ours = self._mine(node)
            self.db.executemany(
                f'DELETE FROM bindings WHERE "user"=? AND device=?{mine}',
                [(user, device, *ours) for user, device in unbound],
            )
            self.db.executemany(
                _UPSERT_SESSION,
                [
                    (
                        s.call_id, s.caller, s.callee, s.data_type, s.protocol, s.dataset,
                        s.state, s.status, s.reason, s.started_at, s.established_at,
                        s.ended_at, json.dumps(s.progress) if s.progress else None,
                        s.started_by, node,
                    )
                    for s in sessions
                ],
            )

    def write_pending(self, pending: PendingWrites, node: str = "", lag: float = 0.0) -> None:
        """All the server kept for the store, written as its last flush left it."""
        if pending.subscriptions or pending.ended_subscriptions:
            self.write_subscriptions(pending.subscriptions.values(), pending.ended_subscriptions,
                                     node)
        self.write_batch(pending.bound.values(), pending.unbound, pending.sessions.values(),
                         pending.new_devices, node, ended_seen=pending.ended_seen, lag=lag)

    def _mine(self, node: str | None) -> tuple[str, tuple]:
        """The condition (and its argument) for rows of `node`: on a store only one server uses,
        every row is its own, whatever name it had when it wrote it (a port picked anew)."""
        if not node or not self.database.shared:
            return "", ()
        return " AND node IN (?, '')", (node,)

    def write_subscriptions(self, kept: Iterable[tuple[str, str, float]],
                            ended: Iterable[str], node: str = "") -> None:
        """Presence subscriptions made, refreshed (id, state, expiry) or ended since the last
        flush by the server `node`: a restarted server keeps notifying its watchers, and on a
        shared store a gone server's subscriptions are known by its name."""
        with self.db:
            self.db.executemany(
                "INSERT INTO subscriptions (id, state, expires_at, node) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET state=excluded.state, "
                "expires_at=excluded.expires_at, node=excluded.node",
                [(*row, node) for row in kept])
            self.db.executemany("DELETE FROM subscriptions WHERE id=?", [(i,) for i in ended])

    def subscriptions(self, now: float, node: str | None = None) -> list[tuple[str, str]]:
        """(id, state) of the subscriptions not yet expired; on a shared store with `node`,
        only those that server holds (and those of before servers had names)."""
        mine, args = self._mine(node)
        return list(self.db.execute(
            f"SELECT id, state FROM subscriptions WHERE expires_at > ?{mine} ORDER BY id",
            (now, *args)))

    def bindings(self, now: float | None = None, *, held: bool = False) -> list[Binding]:
        """The stored bindings, by user and device, each with the node holding it; with `now`,
        only those the store still holds (the server may not have written the last refreshes
        of a device, and each row allows for them). Each binding has the expiry of the refresh
        last written, or with `held` the latest its registration may run to: what a server
        starting up keeps it for."""
        query = f"SELECT {_BINDING_COLUMNS} FROM bindings"
        args: tuple = ()
        if now is not None:
            query += " WHERE (expires_at > ? OR held_until > ?)"
            args = (now, now)
        return [
            Binding(
                user=u, device=d, contact=c, source=Endpoint(t, h, p), user_agent=ua,
                registered_at=ra, last_seen=ls, expires_at=max(ex, hu) if held else ex,
                call_id=ci, cseq=cs, node=n,
            )
            for u, d, c, t, h, p, ua, ra, ls, ex, ci, cs, n, hu in self.db.execute(
                query + ' ORDER BY "user", device', args
            )
        ]

    def sessions(self, *, history: bool, limit: int = 100) -> list[SessionRecord]:
        where = "ended_at IS NOT NULL" if history else "ended_at IS NULL"
        order = "ended_at DESC" if history else "started_at"
        rows = self.db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {where} ORDER BY {order} LIMIT ?",
            (limit,)
        )
        return [_session_record(r) for r in rows]

    def open_sessions_elsewhere(self, node: str) -> list[tuple[SessionRecord, str]]:
        """On a shared store, the sessions other servers run now, each with its server's name:
        what a server shows of the others when it starts or its feed was away."""
        rows = self.db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE ended_at IS NULL AND node <> ? "
            "ORDER BY started_at", (node,))
        return [(_session_record(row), row[14]) for row in rows]

    def end_interrupted_sessions(self, now: float, node: str | None = None) -> list[SessionRecord]:
        """Sessions still open when the server last stopped cannot be resumed: close them, and
        return them as closed, so that what their devices report late can correct them.

        On a shared store, only those of `node` (and those of before servers had names): the
        sessions other servers of a cluster run are theirs."""
        mine, args = self._mine(node)
        with self.db:
            self.db.execute(
                "UPDATE sessions SET state='failed', reason=?, ended_at=? "
                f"WHERE ended_at IS NULL{mine}",
                (INTERRUPTED_REASON, now, *args),
            )
            rows = self.db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE ended_at = ? AND reason = ?{mine}",
                (now, INTERRUPTED_REASON, *args),
            )
            return [_session_record(r) for r in rows]

    def session_history(self, query: HistoryQuery) -> tuple[list[SessionRecord], int]:
        """Ended sessions, newest first, filtered and paged; with how many match in all."""
        where, args = ["ended_at IS NOT NULL"], []
        if query.device:
            where.append("(caller = ? OR callee = ?)")
            args += [query.device, query.device]
        if query.user:
            where.append("(caller LIKE ? ESCAPE '\\' OR callee LIKE ? ESCAPE '\\')")
            pattern = query.user.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
            args += [pattern, pattern]
        if query.outcome:
            where.append("state = ?")
            args.append(query.outcome)
        if query.since is not None:
            where.append("started_at >= ?")
            args.append(query.since)
        if query.until is not None:
            where.append("started_at < ?")
            args.append(query.until)
        condition = " AND ".join(where)
        total = self.db.execute(f"SELECT COUNT(*) FROM sessions WHERE {condition}", args).fetchone()[0]
        rows = self.db.execute(
            f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE {condition} "
            "ORDER BY ended_at DESC LIMIT ? OFFSET ?",
            [*args, query.limit, query.offset],
        )
        return [_session_record(r) for r in rows], total


_BINDING_COLUMNS = ('"user", device, contact, transport, host, port, user_agent, registered_at, '
                    "last_seen, expires_at, call_id, cseq, node, held_until")
_UPSERT_BINDING = (
    f"INSERT INTO bindings ({_BINDING_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    'ON CONFLICT ("user", device) DO UPDATE SET '
    + ", ".join(f"{c}=excluded.{c}" for c in _BINDING_COLUMNS.split(", ")[2:])
)
_SESSION_COLUMNS = ("call_id, caller, callee, data_type, protocol, dataset, state, status, reason, "
                    "started_at, established_at, ended_at, progress, started_by, node")
_UPSERT_SESSION = (
    f"INSERT INTO sessions ({_SESSION_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
    "ON CONFLICT (call_id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in _SESSION_COLUMNS.split(", ")[1:])
)


def _session_record(r: tuple) -> SessionRecord:
    return SessionRecord(
        call_id=r[0], caller=r[1], callee=r[2], data_type=r[3], protocol=r[4],
        dataset=r[5], state=r[6], status=r[7], reason=r[8], started_at=r[9],
        established_at=r[10], ended_at=r[11],
        progress=json.loads(r[12]) if r[12] else {}, started_by=r[13],
    )
