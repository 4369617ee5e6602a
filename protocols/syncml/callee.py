"""The callee's side of a sync (the SyncML server): it checks the anchors, compares the caller's
offer with its own changes, resolves conflicts by its policy, writes, answers with its changes, and
moves its anchor when the caller has applied them."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

from protocols.syncml.conflicts import Conflict, ConflictPolicy, Resolution, Side, Version, deferred, resolve
from protocols.syncml.messages import (
    Alert,
    Command,
    Header,
    Inventory,
    Item,
    ItemCommand,
    Map,
    MapItem,
    MessageError,
    Status,
    Sync,
)
from protocols.syncml.modes import SyncMode
from protocols.syncml.packing import DEFAULT_MAX_BYTES, DEFAULT_MAX_ITEMS, GetId, Unit
from protocols.syncml.records import Anchor, Change, ChangeKind, ItemMeta, content_hash
from protocols.syncml.session import (
    ADDED,
    BAD_REQUEST,
    CALLEE_WON,
    CALLER_WON,
    CONCURRENT_EDIT,
    DUPLICATED,
    NOT_FOUND,
    OK,
    REFRESH_REQUIRED,
    Session,
    SessionState,
)
from protocols.syncml.store import StaleVersion, SyncStore


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


class SyncCallee(Session):
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
