"""Splitting a package of commands into messages of bounded size and item count."""

from __future__ import annotations

import dataclasses
from typing import Iterable, Union

from protocols.syncml.messages import (
    Alert,
    Command,
    Entry,
    Get,
    Inventory,
    ItemCommand,
    Map,
    MapItem,
    Status,
    Sync,
)

DEFAULT_MAX_BYTES = 256 * 1024
DEFAULT_MAX_ITEMS = 4000


@dataclasses.dataclass(frozen=True, slots=True)
class GetId:
    """One id asked for by a Get; Gets are grouped like Sync items."""

    item_id: str


Unit = Union[Alert, Status, ItemCommand, Entry, GetId, MapItem]


def _estimate(unit: Unit) -> int:
    # Rough XML size; it only has to keep messages near the budget, not exactly under it.
    if isinstance(unit, ItemCommand):
        content = unit.item.content
        return 220 + len(unit.item.source) + len(unit.item.target) + (len(content) * 4 // 3 if content else 0)
    if isinstance(unit, Entry):
        return 80 + len(unit.source) + len(unit.target)
    if isinstance(unit, Status):
        return 160 + len(unit.ref) + len(unit.reason)
    return 120


def split_package(
    units: Iterable[Unit], dataset: str, *, max_bytes: int = DEFAULT_MAX_BYTES, max_items: int = DEFAULT_MAX_ITEMS
) -> list[tuple[Command, ...]]:
    """Commands for each message, CmdIDs numbered from 1 in each. Always at least one message."""
    messages: list[tuple[Command, ...]] = []
    commands: list[Command] = []
    group: list[Unit] = []
    size = count = 0
    cmd_id = 0

    def next_id() -> int:
        nonlocal cmd_id
        cmd_id += 1
        return cmd_id

    def close_group() -> None:
        if not group:
            return
        first = group[0]
        if isinstance(first, ItemCommand):
            sync_id = next_id()
            commands.append(Sync(sync_id, dataset, tuple(dataclasses.replace(c, cmd_id=next_id()) for c in group)))
        elif isinstance(first, Entry):
            commands.append(Inventory(next_id(), tuple(group)))
        elif isinstance(first, GetId):
            commands.append(Get(next_id(), tuple(g.item_id for g in group)))
        elif isinstance(first, MapItem):
            commands.append(Map(next_id(), tuple(group)))
        group.clear()

    def close_message() -> None:
        nonlocal size, count, cmd_id
        close_group()
        messages.append(tuple(commands))
        commands.clear()
        size = count = cmd_id = 0

    for unit in units:
        unit_size = _estimate(unit)
        if count and (size + unit_size > max_bytes or count >= max_items):
            close_message()
        size += unit_size
        count += 1
        if isinstance(unit, (Alert, Status)):
            close_group()
            commands.append(dataclasses.replace(unit, cmd_id=next_id()))
        else:
            if group and type(group[0]) is not type(unit):
                close_group()
            group.append(unit)
    if count or not messages:
        close_message()
    return messages
