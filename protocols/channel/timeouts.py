"""How long each phase of a data channel may take: connecting, the handshake, idling, closing."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Seconds allowed for each phase of a channel."""

    connect: float = 10.0  # TCP connection to the peer
    handshake: float = 10.0  # TLS handshake plus the authentication frames
    idle: float = 60.0  # no frame from the peer, or the peer not reading ours
    close: float = 5.0  # the peer answering our orderly TLS close
