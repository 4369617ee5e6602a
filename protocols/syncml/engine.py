"""What both ends of a sync share: the sans-I/O surface (message bytes in, message bytes out, a
report), message bookkeeping, id translation, Status and Map handling, and failure."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, Iterable

from protocols.syncml.conflicts import Conflict, Side
from protocols.syncml.messages import Alert, Command, Header, Item, ItemCommand, Map, Message, MessageError
from protocols.syncml.messages import Status, Sync, decode, encode
from protocols.syncml.modes import SyncMode
from protocols.syncml.outcome import ItemError, SessionState, SyncError, SyncReport
from protocols.syncml.packing import Unit, split_package
from protocols.syncml.records import Anchor, ChangeKind, Record
from protocols.syncml.status_codes import (
    CALLEE_WON,
    CONCURRENT_EDIT,
    FORBIDDEN,
    NOT_ALLOWED,
    NOT_FOUND,
    OK,
    REFRESH_REQUIRED,
    SERVER_ERROR,
)
from protocols.syncml.store import SyncStore

# A package is held until its Final; a peer must not grow it without bound (~90 MB for 1M items).
MAX_PACKAGE_BYTES = 512 * 1024 * 1024

Package = list[tuple[int, Command]]  # the commands of one package, each with its message's MsgID


def item_command(record: Record, kind: ChangeKind, remote_id: str) -> ItemCommand:
    """The item command that sends `record`; `remote_id` is the peer's id for it, when it differs."""
    meta = record.meta
    content = None if kind is ChangeKind.DELETE else record.content
    return ItemCommand(0, kind, Item(meta.id, remote_id, meta.content_type, meta.modified, content))


class SyncEngine(ABC):
    """One end of a sync: SyncCaller or SyncCallee. Feed it the peer's messages with `receive`,
    put what `data_to_send` returns on the wire, read `state` and `report`."""

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
        self._pending: Package = []
        self._pending_bytes = 0
        self._sent_items: dict[tuple[int, int], str] = {}
        self._local_to_remote: dict[str, str] = {}
        self._remote_to_local: dict[str, str] = {}
        self._conflicts: list[Conflict] = []
        self._item_errors: list[ItemError] = []
        self._items_sent = self._items_applied = self._items_received = 0
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
        self._items_received += sum(len(c.commands) for c in message.commands if isinstance(c, Sync))
        self._pending_bytes += len(data)
        if self._pending_bytes > MAX_PACKAGE_BYTES:
            self._fail(413, f"package exceeds {MAX_PACKAGE_BYTES} bytes without a Final")
            return
        if not message.final:
            return
        package, self._pending, self._pending_bytes = self._pending, [], 0
        try:
            self._handle_statuses(package)
            self._handle_package(package)
        except _PeerStopped:
            pass
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
            self._items_received,
        )

    # --- what the caller and the callee do with a package -------------------------------------

    @abstractmethod
    def _handle_package(self, package: Package) -> None:
        """What the caller or the callee does with a whole package from the other side, once the
        Statuses in it have been taken in."""

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

    def _finish(self, anchor: Anchor) -> None:
        """The sync is done on this side: the anchor moves past what it exchanged."""
        assert self.peer is not None
        self.store.save_anchor(self.peer, anchor)
        self.state = SessionState.DONE

    def _load_id_map(self) -> None:
        assert self.peer is not None
        self._local_to_remote = self.store.id_map(self.peer)
        self._remote_to_local = {remote: local for local, remote in self._local_to_remote.items()}

    def _remember_mapping(self, local_id: str, remote_id: str) -> None:
        assert self.peer is not None
        self.store.map_id(self.peer, local_id, remote_id)
        self._local_to_remote[local_id] = remote_id
        self._remote_to_local[remote_id] = local_id

    def _local_id(self, source: str, target: str) -> str:
        """Our id for an item the peer names `source` (and `target`, when it knows our id)."""
        return target or self._remote_to_local.get(source, source)

    def _item_command(self, record: Record, kind: ChangeKind) -> ItemCommand:
        return item_command(record, kind, self._local_to_remote.get(record.id, ""))

    @staticmethod
    def _one_alert(package: Package, refusal: str) -> tuple[int, Alert]:
        """The package's only command besides Statuses, an Alert, with its message's MsgID; when
        there is not exactly one, MessageError with `refusal` as the reason."""
        SyncEngine._require_only(package, (Alert,))
        alerts = [(msg_id, command) for msg_id, command in package if isinstance(command, Alert)]
        if len(alerts) != 1:
            raise MessageError(refusal)
        return alerts[0]

    def _handle_statuses(self, package: Package) -> None:
        for _, command in package:
            if not isinstance(command, Status):
                continue
            if command.cmd_ref == 0 and command.code >= 300:
                self._fail(command.code, f"peer refused: {command.reason}", tell_peer=False)
                raise _PeerStopped
            if command.cmd in (ChangeKind.ADD.value, ChangeKind.REPLACE.value, ChangeKind.DELETE.value):
                local_id = self._sent_items.get((command.msg_ref, command.cmd_ref))
                if local_id is None:
                    continue  # a Status for nothing we sent: ignore rather than trust it
                if command.code < 300:
                    self._acknowledged(local_id)
                if command.code == CONCURRENT_EDIT:
                    # the peer kept its own edit; offer ours again so the next sync decides
                    self.store.touch(local_id)
                if command.code >= 300 and command.code not in (CALLEE_WON, REFRESH_REQUIRED):
                    self._item_errors.append(ItemError(local_id, command.code, self._other, command.reason))

    def _acknowledged(self, local_id: str) -> None:
        """The peer has applied (or already held) the item we sent as `local_id`."""

    def _handle_maps(self, package: Package) -> list[Status]:
        """Id maps from the peer: its id for one of our items. Unknown items are refused."""
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
                self._remember_mapping(map_item.target, map_item.source)
            statuses.append(Status(0, msg_id, command.cmd_id, "Map", code))
        return statuses

    @staticmethod
    def _require_only(package: Package, allowed: tuple[type, ...]) -> None:
        for _, command in package:
            if not isinstance(command, (Status, *allowed)):
                raise MessageError(f"<{type(command).__name__}> is not allowed here", NOT_ALLOWED)


class _PeerStopped(Exception):
    """The peer ended the session; stop handling the package."""
