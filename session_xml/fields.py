"""Checks for single field values, shared by the dataclasses so that anything built also validates."""

from __future__ import annotations

import ipaddress
import re
from enum import Enum
from typing import TypeVar

from .errors import InvalidValue

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Kept in step with the simple types of session.xsd; the property tests hold the two together.
_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
DEVICE_NAME = re.compile(rf"{_NAME}(?:/{_NAME})?")
DATASET_NAME = re.compile(_NAME)
SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._~@+-]{0,127}")
TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")
# Characters XML 1.0 can carry at all; anything else could not be written into a body.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

MAX_COUNT = 2**64 - 1
MAX_REASON_LENGTH = 1024

E = TypeVar("E", bound=Enum)


def check_pattern(field: str, value: object, pattern: re.Pattern[str], what: str) -> str:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise InvalidValue(field, f"{value!r} is not {what}")
    return value


def check_member(field: str, value: object, kind: type[E]) -> E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(str(member.value) for member in kind)
        raise InvalidValue(field, f"{value!r} is not one of {choices}") from None


def check_port(field: str, value: object) -> int:
    if type(value) is not int or not 1 <= value <= 65535:
        raise InvalidValue(field, f"{value!r} is not a port (1-65535)")
    return value


def check_count(field: str, value: object) -> int:
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise InvalidValue(field, f"{value!r} is not a count (0 to 2**64-1)")
    return value


def check_address(field: str, value: object) -> IPAddress:
    """An IPv4 or IPv6 address a peer on another host could connect to."""
    if isinstance(value, str):
        try:
            value = ipaddress.ip_address(value)
        except ValueError:
            raise InvalidValue(field, f"{value!r} is not an IPv4 or IPv6 address") from None
    if not isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        raise InvalidValue(field, f"{value!r} is not an IPv4 or IPv6 address")
    # A zone id names an interface of the sender's host; it means nothing to the receiver.
    if isinstance(value, ipaddress.IPv6Address) and value.scope_id is not None:
        raise InvalidValue(field, f"{value} carries a zone id, which only its own host understands")
    if value.is_unspecified or value.is_multicast:
        raise InvalidValue(field, f"{value} is not an address a peer can connect to")
    return value


def check_reason(field: str, value: object) -> str:
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_REASON_LENGTH
        or _NOT_XML_CHAR.search(value)
    ):
        raise InvalidValue(field, f"expected 1 to {MAX_REASON_LENGTH} characters of text")
    return value
