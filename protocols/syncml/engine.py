"""The sync engine, sans-I/O: a caller session and a callee session that take message bytes in
and hand message bytes out, reading and writing the local store through `SyncStore`.

A sync is four packages: the caller's Alert; the callee's Alert answer; the caller's changes (or an
inventory of hashes, answered by a Get for the items needed); the callee's statuses, id maps and
changes; the caller's statuses; the callee's final acknowledgement. The callee resolves conflicts.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Iterable

from protocols.syncml.conflicts import Conflict, ConflictPolicy, Resolution, Side, Version, deferred, resolve
from protocols.syncml.messages import (
    Alert,
    Command,
    Entry,
    Get,
    Header,
    Inventory,
    Item,
    ItemCommand,
    Map,
    MapItem,
    Message,
    MessageError,
    Status,
    Sync,
    decode,
    encode,
)
from protocols.syncml.modes import SyncMode
from protocols.syncml.packing import DEFAULT_MAX_BYTES, DEFAULT_MAX_ITEMS, GetId, Unit, split_package
from protocols.syncml.records import Anchor, Change, ChangeKind, ItemMeta, Record, content_hash
from protocols.syncml.store import StaleVersion, SyncStore

# Status codes, as in SyncML 1.2
OK = 200
ADDED = 201
CALLER_WON = 208
DUPLICATED = 209
BAD_REQUEST = 400
FORBIDDEN = 403
NOT_FOUND = 404
NOT_ALLOWED = 405
CONCURRENT_EDIT = 409  # the receiver's item changed during the sync: offered again next time
CALLEE_WON = 419
SERVER_ERROR = 500
REFRESH_REQUIRED = 508  # anchors do not match: slow sync


class SessionState(Enum):
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class SyncError(Exception):
    """Why a session failed; nothing of the failed package was written and anchors did not move."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code} {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ItemError:
    """An item command refused by one side, with the Status code it got."""

    item_id: str
    code: int
    refused_by: Side
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SyncReport:
    role: Side
    mode: SyncMode | None
    items_sent: int
    items_applied: int
    conflicts: tuple[Conflict, ...]
    item_errors: tuple[ItemError, ...]
    messages_sent: int
    bytes_sent: int
    messages_received: int
    bytes_received: int


@dataclass(slots=True)
class _Offer:
    """An item the caller offered, keyed by the callee's id for it."""

    source: str
    hash: str
    modified: float
    deleted: bool
    content_type: str = ""
    kind: ChangeKind | None = None  # None: only an inventory entry, content not sent yet
    content: bytes | None = None
    ref: tuple[int, int] | None = None  # (MsgID, CmdID) of the item command
    names_our_id: bool = False  # the caller gave our id (Target), so it claims we hold the item

    @property
    def version(self) -> Version:
        return Version(self.hash, self.modified, self.deleted)


@dataclass(slots=True)
class _Decision:
    """What the callee does with one item."""

    expected: ItemMeta | None  # the callee's state the decision rests on
    take: bool = False  # write the caller's version here
    send: bool = False  # send our version to the caller
    drop: bool = False  # delete here (refresh from caller)
    drop_remote: bool = False  # tell the caller to delete an item we never had (refresh from callee)
    copy_of: Side | None = None  # keep-both: which side's version becomes the copy
    conflict: Conflict | None = None
    touch: bool = False  # keep our change for a later sync
    code: int = OK

    @property
    def needs_content(self) -> bool:
        return self.take or self.copy_of is Side.CALLER


def _version(meta: ItemMeta | None) -> Version:
    if meta is None:
        return Version("", 0.0, True)
    return Version(meta.hash, meta.modified, meta.deleted)


