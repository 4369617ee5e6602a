"""What the SIP path tells whoever watches it: a device went online or offline, a session record
changed, an address or a user was banned. Typed events on a bus of plain callbacks, called in
the server's event loop; the server builds an event only when someone listens."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .location import Binding
from .sessions import SessionRecord
from .throttle import Ban


@dataclass(frozen=True, slots=True)
class DeviceOnline:
    """A device registered, where it was not bound before."""

    binding: Binding
    at: float


@dataclass(frozen=True, slots=True)
class DeviceOffline:
    """A bound device went: unregistered, expired, or taken off by an admin (`reason` says)."""

    user: str
    device: str
    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class SessionChanged:
    """A session started, moved on (answer, progress) or ended: its record as of `at`."""

    record: SessionRecord
    at: float


@dataclass(frozen=True, slots=True)
class Banned:
    """An address or a user was banned, for failed authentications or a request flood."""

    ban: Ban
    at: float


ServerEvent = DeviceOnline | DeviceOffline | SessionChanged | Banned
Listener = Callable[[ServerEvent], None]


class EventBus:
    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    @property
    def listening(self) -> bool:
        """Publishers check this first, so that an event nobody hears costs nothing."""
        return bool(self._listeners)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event from now on; returns what stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def publish(self, event: ServerEvent) -> None:
        for listener in list(self._listeners):
            listener(event)
