"""What the admin API may see of a running control server, and the one thing it may ask of it.
`ControlServer` fits this shape; the API never holds the server itself."""

from __future__ import annotations

from typing import Protocol

from ..events import EventBus
from ..location import Binding
from ..metrics import ServerCounts, ServerMetrics
from ..sessions import SessionRecord


class ServerView(Protocol):
    realm: str
    started_at: float
    events: EventBus  # devices online and offline, session changes
    metrics: ServerMetrics  # latencies and session outcomes, for /metrics

    @property
    def sip_address(self) -> tuple[str, int]:
        """The host and port SIP is served on."""
        ...

    def counts(self) -> ServerCounts: ...

    def online_bindings(self) -> list[Binding]:
        """Devices bound now, by user and device."""
        ...

    def binding(self, user: str, device: str) -> Binding | None: ...

    def active_sessions(self) -> list[SessionRecord]:
        """Sessions not yet ended, oldest first."""
        ...

    async def reload_directory(self) -> None:
        """Pick up users, devices and shares an admin just changed in the store."""
        ...
