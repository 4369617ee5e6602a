"""Where a SIP message came from or goes to: transport, host and port; and how a host is
written in a URI or a Via."""

from __future__ import annotations

from dataclasses import dataclass

TRANSPORTS = ("udp", "tcp", "tls")


def bracketed(host: str) -> str:
    """The host as a URI or Via writes it: an IPv6 address goes in brackets (RFC 3261 25.1)."""
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True, slots=True)
class Endpoint:
    transport: str
    host: str
    port: int

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    @property
    def hostport(self) -> str:
        """host:port as a URI or Via writes it."""
        return f"{bracketed(self.host)}:{self.port}"

    def __str__(self) -> str:
        return f"{self.transport}:{self.hostport}"
