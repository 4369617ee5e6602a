"""SyncML-like record sync: anchors, change log, sync modes, conflicts and the message codec,
as a sans-I/O engine (message bytes in, message bytes out) over an abstract record store.

The names below are loaded on first use (PEP 562): a module that needs only, say, `conflicts`
does not import the whole engine and its codec."""

from __future__ import annotations

from protocols.lazy_exports import lazy_exports
from typing import TYPE_CHECKING

_HOME = {
    "SyncCallee": "callee", "SyncCaller": "caller",
    "Conflict": "conflicts", "ConflictPolicy": "conflicts", "Resolution": "conflicts",
    "Side": "conflicts",
    "SyncEngine": "engine", "SyncMode": "modes",
    "ItemError": "outcome", "SessionState": "outcome", "SyncError": "outcome",
    "SyncReport": "outcome",
    "Anchor": "records", "Change": "records", "ChangeKind": "records", "ItemMeta": "records",
    "Record": "records",
    "StaleVersion": "store", "SyncStore": "store",
}

__all__ = sorted(_HOME)


__getattr__, __dir__ = lazy_exports(__name__, _HOME, globals())


if TYPE_CHECKING:
    from protocols.syncml.callee import SyncCallee
    from protocols.syncml.caller import SyncCaller
    from protocols.syncml.conflicts import Conflict, ConflictPolicy, Resolution, Side
    from protocols.syncml.engine import SyncEngine
    from protocols.syncml.modes import SyncMode
    from protocols.syncml.outcome import ItemError, SessionState, SyncError, SyncReport
    from protocols.syncml.records import Anchor, Change, ChangeKind, ItemMeta, Record
    from protocols.syncml.store import StaleVersion, SyncStore
