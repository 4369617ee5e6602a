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
    """Bindings by user. Most users have one device online, so a user's entry is that Binding
    itself, and a tuple of them only for two or more: a dict per user took some 110 B a
    device. The expiry index holds user names, not (user, device) pairs."""

    def __init__(self, grace: float = 10.0) -> None:
        self.grace = grace
        self._by_user: dict[str, Binding | tuple[Binding, ...]] = {}
        # Users by the whole second one of their bindings falls due: a sweep looks only at
        # what is due, and checks each of that user's bindings.
        self._due: dict[int, list[str]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def get(self, user: str, device: str) -> Binding | None:
        held = self._by_user.get(user)
        if held is None:
            return None
        if isinstance(held, Binding):
            return held if held.device == device else None
        for binding in held:
            if binding.device == device:
                return binding
        return None

    def devices_of(self, user: str) -> list[Binding]:
        held = self._by_user.get(user)
        if held is None:
            return []
        return [held] if isinstance(held, Binding) else list(held)

    def all(self) -> list[Binding]:
        bindings: list[Binding] = []
        for held in self._by_user.values():
            if isinstance(held, Binding):
                bindings.append(held)
            else:
                bindings.extend(held)
        return bindings

    def put(self, binding: Binding) -> Binding | None:
        """Add or refresh a binding; returns the one it replaced."""
        user = binding.user
        held = self._by_user.get(user)
        previous = None
        if held is None:
            self._by_user[user] = binding
        elif isinstance(held, Binding):
            if held.device == binding.device:
                previous = held
                self._by_user[user] = binding
            else:
                self._by_user[user] = (held, binding)
        else:
            others = tuple(b for b in held if b.device != binding.device)
            if len(others) < len(held):
                previous = next(b for b in held if b.device == binding.device)
            self._by_user[user] = (*others, binding)
        if previous is None:
            self._count += 1
        due = int(binding.expires_at + self.grace) + 1
        if previous is None or int(previous.expires_at + self.grace) + 1 != due:
            self._due.setdefault(due, []).append(user)
        return previous

    def remove(self, user: str, device: str) -> Binding | None:
        held = self._by_user.get(user)
        if held is None:
            return None
        if isinstance(held, Binding):
            if held.device != device:
                return None
            del self._by_user[user]
            self._count -= 1
            return held
        removed = None
        kept = []
        for binding in held:
            if binding.device == device:
                removed = binding
            else:
                kept.append(binding)
        if removed is None:
            return None
        self._by_user[user] = kept[0] if len(kept) == 1 else tuple(kept)
        self._count -= 1
        return removed

    def expire(self, now: float) -> list[Binding]:
        """Drop the bindings not refreshed by their expiry plus the grace; return them."""
        gone = []
        for second in [s for s in self._due if s <= now]:
            for user in self._due.pop(second):
                for binding in self.devices_of(user):
                    if binding.expires_at + self.grace <= now:
                        self.remove(user, binding.device)
                        gone.append(binding)
        return gone
