"""The callee's side of a sync (the SyncML server), phase by phase: it checks the anchors in the
Alert, takes in the caller's offer (asking for content it lacks), has every item decided
(decisions.py), writes (callee_writing.py), answers (callee_reply.py), and moves its anchor when
the caller has applied its changes."""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

from protocols.syncml.callee_reply import changes_for_caller, offer_statuses, records_to_send
from protocols.syncml.callee_writing import CopyContent, Devices, same_content, write_decisions
from protocols.syncml.conflicts import ConflictPolicy, Side
from protocols.syncml.decisions import Decision, plan
from protocols.syncml.engine import Package, SyncEngine
from protocols.syncml.messages import Alert, Header, Inventory, Map, MapItem, MessageError, Status, Sync
from protocols.syncml.modes import SyncMode
from protocols.syncml.offers import Offer, offer_of_entry, take_item
from protocols.syncml.packing import DEFAULT_MAX_BYTES, DEFAULT_MAX_ITEMS, GetId, Unit
from protocols.syncml.records import Anchor
from protocols.syncml.status_codes import NOT_FOUND, OK, REFRESH_REQUIRED
from protocols.syncml.store import SyncStore


class SyncCallee(SyncEngine):
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
        copy_content: CopyContent = same_content,
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
        self._copy_content = copy_content
        self._copies: dict[str, int] = {}  # keep-both copies sent to the caller: id -> version
        self._phase = "alert"
        self._anchor = Anchor()
        self._next = ""
        self._presented = ""
        self._anchor_seq = 0
        self._plan_seq = 0
        self._offers: dict[str, Offer] = {}
        self._decisions: dict[str, Decision] = {}
        self._map_units: tuple[MapItem, ...] = ()
        self._offer_statuses: list[Status] = []

    def _check_header(self, header: Header) -> None:
        # the first message tells who calls and in which session, unless the caller was named
        if self._expected_msg_id == 1:
            if not self.session_id:
                self.session_id = header.session_id
            if self.peer is None:
                self.peer = header.source or None
        super()._check_header(header)

    def _handle_package(self, package: Package) -> None:
        if self._phase == "alert":
            self._on_alert(package)
        elif self._phase == "changes":
            self._on_changes(package)
        elif self._phase == "items":
            self._on_items(package)
        elif self._phase == "statuses":
            self._on_statuses(package)

    def _on_alert(self, package: Package) -> None:
        msg_id, alert = self._one_alert(package, "expected one Alert")
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

    # --- the caller's offer --------------------------------------------------------------------

    def _on_changes(self, package: Package) -> None:
        self._require_only(package, (Sync, Inventory, Map))
        statuses = self._handle_maps(package)
        for msg_id, command in package:
            if isinstance(command, Inventory):
                for entry in command.entries:
                    self._offers[self._local_id(entry.source, entry.target)] = offer_of_entry(entry)
            elif isinstance(command, Sync):
                for sub in command.commands:
                    refusal = take_item(self._offers, self._local_id(sub.item.source, sub.item.target), msg_id, sub)
                    if refusal is not None:
                        statuses.append(refusal)
        self._plan()
        wanted = [offer.source for local_id, offer in self._offers.items()
                  if self._decisions[local_id].needs_content and offer.ref is None]
        self._offer_statuses = statuses
        if wanted:
            self._phase = "items"
            self._send_package(GetId(item_id) for item_id in wanted)
        else:
            self._settle()

    def _on_items(self, package: Package) -> None:
        self._require_only(package, (Sync,))
        for msg_id, command in package:
            if isinstance(command, Sync):
                for sub in command.commands:
                    local_id = self._local_id(sub.item.source, sub.item.target)
                    refusal = (
                        Status(0, msg_id, sub.cmd_id, sub.kind.value, NOT_FOUND, sub.item.source, "not asked for")
                        if local_id not in self._decisions
                        else take_item(self._offers, local_id, msg_id, sub)
                    )
                    if refusal is not None:
                        self._offer_statuses.append(refusal)
        self._settle()

    def _plan(self) -> None:
        """Have every item decided from the offers and our own changes; nothing is written yet."""
        assert self.mode is not None and self.peer is not None
        mode = self.mode
        self._plan_seq = self.store.current_seq()
        if mode.full:
            changed = {meta.id: meta for meta in self.store.scan()}
            unchanged = {}
        else:
            changed = {meta.id: meta for meta in self.store.scan(after_seq=self._anchor_seq, not_from=self.peer)}
            unchanged = {local_id: self.store.meta(local_id) for local_id in self._offers if local_id not in changed}
        decided = plan(self._offers, changed, unchanged, mode, self.policy, self._local_to_remote)
        for local_id in decided.matched:
            del self._offers[local_id]
        self._decisions = decided.decisions
        self._map_units = decided.maps

    # --- writing and answering -----------------------------------------------------------------

    def _settle(self) -> None:
        assert self.mode is not None and self.peer is not None
        with self.store.batch():
            for map_item in self._map_units:
                self._remember_mapping(map_item.source, map_item.target)
            written = write_decisions(self.store, self.peer, self._decisions, self._offers, self._clock,
                                      Devices(caller=self.peer, callee=self.device), self._copy_content)
        self._decisions = written.decisions
        self._conflicts.extend(written.conflicts)
        self._items_applied += written.applied
        units: list[Unit] = [*self._offer_statuses, *offer_statuses(self._offers, written.decisions)]
        units.extend(self._map_units)
        self._copies = written.copies
        if self.mode.caller_writes:
            records = self.store.get_many(records_to_send(written.decisions, written.copies))
            units.extend(
                changes_for_caller(written.decisions, self._offers, records, written.copies, self.mode,
                                   self._anchor_seq, self._local_to_remote, self._clock)
            )
        self._phase = "statuses"
        self._send_package(units)

    def _acknowledged(self, local_id: str) -> None:
        # A copy made in this sync is a local add; once the caller holds it, the next sync with
        # the caller has nothing to say about it.
        version = self._copies.get(local_id)
        if version is not None:
            assert self.peer is not None
            self.store.mark_held(local_id, version=version, peer=self.peer)

    def _on_statuses(self, package: Package) -> None:
        self._require_only(package, (Map,))
        statuses = self._handle_maps(package)
        assert self.mode is not None
        last_seq = self._plan_seq if self.mode.callee_changes_consumed else self._anchor_seq
        self._finish(Anchor(last=self._next, last_seq=last_seq, prev=self._presented, prev_seq=self._anchor_seq))
        self._send_package([*statuses, Status(0, self._expected_msg_id - 1, 0, "SyncHdr", OK)])
