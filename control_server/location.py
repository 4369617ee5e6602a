"""The in-memory location table: who is online, where, until when. The hot path reads only this."""

from __future__ import annotations

from dataclasses import dataclass

from protocols.sip.endpoint import Endpoint


@dataclass(frozen=True, slots=True)
class Binding:
    """One online device: its contact and the address its REGISTER really came from."""

    user: str
    device: str
    contact: str
    source: Endpoint
    user_agent: str
    registered_at: float
    last_seen: float
    expires_at: float
    call_id: str
    cseq: int
    node: str = ""  # the worker or server holding the device's flow; "" for this one

    @property
    def key(self) -> tuple[str, str]:
        return (self.user, self.device)


class LocationTable:
    def __init__(self, grace: float = 10.0) -> None:
        self.grace = grace
        self._by_user: dict[str, dict[str, Binding]] = {}
        # Keys by the whole second they fall due: a sweep looks only at what is due.
        self._due: dict[int, list[tuple[str, str]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def get(self, user: str, device: str) -> Binding | None:
        devices = self._by_user.get(user)
        return devices.get(device) if devices else None

    def devices_of(self, user: str) -> list[Binding]:
        return list(self._by_user.get(user, {}).values())

    def all(self) -> list[Binding]:
        return [b for devices in self._by_user.values() for b in devices.values()]

    def put(self, binding: Binding) -> Binding | None:
        """Add or refresh a binding; returns the one it replaced."""
        devices = self._by_user.setdefault(binding.user, {})
        previous = devices.get(binding.device)
        devices[binding.device] = binding
        if previous is None:
            self._count += 1
        due = int(binding.expires_at + self.grace) + 1
        if previous is None or int(previous.expires_at + self.grace) + 1 != due:
            self._due.setdefault(due, []).append(binding.key)
        return previous

    def remove(self, user: str, device: str) -> Binding | None:
        devices = self._by_user.get(user)
        if not devices or device not in devices:
            return None
        binding = devices.pop(device)
        if not devices:
            del self._by_user[user]
        self._count -= 1
        return binding

    def expire(self, now: float) -> list[Binding]:
        """Drop the bindings not refreshed by their expiry plus the grace; return them."""
        gone = []
        for second in [s for s in self._due if s <= now]:
            for user, device in self._due.pop(second):
                binding = self.get(user, device)
                if binding is not None and binding.expires_at + self.grace <= now:
                    self.remove(user, device)
                    gone.append(binding)
        return gone