class _Session:
    role: Side

    def __init__(
        self,
        store: SyncStore,
        *,
        device: str,
        peer: str | None,
        dataset: str,
        session_id: str,
        max_message_bytes: int,
        max_items_per_message: int,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.device = device
        self.peer = peer
        self.dataset = dataset
        self.session_id = session_id
        self.state = SessionState.RUNNING
        self.error: SyncError | None = None
        self.mode: SyncMode | None = None
        self._max_bytes = max_message_bytes
        self._max_items = max_items_per_message
        self._clock = clock
        self._out: list[bytes] = []
        self._msg_id = 0
        self._expected_msg_id = 1
        self._pending: list[tuple[int, Command]] = []
        self._sent_items: dict[tuple[int, int], str] = {}
        self._local_to_remote: dict[str, str] = {}
        self._remote_to_local: dict[str, str] = {}
        self._conflicts: list[Conflict] = []
        self._item_errors: list[ItemError] = []
        self._items_sent = self._items_applied = 0
        self._messages_sent = self._bytes_sent = self._messages_received = self._bytes_received = 0

    # --- the sans-I/O surface -----------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        """Take one message from the peer. Messages after the session ended are ignored."""
        if self.state is not SessionState.RUNNING:
            return
        self._messages_received += 1
        self._bytes_received += len(data)
        try:
            message = decode(data)
            self._check_header(message.header)
        except MessageError as error:
            self._fail(error.code, error.reason)
            return
        self._pending.extend((message.header.msg_id, command) for command in message.commands)
        if not message.final:
            return
        package, self._pending = self._pending, []
        try:
            self._on_package(package)
        except MessageError as error:
            self._fail(error.code, error.reason)
        except SyncError as error:
            self._fail(error.code, error.reason)
        except Exception as error:  # a store failure must end the session, not the peer
            self._fail(SERVER_ERROR, f"{type(error).__name__}: {error}")

    def data_to_send(self) -> list[bytes]:
        """The messages to put on the wire, in order; each is one frame."""
        out, self._out = self._out, []
        return out

    @property
    def report(self) -> SyncReport:
        return SyncReport(
            self.role,
            self.mode,
            self._items_sent,
            self._items_applied,
            tuple(self._conflicts),
            tuple(self._item_errors),
            self._messages_sent,
            self._bytes_sent,
            self._messages_received,
            self._bytes_received,
        )

    # --- shared machinery ----------------------------------------------------------------------

    @property
    def _other(self) -> Side:
        return Side.CALLEE if self.role is Side.CALLER else Side.CALLER

    def _check_header(self, header: Header) -> None:
        if header.session_id != self.session_id:
            raise MessageError(f"unknown session {header.session_id[:64]!r}", NOT_FOUND)
        if header.msg_id != self._expected_msg_id:
            raise MessageError(f"message {header.msg_id} out of order, expected {self._expected_msg_id}")
        if header.target != self.device:
            raise MessageError(f"message is for {header.target[:64]!r}, not {self.device!r}", NOT_FOUND)
        if header.source != self.peer:
            raise MessageError(f"message from {header.source[:64]!r}, expected {self.peer!r}", FORBIDDEN)
        self._expected_msg_id += 1

    def _send_package(self, units: Iterable[Unit]) -> None:
        messages = split_package(units, self.dataset, max_bytes=self._max_bytes, max_items=self._max_items)
        for index, commands in enumerate(messages):
            self._msg_id += 1
            for command in commands:
                if isinstance(command, Sync):
                    for sub in command.commands:
                        self._sent_items[(self._msg_id, sub.cmd_id)] = sub.item.source
                    self._items_sent += len(command.commands)
            header = Header(self.session_id, self._msg_id, self.device, self.peer or "")
            data = encode(Message(header, commands, final=index == len(messages) - 1))
            self._messages_sent += 1
            self._bytes_sent += len(data)
            self._out.append(data)

    def _fail(self, code: int, reason: str, *, tell_peer: bool = True) -> None:
        self.state = SessionState.FAILED
        self.error = SyncError(code, reason)
        if tell_peer:
            status = Status(0, self._expected_msg_id - 1, 0, "SyncHdr", code, reason=reason[:500])
            self._send_package([status])

    def _load_id_map(self) -> None:
        assert self.peer is not None
        self._local_to_remote = self.store.id_map(self.peer)
        self._remote_to_local = {remote: local for local, remote in self._local_to_remote.items()}

    def _local_id(self, source: str, target: str) -> str:
        """Our id for an item the peer names `source` (and `target`, when it knows our id)."""
        return target or self._remote_to_local.get(source, source)

    def _item_command(self, record: Record, kind: ChangeKind) -> ItemCommand:
        meta = record.meta
        content = None if kind is ChangeKind.DELETE else record.content
        item = Item(meta.id, self._local_to_remote.get(meta.id, ""), meta.content_type, meta.modified, content)
        return ItemCommand(0, kind, item)

    def _handle_statuses(self, package: list[tuple[int, Command]]) -> None:
        for _, command in package:
            if not isinstance(command, Status):
                continue
            if command.cmd_ref == 0 and command.code >= 300:
                self._fail(command.code, f"peer refused: {command.reason}", tell_peer=False)
                raise _Stopped
            if command.cmd in (ChangeKind.ADD.value, ChangeKind.REPLACE.value, ChangeKind.DELETE.value):
                local_id = self._sent_items.get((command.msg_ref, command.cmd_ref))
                if local_id is None:
                    continue  # a Status for nothing we sent: ignore rather than trust it
                if command.code == CONCURRENT_EDIT:
                    # the peer kept its own edit; offer ours again so the next sync decides
                    self.store.touch(local_id)
                if command.code >= 300 and command.code not in (CALLEE_WON, REFRESH_REQUIRED):
                    self._item_errors.append(ItemError(local_id, command.code, self._other, command.reason))

    def _handle_maps(self, package: list[tuple[int, Command]]) -> list[Status]:
        """Id maps from the peer: its id for one of our items. Unknown items are refused."""
        assert self.peer is not None
        statuses = []
        for msg_id, command in package:
            if not isinstance(command, Map):
                continue
            code = OK
            for map_item in command.items:
                meta = self.store.meta(map_item.target)
                if meta is None or meta.deleted:
                    code = NOT_FOUND
                    self._item_errors.append(ItemError(map_item.target, NOT_FOUND, self.role, "Map for unknown item"))
                    continue
                self.store.map_id(self.peer, map_item.target, map_item.source)
                self._local_to_remote[map_item.target] = map_item.source
                self._remote_to_local[map_item.source] = map_item.target
            statuses.append(Status(0, msg_id, command.cmd_id, "Map", code))
        return statuses

    def _on_package(self, package: list[tuple[int, Command]]) -> None:
        try:
            self._handle_package(package)
        except _Stopped:
            pass

    def _handle_package(self, package: list[tuple[int, Command]]) -> None:
        raise NotImplementedError

    @staticmethod
    def _require_only(package: list[tuple[int, Command]], allowed: tuple[type, ...]) -> None:
        for _, command in package:
            if not isinstance(command, (Status, *allowed)):
                raise MessageError(f"<{type(command).__name__}> is not allowed here", NOT_ALLOWED)


class _Stopped(Exception):
    """The peer ended the session; stop handling the package."""


class SyncCaller(_Session):
    """The side that starts the sync (the SyncML client). Its first message is ready at once."""

    role = Side.CALLER

    def __init__(
        self,
        store: SyncStore,
        *,
        device: str,
        peer: str,
        dataset: str,
        mode: SyncMode = SyncMode.TWO_WAY,
        session_id: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_BYTES,
        max_items_per_message: int = DEFAULT_MAX_ITEMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            store,
            device=device,
            peer=peer,
            dataset=dataset,
            session_id=session_id or uuid.uuid4().hex,
            max_message_bytes=max_message_bytes,
            max_items_per_message=max_items_per_message,
            clock=clock,
        )
        self.requested_mode = mode
        self._anchor = store.anchor(peer)
        self._next = uuid.uuid4().hex
        store.save_anchor(peer, dataclasses.replace(self._anchor, next=self._next))
        self._start_seq = 0
        self._phase = "alert"
        self._load_id_map()
        last = self._anchor.last if mode.needs_anchors else ""
        self._send_package([Alert(0, mode, dataset, last, self._next)])

    def _handle_package(self, package: list[tuple[int, Command]]) -> None:
        self._handle_statuses(package)
        if self._phase == "alert":
            self._on_alert(package)
        elif self._phase == "changes":
            if any(isinstance(command, Get) for _, command in package):
                self._on_get(package)
            else:
                self._on_changes(package)
        elif self._phase == "statuses":
            self._require_only(package, ())
            self._commit()

    def _on_alert(self, package: list[tuple[int, Command]]) -> None:
        self._require_only(package, (Alert,))
        alerts = [command for _, command in package if isinstance(command, Alert)]
        if len(alerts) != 1 or alerts[0].next != self._next or alerts[0].dataset != self.dataset:
            raise MessageError("expected one Alert answering ours")
        mode = alerts[0].mode
        if mode is not self.requested_mode and mode is not SyncMode.SLOW:
            raise MessageError(f"callee answered {mode.value} to {self.requested_mode.value}", NOT_ALLOWED)
        self.mode = mode
        self._start_seq = self.store.current_seq()
        if mode.full:
            metas = list(self.store.scan())
        else:
            metas = list(self.store.scan(after_seq=self._anchor.last_seq, not_from=self.peer))
        units: list[Unit]
        if mode in (SyncMode.TWO_WAY, SyncMode.ONE_WAY_FROM_CALLER):
            records = self.store.get_many(meta.id for meta in metas)
            units = [self._command_for(records[meta.id]) for meta in metas if meta.id in records]
        else:
            units = [
                Entry(m.id, self._local_to_remote.get(m.id, ""), m.hash, m.modified, m.deleted) for m in metas
            ]
        self._phase = "changes"
        self._send_package(units)

    def _command_for(self, record: Record) -> ItemCommand:
        meta = record.meta
        if meta.deleted:
            kind = ChangeKind.DELETE
        elif meta.created_seq > self._anchor.last_seq or self.mode is not None and self.mode.full:
            kind = ChangeKind.ADD
        else:
            kind = ChangeKind.REPLACE
        return self._item_command(record, kind)

    def _on_get(self, package: list[tuple[int, Command]]) -> None:
        self._require_only(package, (Get,))
        units: list[Unit] = []
        for msg_id, command in package:
            if not isinstance(command, Get):
                continue
            records = self.store.get_many(command.ids)
            for item_id in command.ids:
                if item_id in records:
                    units.append(self._command_for(records[item_id]))
                else:
                    units.append(Status(0, msg_id, command.cmd_id, "Get", NOT_FOUND, ref=item_id))
        self._send_package(units)

    def _on_changes(self, package: list[tuple[int, Command]]) -> None:
        self._require_only(package, (Sync, Map))
        statuses: list[Unit] = list(self._handle_maps(package))
        assert self.mode is not None
        with self.store.batch():
            for msg_id, command in package:
                if isinstance(command, Sync):
                    for sub in command.commands:
                        statuses.append(self._apply(msg_id, sub))
        self._phase = "statuses"
        self._send_package(statuses)

    def _apply(self, msg_id: int, command: ItemCommand) -> Status:
        """Write one item from the callee unless our copy changed since the sync started."""
        assert self.mode is not None and self.peer is not None
        item = command.item
        local_id = self._local_id(item.source, item.target)
        code = OK
        current = self.store.meta(local_id)
        if not self.mode.caller_writes:
            code = NOT_ALLOWED
        elif current is not None and current.seq > self._start_seq and current.origin != self.peer:
            code = CONCURRENT_EDIT
        elif command.kind is ChangeKind.DELETE:
            if current is not None and current.live:
                code = self._write(Change(local_id, None, current.content_type, item.modified), current)
        elif current is None or current.deleted or current.hash != content_hash(item.content):
            content_type = item.content_type or (current.content_type if current else "")
            if not content_type:
                code = BAD_REQUEST
            else:
                code = self._write(Change(local_id, item.content, content_type, item.modified), current)
                if code == OK and (current is None or current.deleted):
                    code = ADDED
        if code >= 300:
            self._item_errors.append(ItemError(local_id, code, self.role))
        return Status(0, msg_id, command.cmd_id, command.kind.value, code, ref=item.source)

    def _write(self, change: Change, current: ItemMeta | None) -> int:
        assert self.peer is not None
        try:
            self.store.apply(change, expected_version=current.version if current else 0, origin=self.peer)
        except StaleVersion:
            return CONCURRENT_EDIT
        self._items_applied += 1
        return OK

    def _commit(self) -> None:
        assert self.mode is not None and self.peer is not None
        last_seq = self._start_seq if self.mode.caller_changes_consumed else self._anchor.last_seq
        self.store.save_anchor(self.peer, Anchor(last=self._next, last_seq=last_seq))
        self.state = SessionState.DONE


class SyncCallee(_Session):
    """The side that answers a sync (the SyncML server). It decides conflicts by its policy."""

    role = Side.CALLEE

    def __init__(
        self,
        store: SyncStore,
        *,
        device: str,
        dataset: str,
        policy: ConflictPolicy = ConflictPolicy.NEWEST_WINS,
        peer: str | None = None,
        session_id: str | None = None,
        max_message_bytes: int = DEFAULT_MAX_BYTES,
        max_items_per_message: int = DEFAULT_MAX_ITEMS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            store,
            device=device,
            peer=peer,
            dataset=dataset,
            session_id=session_id or "",
            max_message_bytes=max_message_bytes,
            max_items_per_message=max_items_per_message,
            clock=clock,
        )
        self.policy = policy
        self._phase = "alert"
        self._anchor = Anchor()
        self._next = ""
        self._presented = ""
        self._anchor_seq = 0
        self._plan_seq = 0
        self._offers: dict[str, _Offer] = {}
        self._decisions: dict[str, _Decision] = {}
        self._map_units: list[MapItem] = []
        self._offer_statuses: list[Status] = []

    def _check_header(self, header: Header) -> None:
        # the first message tells who calls and in which session, unless the caller was named
        if self._expected_msg_id == 1:
            if not self.session_id:
                self.session_id = header.session_id
            if self.peer is None:
                self.peer = header.source or None
        super()._check_header(header)

    def _handle_package(self, package: list[tuple[int, Command]]) -> None:
        self._handle_statuses(package)
        if self._phase == "alert":
            self._on_alert(package)
        elif self._phase == "changes":
            self._on_changes(package)
        elif self._phase == "items":
            self._on_items(package)
        elif self._phase == "statuses":
            self._on_statuses(package)

    def _on_alert(self, package: list[tuple[int, Command]]) -> None:
        self._require_only(package, (Alert,))
        alerts = [(msg_id, command) for msg_id, command in package if isinstance(command, Alert)]
        if len(alerts) != 1:
            raise MessageError("expected one Alert")
        msg_id, alert = alerts[0]
        if alert.dataset != self.dataset:
            raise MessageError(f"unknown dataset {alert.dataset[:64]!r}", NOT_FOUND)
        if not alert.next or len(alert.next) > 128:
            raise MessageError("the Alert carries no usable Next anchor")
        assert self.peer is not None
        self._load_id_map()
        anchor = self.store.anchor(self.peer)
        mode, code = alert.mode, OK
        if mode.needs_anchors:
            if alert.last and alert.last == anchor.last:
                self._anchor_seq = anchor.last_seq
            elif alert.last and alert.last == anchor.prev:
                # our acknowledgement of the last sync was lost: repeat it from the anchor before
                self._anchor_seq = anchor.prev_seq
            else:
                mode, code = SyncMode.SLOW, REFRESH_REQUIRED
        self.mode = mode
        self._anchor = anchor
        self._presented = alert.last if mode.needs_anchors else ""
        self._next = alert.next
        self.store.save_anchor(self.peer, dataclasses.replace(anchor, next=alert.next))
        self._phase = "changes"
        self._send_package(
            [
                Status(0, msg_id, alert.cmd_id, "Alert", code),
                Alert(0, mode, self.dataset, anchor.last, alert.next),
            ]
        )

    # --- the caller's changes ------------------------------------------------------------------

    def _on_changes(self, package: list[tuple[int, Command]]) -> None:
        self._require_only(package, (Sync, Inventory, Map))
        statuses = self._handle_maps(package)
        for msg_id, command in package:
            if isinstance(command, Inventory):
                for entry in command.entries:
                    local_id = self._local_id(entry.source, entry.target)
                    self._offers[local_id] = _Offer(entry.source, entry.hash, entry.modified, entry.deleted)
            elif isinstance(command, Sync):
                for sub in command.commands:
                    self._take_offer(msg_id, sub, statuses)
        self._plan()
        wanted = [offer.source for local_id, offer in self._offers.items()
                  if self._decisions[local_id].needs_content and offer.ref is None]
        self._offer_statuses = statuses
        if wanted:
            self._phase = "items"
            self._send_package(GetId(item_id) for item_id in wanted)
        else:
            self._settle()

    def _take_offer(self, msg_id: int, command: ItemCommand, statuses: list[Status]) -> None:
        item = command.item
        local_id = self._local_id(item.source, item.target)
        previous = self._offers.get(local_id)
        if previous is not None and previous.ref is not None:
            statuses.append(Status(0, msg_id, command.cmd_id, command.kind.value, BAD_REQUEST, item.source,
                                   "the item appears twice"))
            return
        deleted = command.kind is ChangeKind.DELETE
        offer = _Offer(
            item.source,
            content_hash(item.content),
            item.modified,
            deleted,
            item.content_type,
            command.kind,
            item.content,
            (msg_id, command.cmd_id),
            bool(item.target),
        )
        if previous is not None and previous.hash != offer.hash:
            # changed on the caller between its inventory and our Get: leave it for the next sync
            offer.kind = None
            statuses.append(Status(0, msg_id, command.cmd_id, command.kind.value, CONCURRENT_EDIT, item.source))
            return
        self._offers[local_id] = offer

    def _on_items(self, package: list[tuple[int, Command]]) -> None:
        self._require_only(package, (Sync,))
        for msg_id, command in package:
            if isinstance(command, Sync):
                for sub in command.commands:
                    local_id = self._local_id(sub.item.source, sub.item.target)
                    if local_id not in self._decisions:
                        self._offer_statuses.append(
                            Status(0, msg_id, sub.cmd_id, sub.kind.value, NOT_FOUND, sub.item.source, "not asked for")
                        )
                        continue
                    self._take_offer(msg_id, sub, self._offer_statuses)
        self._settle()

    # --- deciding ------------------------------------------------------------------------------

    def _plan(self) -> None:
        """Decide every item from the offers and our own changes; nothing is written yet."""
        assert self.mode is not None and self.peer is not None
        mode = self.mode
        self._plan_seq = self.store.current_seq()
        if mode.full:
            ours = {meta.id: meta for meta in self.store.scan()}
        else:
            ours = {meta.id: meta for meta in self.store.scan(after_seq=self._anchor_seq, not_from=self.peer)}
        decisions: dict[str, _Decision] = {}
        for local_id, offer in self._offers.items():
            mine = ours.get(local_id)
            current = mine if mine is not None or mode.full else self.store.meta(local_id)
            decisions[local_id] = self._decide(offer, mine, current)
        for local_id, mine in ours.items():
            if local_id in self._offers:
                continue
            decision = _Decision(mine)
            if mode.full:
                if mine.live:
                    if mode is SyncMode.REFRESH_FROM_CALLER:
                        decision.drop = True
                    else:
                        decision.send = True
            elif mode.caller_writes:
                decision.send = True
            decisions[local_id] = decision
        if mode is SyncMode.SLOW:
            self._match_duplicates(decisions, ours)
        self._decisions = decisions

    def _decide(self, offer: _Offer, mine: ItemMeta | None, current: ItemMeta | None) -> _Decision:
        mode = self.mode
        assert mode is not None
        decision = _Decision(current)
        same = current is not None and (
            (offer.deleted and current.deleted) or (not offer.deleted and current.live and offer.hash == current.hash)
        )
        if same:
            return decision  # the same change on both sides, or a repeated sync: nothing to do
        if mode is SyncMode.REFRESH_FROM_CALLER:
            decision.take = not offer.deleted or (current is not None and current.live)
        elif mode is SyncMode.REFRESH_FROM_CALLEE:
            if current is not None and (current.live or not offer.deleted):
                decision.send = True
            elif not offer.deleted:
                decision.drop_remote = True
        elif mine is None:
            if current is None and not mode.full and (offer.names_our_id or offer.kind is ChangeKind.DELETE):
                decision.code = NOT_FOUND  # a Replace of an item we lack is an Add, as in SyncML
            elif current is None and offer.deleted:
                pass  # deleted on the caller, never known here
            elif mode.callee_writes:
                decision.take = True
        elif mode.one_way:
            conflict = deferred(self.policy, mine.id, offer.version, _version(mine))
            decision.conflict = conflict
            if mode is SyncMode.ONE_WAY_FROM_CALLER:
                decision.code = CONCURRENT_EDIT  # the caller offers it again
            else:
                decision.touch = True  # and so do we
        else:
            conflict = resolve(self.policy, mine.id, offer.version, _version(mine))
            decision.conflict = conflict
            if conflict.resolution is Resolution.CALLER_WINS:
                decision.take, decision.code = True, CALLER_WON
            else:
                decision.send, decision.code = True, CALLEE_WON
            if conflict.copy_id is not None:
                decision.copy_of = Side.CALLEE if conflict.resolution is Resolution.CALLER_WINS else Side.CALLER
                decision.code = DUPLICATED
        return decision

    def _match_duplicates(self, decisions: dict[str, _Decision], ours: dict[str, ItemMeta]) -> None:
        """Slow sync: an item only the caller has and one only we have, with the same content, are the
        same item under two ids (say a card imported on both devices without UID): map, don't copy."""
        theirs_by_hash = {
            offer.hash: local_id
            for local_id, offer in self._offers.items()
            if offer.ref is None and not offer.deleted and local_id not in ours
        }
        for local_id, meta in ours.items():
            if local_id in self._offers or not meta.live or meta.id in self._local_to_remote:
                continue
            other = theirs_by_hash.pop(meta.hash, None)
            if other is None:
                continue
            remote_id = self._offers.pop(other).source
            del decisions[other]
            del decisions[local_id]
            self._map_units.append(MapItem(local_id, remote_id))

    # --- writing and answering -----------------------------------------------------------------

    def _settle(self) -> None:
        assert self.mode is not None and self.peer is not None
        peer = self.peer
        copies: list[str] = []
        with self.store.batch():
            for map_item in self._map_units:
                self.store.map_id(peer, map_item.source, map_item.target)
                self._local_to_remote[map_item.source] = map_item.target
                self._remote_to_local[map_item.target] = map_item.source
            for local_id, decision in self._decisions.items():
                offer = self._offers.get(local_id)
                if decision.needs_content and (offer is None or offer.kind is None):
                    # the caller's item changed meanwhile and comes again next time: so must ours,
                    # or our anchor would move past it and the next sync would see no conflict
                    if decision.expected is not None:
                        self.store.touch(local_id)
                    decision.send = False
                    continue
                if decision.conflict is not None:
                    self._conflicts.append(decision.conflict)
                    self.store.record_conflict(peer, decision.conflict)
                if decision.copy_of is not None:
                    copy_id = self._make_copy(local_id, decision, offer)
                    if copy_id is not None:
                        copies.append(copy_id)
                if decision.take:
                    assert offer is not None
                    content_type = offer.content_type or (decision.expected.content_type if decision.expected else "")
                    content = None if offer.deleted else offer.content
                    decision.code = self._write(Change(local_id, content, content_type, offer.modified), decision)
                if decision.drop and decision.expected is not None:
                    self._write(Change(local_id, None, decision.expected.content_type, self._clock()), decision)
                if decision.touch:
                    self.store.touch(local_id)
        units: list[Unit] = list(self._offer_statuses)
        for local_id, offer in self._offers.items():
            if offer.ref is not None and offer.kind is not None:
                code = self._decisions[local_id].code
                units.append(Status(0, offer.ref[0], offer.ref[1], offer.kind.value, code, offer.source))
        units.extend(self._map_units)
        if self.mode.caller_writes:
            units.extend(self._outgoing(copies))
        self._phase = "statuses"
        self._send_package(units)

    def _write(self, change: Change, decision: _Decision) -> int:
        assert self.peer is not None
        expected = decision.expected.version if decision.expected else 0
        try:
            self.store.apply(change, expected_version=expected, origin=self.peer)
        except StaleVersion:
            decision.send = False  # our item changed meanwhile: the next sync sends the new one
            return CONCURRENT_EDIT
        self._items_applied += 1
        return decision.code if decision.code != OK else (ADDED if expected == 0 else OK)

    def _make_copy(self, local_id: str, decision: _Decision, offer: _Offer | None) -> str | None:
        """Keep-both: store the losing version as a new item (a local add, so it reaches the caller)."""
        assert decision.conflict is not None and decision.conflict.copy_id is not None
        copy_id = decision.conflict.copy_id
        if decision.copy_of is Side.CALLER:
            assert offer is not None
            content, content_type, modified = offer.content, offer.content_type, offer.modified
        else:
            record = self.store.get(local_id)
            if record is None or record.content is None:
                return None
            content, content_type, modified = record.content, record.meta.content_type, record.meta.modified
        existing = self.store.meta(copy_id)
        if existing is not None and existing.live and existing.hash == content_hash(content):
            return copy_id  # made by an earlier, interrupted attempt of this sync
        try:
            self.store.apply(
                Change(copy_id, content, content_type, modified),
                expected_version=existing.version if existing else 0,
                origin=None,
            )
        except StaleVersion:
            return None
        self._items_applied += 1
        return copy_id

    def _outgoing(self, copies: list[str]) -> list[Unit]:
        mode = self.mode
        assert mode is not None
        to_send = [local_id for local_id, decision in self._decisions.items() if decision.send]
        records = self.store.get_many([*to_send, *copies])
        units: list[Unit] = []
        for local_id in to_send:
            record = records.get(local_id)
            if record is None:
                continue
            offer = self._offers.get(local_id)
            if record.meta.deleted:
                if offer is None and mode.full:
                    continue
                kind = ChangeKind.DELETE
            elif offer is not None and not offer.deleted:
                kind = ChangeKind.REPLACE
            elif offer is None and not mode.full and record.meta.created_seq <= self._anchor_seq:
                kind = ChangeKind.REPLACE
            else:
                kind = ChangeKind.ADD
            units.append(self._item_command(record, kind))
        units.extend(self._item_command(records[copy_id], ChangeKind.ADD) for copy_id in copies if copy_id in records)
        for local_id, decision in self._decisions.items():
            if decision.drop_remote:
                target = self._offers[local_id].source
                units.append(ItemCommand(0, ChangeKind.DELETE, Item(local_id, target, "", self._clock())))
        return units

    def _on_statuses(self, package: list[tuple[int, Command]]) -> None:
        self._require_only(package, (Map,))
        statuses = self._handle_maps(package)
        assert self.mode is not None and self.peer is not None
        last_seq = self._plan_seq if self.mode.callee_changes_consumed else self._anchor_seq
        prev = self._presented
        self.store.save_anchor(
            self.peer, Anchor(last=self._next, last_seq=last_seq, prev=prev, prev_seq=self._anchor_seq)
        )
        self.state = SessionState.DONE
        self._send_package([*statuses, Status(0, self._expected_msg_id - 1, 0, "SyncHdr", OK)])
