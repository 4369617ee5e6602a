"""What a finished sync reports on each side: the counts the peer daemon shows and sends on."""

from tests.syncml.harness import Clock, card, sync
from tests.syncml.memory_store import MemoryStore


def test_each_side_counts_the_item_commands_it_received_from_the_other():
    clock = Clock()
    a, b = MemoryStore(clock=clock), MemoryStore(clock=clock)
    a.add(card("Ann", uid="ann"))
    sync(a, b)
    a.add(card("Bob", uid="bob"))
    a.replace("ann", card("Annie", uid="ann"))
    b.add(card("Cy", uid="cy"))
    outcome = sync(a, b)
    caller, callee = outcome.caller.report, outcome.callee.report
    assert (caller.items_sent, callee.items_received) == (2, 2)
    assert (callee.items_sent, caller.items_received) == (1, 1)
