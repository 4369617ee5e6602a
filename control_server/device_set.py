"""The directory's devices as a set of (user, device) pairs, held per user: a user's one device
name itself, a tuple of names for two or more. A device made by its first REGISTER costs a dict
entry, where a pair of its own in a set took a tuple and a set entry (some 160 B), and the
presence side reads the same object rather than an index of its own."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

DeviceKey = tuple[str, str]  # (user, device)


class DeviceSet:
    __slots__ = ("_names", "_count")

    def __init__(self, keys: Iterable[DeviceKey] = ()) -> None:
        self._names: dict[str, str | tuple[str, ...]] = {}
        self._count = 0
        self |= keys

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, tuple) or len(key) != 2:
            return False
        return key[1] in self.names_of(key[0])

    def __iter__(self) -> Iterator[DeviceKey]:
        for user in list(self._names):
            for name in self.names_of(user):
                yield user, name

    def __len__(self) -> int:
        return self._count

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DeviceSet):
            other = set(other)
        return isinstance(other, (set, frozenset)) and set(self) == other

    __hash__ = None  # type: ignore[assignment]  # mutable, like a set

    def __repr__(self) -> str:
        return f"DeviceSet({sorted(self)!r})"

    def names_of(self, user: str) -> tuple[str, ...]:
        """The names of a user's devices, in the order they were added."""
        held = self._names.get(user, ())
        return (held,) if isinstance(held, str) else held

    def held_name(self, user: str, name: str) -> str:
        """The string this set holds for `name` among `user`'s devices (equal to it), else
        `name` itself: a binding loaded or heard from elsewhere keeps that one."""
        for held in self.names_of(user):
            if held == name:
                return held
        return name

    def add(self, key: DeviceKey) -> None:
        user, name = key
        names = self.names_of(user)
        if name not in names:
            self._hold(user, (*names, name))
            self._count += 1

    def discard(self, key: DeviceKey) -> None:
        user, name = key
        names = self.names_of(user)
        if name in names:
            self._hold(user, tuple(n for n in names if n != name))
            self._count -= 1

    def __ior__(self, keys: Iterable[DeviceKey]) -> DeviceSet:
        # Grouped first, so a user's tuple is made once however many devices arrive for them.
        arriving: dict[str, dict[str, None]] = {}
        for user, name in keys:
            arriving.setdefault(user, {})[name] = None
        for user, names in arriving.items():
            held = self.names_of(user)
            added = tuple(n for n in names if n not in held)
            if added:
                self._hold(user, held + added)
                self._count += len(added)
        return self

    def _hold(self, user: str, names: tuple[str, ...]) -> None:
        if not names:
            self._names.pop(user, None)
        elif len(names) == 1:
            self._names[user] = names[0]
        else:
            self._names[user] = names
