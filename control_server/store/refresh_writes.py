"""Which registrations the store must take at once and which it may skip: the rule that keeps a
refresh, which moves nothing but the expiry and the last-seen time, off the store's hot path.

A binding is written when it is new, when its contact, flow (source address, transport, the node
holding it), user agent or interval changes, and when it ends (the caller deletes it). A refresh
is written only when it is the first of a window of `lag` registration intervals counted from
the binding's registration; the others are skipped. Every row written vouches for the refreshes
that may be skipped after it: the store holds it one window past its expiry. So, whatever the
moment of a crash, a device that refreshed within its interval is held in the store at least as
long as it is really registered, and a device that left is held at most one window longer.
Sans-I/O: it reads bindings and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

from ..location import Binding


@dataclass(frozen=True, slots=True)
class RefreshWrites:
    # The window, in registration intervals; 0 writes every refresh, with its exact expiry.
    lag: float = 1.0

    def __post_init__(self) -> None:
        if self.lag < 0:
            raise ValueError(f"a refresh write lag is not negative: {self.lag}")

    def must_write(self, previous: Binding | None, binding: Binding) -> bool:
        """Whether `binding`, which replaced `previous` in the location table, is written now."""
        if previous is None or _changed(previous, binding):
            return True
        window = self.lag * _interval(binding)
        if window <= 0:
            return True
        since = binding.registered_at
        return (binding.last_seen - since) // window != (previous.last_seen - since) // window

    def stored_expiry(self, binding: Binding) -> float:
        """How long the store holds a written row: the binding's expiry pushed out by the
        refreshes that may go unwritten after it (registered until then at the latest)."""
        return binding.expires_at + self.lag * _interval(binding)


def _interval(binding: Binding) -> float:
    return binding.expires_at - binding.last_seen


def _changed(previous: Binding, binding: Binding) -> bool:
    """Anything a reader of the store routes or shows by, besides the times a refresh moves.
    Call-ID and CSeq are not among them: a stale pair only weakens the out-of-order check
    after a restart, and a new Call-ID from the same flow is the same device."""
    return (previous.contact != binding.contact or previous.source != binding.source
            or previous.user_agent != binding.user_agent or previous.node != binding.node
            or previous.registered_at != binding.registered_at
            # A row held for another interval vouches for the wrong window; a binding loaded
            # from the store carries the expiry it was held until, so its first refresh is
            # written too.
            or round(_interval(previous)) != round(_interval(binding)))
