"""What a user or device may be called, checked once where a name enters the system."""

from __future__ import annotations

import re

from .errors import StoreError

# The device a REGISTER binds when it names none.
DEFAULT_DEVICE = "default"

_USER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")
_DEVICE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_user_name(name: str) -> str:
    if not _USER_NAME.match(name):
        raise StoreError(f"invalid user name {name!r}: letters, digits, '._+-', at most 64")
    return name


def check_device_name(name: str) -> str:
    if not _DEVICE_NAME.match(name):
        raise StoreError(f"invalid device name {name!r}: letters, digits, '._-', at most 64")
    return name


def split_device(spec: str) -> tuple[str, str]:
    """`USER/DEVICE` into its two checked names."""
    user, sep, device = spec.partition("/")
    if not sep:
        raise StoreError(f"expected USER/DEVICE, got {spec!r}")
    return check_user_name(user), check_device_name(device)
