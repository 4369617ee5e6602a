"""Answers kept back until a set time, so that a failed authentication's answer comes late
without anything waiting in the event loop: the server's core reports the earliest due time to
the SIP driver's one timer and hands over what is due when it fires."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Hashable

from protocols.sip.effects import Effect

# What to do when the time comes: build the effects (a response through its transaction).
Answer = Callable[[float], list[Effect]]

# Past this many, a new answer to hold is dropped instead: a flood of guesses from many
# addresses must not grow the server's memory without end.
HOLD_LIMIT = 10_000


class HeldAnswers:
    def __init__(self, limit: int = HOLD_LIMIT) -> None:
        self.limit = limit
        self._heap: list[tuple[float, int, Answer, Hashable]] = []
        self._order = itertools.count()
        self._keys: set[Hashable] = set()

    def hold(self, due: float, answer: Answer, key: Hashable = None) -> bool:
        """Send `answer` at `due`; `key` names it so a retransmission of its request can be
        recognized meanwhile. False when too many are held already and it was dropped."""
        if len(self._heap) >= self.limit:
            return False
        heapq.heappush(self._heap, (due, next(self._order), answer, key))
        if key is not None:
            self._keys.add(key)
        return True

    def holding(self, key: Hashable) -> bool:
        return key in self._keys

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def expire(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        while self._heap and self._heap[0][0] <= now:
            _, _, answer, key = heapq.heappop(self._heap)
            self._keys.discard(key)
            effects += answer(now)
        return effects

    def __len__(self) -> int:
        return len(self._heap)
