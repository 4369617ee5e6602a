"""The refusals of the store, each with the reason a person reads."""

from __future__ import annotations


class StoreError(Exception):
    """A request the store refuses, with the reason a person reads."""


class UnknownName(StoreError):
    """The user, device, share, admin or token named does not exist."""


class NameTaken(StoreError):
    """What was to be added exists already."""
