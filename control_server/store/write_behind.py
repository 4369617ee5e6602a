"""What the server has changed and the store does not hold yet, merged as it comes: while the store
is away (PostgreSQL restarting) batches pile into one, latest state winning, and the whole of it is
written when the store is back, so that no binding, session or history is lost."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..location import Binding
from ..sessions import SessionRecord


@dataclass
class PendingWrites:
    bound: dict[tuple[str, str], Binding] = field(default_factory=dict)
    unbound: set[tuple[str, str]] = field(default_factory=set)
    # The last-seen time of each device whose binding ended: the refreshes before the end may
    # not have been written (store/refresh_writes.py), so the device's row learns it here.
    ended_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    sessions: dict[str, SessionRecord] = field(default_factory=dict)  # by Call-ID
    new_devices: list[tuple[str, str, float]] = field(default_factory=list)
    subscriptions: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # by id
    ended_subscriptions: set[str] = field(default_factory=set)

    def add(self, *, bound=(), unbound=(), ended_seen=(), sessions=(), new_devices=(),
            subscriptions=(), ended_subscriptions=()) -> None:
        """A later batch over this one: what it says of a device, session or subscription
        replaces what this one said."""
        for binding in bound:
            self.bound[binding.key] = binding
            self.unbound.discard(binding.key)
        for key in unbound:
            self.bound.pop(key, None)
            self.unbound.add(key)
        for key, seen in dict(ended_seen).items():
            self.ended_seen[key] = max(seen, self.ended_seen.get(key, seen))
        for record in sessions:
            self.sessions[record.call_id] = record
        self.new_devices.extend(new_devices)
        for row in subscriptions:
            self.subscriptions[row[0]] = row
            self.ended_subscriptions.discard(row[0])
        for sub_id in ended_subscriptions:
            self.subscriptions.pop(sub_id, None)
            self.ended_subscriptions.add(sub_id)

    def __bool__(self) -> bool:
        return bool(self.bound or self.unbound or self.ended_seen or self.sessions
                    or self.new_devices or self.subscriptions or self.ended_subscriptions)

    def __len__(self) -> int:
        return (len(self.bound) + len(self.unbound) + len(self.ended_seen) + len(self.sessions)
                + len(self.new_devices) + len(self.subscriptions) + len(self.ended_subscriptions))
