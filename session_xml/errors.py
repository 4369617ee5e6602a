"""Why a body or a negotiation was refused: one exception family, each carrying its SIP status."""

from __future__ import annotations


class DescriptorError(Exception):
    """A session descriptor or progress report was refused; `reason` is meant for a person."""

    sip_status: int = 400

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedBody(DescriptorError):
    """The bytes are not a well-formed, schema-valid body of ours (SIP 400)."""


class BodyTooLarge(MalformedBody):
    """The body exceeds the size cap; refused before any parsing (SIP 413)."""

    sip_status = 413


class InvalidValue(DescriptorError):
    """One field holds a value the format does not allow (SIP 400); `field` is its XML name."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field


class NotAcceptable(DescriptorError):
    """Well-formed, but nothing in it this device can accept (SIP 488)."""

    sip_status = 488


class UnsupportedVersion(NotAcceptable):
    """The body is of a newer major version of the format."""


class NegotiationError(NotAcceptable):
    """The offer and what this device supports have nothing in common."""
