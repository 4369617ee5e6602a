"""The admin's live events, for the HTTP API's event stream: the server's typed events turned into
rows (device.online, device.offline, session.started, session.progress, session.ended,
security.banned) and fanned out to each subscriber's queue in the server's event loop."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

from ..events import Banned, DeviceOffline, DeviceOnline, ServerEvent, SessionChanged
from .rows import ban_row, offline_row, online_row, session_row

DEVICE_ONLINE = "device.online"
DEVICE_OFFLINE = "device.offline"
SESSION_STARTED = "session.started"
SESSION_PROGRESS = "session.progress"
SESSION_ENDED = "session.ended"
BANNED = "security.banned"

# A subscriber this far behind is cut off rather than let the server's memory grow for it.
QUEUE_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str
    at: float
    data: dict[str, Any]


def admin_event(event: ServerEvent) -> tuple[str, dict[str, Any]]:
    """The kind and row an admin sees for one of the server's events."""
    if isinstance(event, DeviceOnline):
        return DEVICE_ONLINE, online_row(event.binding, event.at)
    if isinstance(event, DeviceOffline):
        return DEVICE_OFFLINE, offline_row(event)
    if isinstance(event, Banned):
        return BANNED, ban_row(event.ban)
    assert isinstance(event, SessionChanged)
    record = event.record
    if record.ended_at is not None:
        kind = SESSION_ENDED
    elif record.state == "proceeding":
        kind = SESSION_STARTED
    else:
        kind = SESSION_PROGRESS
    return kind, session_row(record, event.at)


class Subscription:
    """One listener's queue; `overflowed` says it fell behind and missed events."""

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self.queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)
        self.overflowed = False

    async def next(self, timeout: float | None = None) -> Event | None:
        """The next event, or None after `timeout` seconds without one."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        self._hub._subscribers.discard(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventHub:
    """Fan-out to subscribers; a server event nobody subscribes to is dropped unread."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._ids = itertools.count(1)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        self._subscribers.add(subscription)
        return subscription

    def receive(self, server_event: ServerEvent) -> None:
        """What the server's event bus calls."""
        if not self._subscribers:
            return
        kind, data = admin_event(server_event)
        self.publish(kind, server_event.at, data)

    def publish(self, kind: str, at: float, data: dict[str, Any]) -> None:
        if not self._subscribers:
            return
        event = Event(next(self._ids), kind, at, data)
        for subscription in list(self._subscribers):
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscription.overflowed = True
                subscription.close()
