"""One object for the values many bindings repeat: the User-Agent text of a deployment's few
clients, the source address of a load balancer every REGISTER comes through. Equal values
arriving in different requests are different objects; a binding keeps the first one seen."""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar

Value = TypeVar("Value", bound=Hashable)


class RepeatedValues:
    """Bounded: past `limit` distinct values it starts again, so values that never repeat (a
    source address per device) cost a lookup and, for a while, a dict entry each."""

    __slots__ = ("limit", "_held")

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._held: dict[Hashable, Hashable] = {}

    def one(self, value: Value) -> Value:
        held = self._held.get(value)
        if held is not None:
            return held  # type: ignore[return-value]  # equal, hence of the same type
        if len(self._held) >= self.limit:
            self._held.clear()
        self._held[value] = value
        return value

    def __len__(self) -> int:
        return len(self._held)
