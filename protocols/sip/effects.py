"""What the SIP transaction layer asks of the code around it: bytes to transmit, a client
transaction that timed out, and the RFC 3261 timers its transitions start."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

from .endpoint import Endpoint
from .message import SipRequest

# RFC 3261 17.1.1.1: the round-trip estimate, the cap on retransmission intervals, and how
# long the network may hold a message.
T1 = 0.5
T2 = 4.0
T4 = 5.0


@dataclass(frozen=True, slots=True)
class Transmit:
    data: bytes
    destination: Endpoint


class TimedOutTransaction(Protocol):
    """What a timeout tells of its client transaction (transaction.py's ClientTransaction):
    named by shape, so this vocabulary needs nothing of the layer that uses it."""

    request: SipRequest
    context: Any


@dataclass(frozen=True, slots=True)
class ClientTimeout:
    """A client transaction got no final response in time (timer B or F)."""

    transaction: TimedOutTransaction


# What the layer (and the registrar and proxy above it) hand the driver to carry out.
Effect = Transmit | ClientTimeout


class Timer(Enum):
    """The transaction timers of RFC 3261 17 and RFC 6026 (M is not used: a client INVITE
    transaction ends on its first 2xx, later ones reach the core as strays)."""

    A = "A"  # INVITE client: retransmit the request, doubling without bound
    B = "B"  # INVITE client: give up waiting for a response
    D = "D"  # INVITE client: absorb retransmitted final responses
    E = "E"  # non-INVITE client: retransmit the request, doubling up to T2
    F = "F"  # non-INVITE client: give up waiting for a final response
    G = "G"  # INVITE server: retransmit the final error response, doubling up to T2
    H = "H"  # INVITE server: give up waiting for the ACK
    I = "I"  # noqa: E741 - INVITE server: absorb retransmitted ACKs
    J = "J"  # non-INVITE server: absorb retransmitted requests
    K = "K"  # non-INVITE client: absorb retransmitted responses
    L = "L"  # INVITE server, RFC 6026 Accepted: absorb retransmitted INVITEs

    @property
    def retransmits(self) -> bool:
        """A retransmission timer (rearmed with back-off) rather than a deadline."""
        return self in _RETRANSMIT

    def duration(self, reliable: bool) -> float:
        """Seconds until the timer fires; over a reliable transport the absorbing timers are
        zero, as nothing is retransmitted there."""
        if reliable and self in _ZERO_WHEN_RELIABLE:
            return 0.0
        return _DURATION[self]

    def back_off(self, interval: float) -> float:
        """The next retransmission interval after one of `interval`."""
        return interval * 2 if self is Timer.A else min(interval * 2, T2)


_RETRANSMIT = frozenset({Timer.A, Timer.E, Timer.G})
_ZERO_WHEN_RELIABLE = frozenset({Timer.D, Timer.I, Timer.J, Timer.K})
_DURATION = {
    Timer.A: T1, Timer.E: T1, Timer.G: T1,
    Timer.B: 64 * T1, Timer.F: 64 * T1, Timer.H: 64 * T1, Timer.J: 64 * T1, Timer.L: 64 * T1,
    Timer.D: 32.0, Timer.I: T4, Timer.K: T4,
}


@dataclass(frozen=True, slots=True)
class StartTimer:
    """A transition starts this timer on its transaction. Retransmission timers are not
    started over a reliable transport."""

    timer: Timer
