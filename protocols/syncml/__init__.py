"""SyncML-like record sync: anchors, change log, sync modes, conflicts and the message codec,
as a sans-I/O engine (message bytes in, message bytes out) over an abstract record store."""

from protocols.syncml.callee import SyncCallee
from protocols.syncml.caller import SyncCaller
from protocols.syncml.conflicts import Conflict, ConflictPolicy, Resolution, Side
from protocols.syncml.engine import SyncEngine
from protocols.syncml.modes import SyncMode
from protocols.syncml.outcome import ItemError, SessionState, SyncError, SyncReport
from protocols.syncml.records import Anchor, Change, ChangeKind, ItemMeta, Record
from protocols.syncml.store import StaleVersion, SyncStore

__all__ = [
    "Anchor",
    "Change",
    "ChangeKind",
    "Conflict",
    "ConflictPolicy",
    "ItemError",
    "ItemMeta",
    "Record",
    "Resolution",
    "SessionState",
    "Side",
    "StaleVersion",
    "SyncCallee",
    "SyncCaller",
    "SyncEngine",
    "SyncError",
    "SyncMode",
    "SyncReport",
    "SyncStore",
]
