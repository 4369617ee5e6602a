"""Two record stores and a sync between them over the in-memory wire, for the tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from protocols.syncml import ConflictPolicy, SyncCallee, SyncCaller, SyncMode, SyncStore
from protocols.syncml.loopback import WireStats, run
from protocols.syncml.records import Record


class Clock:
    """A shared clock that ticks on every reading, so modification times are distinct and ordered."""

    def __init__(self, start: float = 1_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


@dataclass
class Outcome:
    caller: SyncCaller
    callee: SyncCallee
    wire: WireStats


def card(name: str, uid: str | None = None) -> bytes:
    uid_line = f"UID:{uid}\r\n" if uid else ""
    return f"BEGIN:VCARD\r\nVERSION:4.0\r\n{uid_line}FN:{name}\r\nEND:VCARD\r\n".encode()


def sync(
    a: SyncStore,
    b: SyncStore,
    mode: SyncMode = SyncMode.TWO_WAY,
    policy: ConflictPolicy = ConflictPolicy.NEWEST_WINS,
    *,
    cut_after: int | None = None,
    clock: Clock | None = None,
    **options: int,
) -> Outcome:
    """A syncs with B: A calls, B answers."""
    extra = {"clock": clock} if clock else {}
    caller = SyncCaller(a, device="A", peer="B", dataset="contacts", mode=mode, **options, **extra)
    callee = SyncCallee(b, device="B", dataset="contacts", policy=policy, **options, **extra)
    return Outcome(caller, callee, run(caller, callee, cut_after=cut_after))


class ListsItems(Protocol):
    """A store whose items a test can list: the in-memory store and the SQLite store both."""

    def items(self) -> list[Record]: ...


def contents(store: ListsItems) -> dict[str, bytes]:
    return {record.id: record.content for record in store.items() if record.content is not None}


def names(store: ListsItems) -> dict[str, str]:
    """id -> FN, the readable form of a store's live items."""
    found = {}
    for item_id, content in contents(store).items():
        line = next(line for line in content.decode().split("\r\n") if line.startswith("FN:"))
        found[item_id] = line[3:]
    return found
