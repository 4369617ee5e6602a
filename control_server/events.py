"""Live events for admins: devices going online and offline, sessions starting, progressing and
ending. The server publishes; the HTTP API's event stream subscribes."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

DEVICE_ONLINE = "device.online"
DEVICE_OFFLINE = "device.offline"
SESSION_STARTED = "session.started"
SESSION_PROGRESS = "session.progress"
SESSION_ENDED = "session.ended"

# A subscriber this far behind is cut off rather than let the server's memory grow for it.
QUEUE_LIMIT = 1000


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    kind: str
    at: float
    data: dict[str, Any]


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
    """Fan-out to subscribers in the server's event loop; free when nobody listens."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()
        self._ids = itertools.count(1)

    @property
    def listening(self) -> bool:
        """Callers check this first so that building an event's data costs nothing unheard."""
        return bool(self._subscribers)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self)
        self._subscribers.add(subscription)
        return subscription

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
