"""A caller and a callee run against each other in one process over an in-memory wire: the harness
of the tests and the benchmark, and a model of what the data channel does with the messages."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.syncml.callee import SyncCallee
from protocols.syncml.caller import SyncCaller
from protocols.syncml.outcome import SessionState


@dataclass(frozen=True, slots=True)
class WireStats:
    messages: int
    bytes: int
    completed: bool  # both sides finished


def run(caller: SyncCaller, callee: SyncCallee, *, cut_after: int | None = None) -> WireStats:
    """Deliver messages both ways until neither side has more; with `cut_after`, the connection
    breaks after that many messages and the rest are lost."""
    messages = size = 0
    moved = True
    while moved:
        moved = False
        for sender, receiver in ((caller, callee), (callee, caller)):
            for data in sender.data_to_send():
                if cut_after is not None and messages >= cut_after:
                    return WireStats(messages, size, False)
                messages += 1
                size += len(data)
                receiver.receive(data)
                moved = True
    completed = caller.state is SessionState.DONE and callee.state is SessionState.DONE
    return WireStats(messages, size, completed)
