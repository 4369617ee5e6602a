"""The caller's side of a sync (the SyncML client): it asks for a mode, offers its changes or an
inventory, applies what the callee sends unless the item changed locally meanwhile, and moves its
anchor only once the callee has acknowledged."""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import Callable

from protocols.syncml.conflicts import Side
from protocols.syncml.engine import Package, SyncEngine
from protocols.syncml.messages import Alert, Entry, Get, ItemCommand, Map, MessageError, Status, Sync
from protocols.syncml.modes import SyncMode
from protocols.syncml.outcome import ItemError
from protocols.syncml.packing import DEFAULT_MAX_BYTES, DEFAULT_MAX_ITEMS, Unit
from protocols.syncml.records import Anchor, Change, ChangeKind, ItemMeta, Record, content_hash, content_type_for
from protocols.syncml.status_codes import ADDED, BAD_REQUEST, CONCURRENT_EDIT, NOT_ALLOWED, NOT_FOUND, OK
from protocols.syncml.store import SyncStore, write_if_unchanged


class SyncCaller(SyncEngine):
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

    def _handle_package(self, package: Package) -> None:
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

    def _on_alert(self, package: Package) -> None:
        refusal = "expected one Alert answering ours"
        _, alert = self._one_alert(package, refusal)
        if alert.next != self._next or alert.dataset != self.dataset:
            raise MessageError(refusal)
        mode = alert.mode
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

    def _on_get(self, package: Package) -> None:
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

    def _on_changes(self, package: Package) -> None:
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
            content_type = content_type_for(item.content_type, current)
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
        if not write_if_unchanged(self.store, change, current, self.peer):
            return CONCURRENT_EDIT
        self._items_applied += 1
        return OK

    def _commit(self) -> None:
        assert self.mode is not None
        last_seq = self._start_seq if self.mode.caller_changes_consumed else self._anchor.last_seq
        self._finish(Anchor(last=self._next, last_seq=last_seq))
